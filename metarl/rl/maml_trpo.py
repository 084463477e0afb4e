"""MAML for reinforcement learning: a policy-gradient inner loop and a TRPO outer loop.

Finn et al. (2017), section 5.3: for each task of a meta-batch, episodes of the current policy give
one (or more) REINFORCE steps; episodes of the adapted policies give the meta-objective, which is
optimised with TRPO. The inner step is :func:`metarl.functional.adapt`, the same function that
supervised MAML uses, and the meta-gradient and the Fisher-vector products of TRPO differentiate
through it (second order) or treat its gradients as constants (``first_order``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from metarl import distributed
from metarl.choices import check_choice
from metarl.functional import META_BATCH_PATHS, MetaBatchPath, Params, adapt, parameters_of
from metarl.models import Activation, PolicyInit
from metarl.rl.gaussian import kl_divergence, log_prob
from metarl.rl.returns import discounted_returns, gae, linear_baseline, normalize
from metarl.rl.sampler import SAMPLINGS, Sampling, Trajectories, TrajectorySampler, policy_per_task, stack_params
from metarl.rl.trpo import LineSearchResult, backtracking_line_search, conjugate_gradient
from metarl.task_threads import TaskThreads, check_task_threads, task_threads_for
from metarl.tasks import Task

PolicyData = tuple[Tensor, Tensor, Tensor, Tensor]
"""``(observations, actions, advantages, mask)`` of one task (or stacked over tasks)."""


@dataclass
class MAMLTRPOConfig:
    """MAML-TRPO's hyper-parameters; the defaults are the paper's (and rllab's) settings."""

    inner_lr: float = 0.1
    """Step size of the inner policy-gradient steps (and of the first step at evaluation)."""
    inner_steps: int = 1
    """Inner steps during meta-training; each samples fresh episodes with the policy so far. 0 trains
    one policy on all tasks jointly with TRPO (the paper's "pretrained" baseline)."""
    eval_inner_lr: float = 0.05
    """Step size of the evaluation's second step (the paper: 0.1, then 0.05)."""
    eval_inner_lr_decay: float = 1.0
    """Each evaluation step after the second takes this times the previous step's size (1: all steps after
    the first take ``eval_inner_lr``, the paper's protocol)."""
    eval_inner_steps: int = 3
    """Adaptation steps at evaluation; returns are reported after 0, 1, ..., this many."""
    first_order: bool = False
    """Drop the second-order terms of the meta-gradient and of the Fisher-vector products."""
    episodes_per_task: int = 20
    """Episodes sampled per task for each inner step and for the meta-objective (fast batch); under
    ``sampling="steps"``, lanes of ``horizon`` steps each."""
    sampling: Sampling = "episodes"
    """episodes: each lane one episode, as the paper's text says (20 trajectories per task); steps: each lane
    runs whole episodes until it took ``horizon`` steps, so a task gets ``episodes_per_task x horizon`` steps
    however early its episodes end, as rllab's sampler in MAML's code collected them."""
    eval_episodes_per_task: int = 20
    """Episodes per task (lanes under ``sampling="steps"``) for each adaptation step and return estimate at
    evaluation."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """GAE lambda (1: discounted returns minus the linear baseline)."""
    max_kl: float = 0.01
    """TRPO's bound on the mean KL between the adapted policies before and after the meta-update."""
    cg_iterations: int = 10
    """Conjugate-gradient iterations of the natural-gradient solve."""
    cg_damping: float = 1e-5
    """Added to the Fisher matrix's diagonal in the conjugate-gradient solve."""
    line_search_steps: int = 15
    """Backtracking steps of TRPO's line search."""
    line_search_ratio: float = 0.8
    """Each backtracking step shortens the step by this factor."""
    hidden: tuple[int, ...] = (100, 100)
    """Hidden layer sizes of the Gaussian MLP policy."""
    activation: Activation = "relu"
    """Hidden-layer nonlinearity of the policy (the paper: ReLU)."""
    policy_init: PolicyInit = "glorot"
    """The policy's initial weights: glorot is MAML's (Glorot-uniform weights, zero biases; cbfinn/maml_rl),
    torch is ``nn.Linear``'s default, with which the README's runs were trained unless they say otherwise."""
    path: MetaBatchPath = "auto"
    """vmap over tasks, a per-task loop, or auto: per-task on the CPU, where it was measured 5.6x faster
    (Navigation2D, 20 tasks: TRPO's Fisher-vector products backpropagate slowly through vmap), and
    batched on CUDA, where it launches fewer kernels (not yet timed)."""
    task_threads: int = 0
    """Threads for the per-task path on a CPU: TRPO's gradients and Fisher-vector products, task by task
    (:mod:`metarl.task_threads`); 0 picks torch's intra-op thread count there and 1 everywhere else."""

    def __post_init__(self) -> None:
        self.hidden = tuple(self.hidden)
        if self.inner_steps < 0 or self.eval_inner_steps < 0 or min(self.episodes_per_task,
                                                                     self.eval_episodes_per_task) < 1:
            raise ValueError("need inner_steps >= 0, eval_inner_steps >= 0 and episodes per task >= 1")
        if not (0 < self.gamma <= 1 and 0 <= self.gae_lambda <= 1):
            raise ValueError(f"need 0 < gamma <= 1 and 0 <= gae_lambda <= 1, got {self.gamma}, {self.gae_lambda}")
        if self.max_kl <= 0 or not 0 < self.line_search_ratio < 1 or self.line_search_steps < 1:
            raise ValueError("need max_kl > 0, 0 < line_search_ratio < 1 and line_search_steps >= 1")
        if min(self.inner_lr, self.eval_inner_lr) <= 0 or not 0 < self.eval_inner_lr_decay <= 1:
            raise ValueError("need inner_lr > 0, eval_inner_lr > 0 and 0 < eval_inner_lr_decay <= 1, got "
                             f"{self.inner_lr}, {self.eval_inner_lr}, {self.eval_inner_lr_decay}")
        check_choice("sampling", self.sampling, SAMPLINGS)
        check_choice("path", self.path, META_BATCH_PATHS)
        check_task_threads(self.task_threads)

    def evaluation_step_sizes(self, steps: int) -> list[float]:
        """The step sizes of ``steps`` adaptation steps at evaluation: ``inner_lr``, then ``eval_inner_lr``
        times ``eval_inner_lr_decay`` to the power of the steps taken since the second."""
        return [self.inner_lr, *(self.eval_inner_lr * self.eval_inner_lr_decay ** k for k in range(steps - 1))][:steps]


@dataclass
class RLBatch:
    """One meta-batch: the tasks and the seed of every sampling made for them.

    A batch may be one process's share of a meta-batch (:meth:`shard`): its tasks are tasks ``first_task``
    onwards of ``batch_size``, and they are sampled as they are in the whole meta-batch.
    """

    tasks: list[Task]
    seed: int
    first_task: int = 0
    """Index of ``tasks[0]`` in the meta-batch."""
    batch_size: int | None = None
    """Tasks in the meta-batch (None: all of them are here)."""

    def sampling_seed(self, index: int) -> int:
        """A distinct seed for the ``index``-th sampling of this batch (inner steps, then the meta-objective)."""
        return int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0] >> 1)

    def shard(self, part: slice) -> RLBatch:
        """The tasks ``part`` of this (whole) meta-batch."""
        return RLBatch(self.tasks[part], self.seed, part.start, len(self.tasks))

    @property
    def share(self) -> float:
        """This batch's fraction of the meta-batch's tasks."""
        return 1.0 if self.batch_size is None else len(self.tasks) / self.batch_size


@dataclass
class _Adaptation:
    """What the inner loop produced: each step's policy data, its episodes, and the adapted parameters."""

    data: list[PolicyData] = field(default_factory=list)
    episodes: list[Trajectories] = field(default_factory=list)
    params: Params = field(default_factory=dict)


@dataclass
class MetaObjective:
    """TRPO's surrogate loss and mean KL over a meta-batch, as a function of the policy's parameters.

    ``parts()`` re-runs the adaptation from the parameters as they are now, so the line search and the tests
    can evaluate it after changing them, and returns the loss and KL in parts that add up to them: one per
    task on the per-task path, whose graphs TRPO differentiates on separate threads, one for the whole batch
    on the batched path. ``params`` are the policy's own tensors.
    """

    parts: Callable[[], list[tuple[Tensor, Tensor]]]
    params: Params
    inner_episodes: list[Trajectories]
    valid_episodes: Trajectories

    def surrogate(self) -> tuple[Tensor, Tensor]:
        """The surrogate loss and the mean KL: the sums of :attr:`parts`."""
        losses, kls = zip(*self.parts())
        return sum(losses[1:], losses[0]), sum(kls[1:], kls[0])


class MAMLTRPO:
    """Meta-learns a policy initialisation that one policy-gradient step adapts to a new task."""

    method = "maml_trpo"

    def __init__(self, policy: nn.Module, sampler: TrajectorySampler, config: MAMLTRPOConfig | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.config = config or MAMLTRPOConfig()
        self.device = torch.device(device)
        self.policy = policy.to(self.device)
        self.sampler = sampler
        if self.config.path == "auto":
            self.batched = self.device.type == "cuda"
        else:
            self.batched = self.config.path == "batched"
        self.tasks = TaskThreads(task_threads_for(self.config.task_threads, not self.batched, self.device))

    # --- per-task pieces, written once for vmap and for the loop -----------------------------------
    def _inner_loss(self, params: Params, data: PolicyData) -> Tensor:
        """REINFORCE: minus the mean of log-probability times advantage over the episodes' steps."""
        observations, actions, advantages, mask = data
        mean, log_std = functional_call(self.policy, params, (observations,))
        return -(log_prob(mean, log_std, actions) * advantages * mask).sum() / mask.sum()

    def _task_surrogate(self, params: Params, steps_data: Sequence[PolicyData], valid: PolicyData,
                        old_log_prob: Tensor, old_mean: Tensor, old_log_std: Tensor) -> tuple[Tensor, Tensor]:
        """TRPO's surrogate loss and KL for one task, through the adaptation from ``params``."""
        adapted = params
        for data in steps_data:
            adapted = adapt(adapted, self._inner_loss, data, 1, self.config.inner_lr, self.config.first_order,
                            functional=self.batched)
        observations, actions, advantages, mask = valid
        mean, log_std = functional_call(self.policy, adapted, (observations,))
        ratio = (log_prob(mean, log_std, actions) - old_log_prob).exp()
        loss = -(ratio * advantages * mask).sum() / mask.sum()
        kl = (kl_divergence(old_mean, old_log_std, mean, log_std) * mask).sum() / mask.sum()
        return loss, kl

    def _over_tasks(self, fn: Callable[..., Any], in_dims: tuple[int | None, ...], *args: Any) -> Any:
        """``fn`` on every task and the results stacked: ``vmap`` over the arguments whose
        ``in_dims`` is 0 (the others are shared), or the same in a loop."""
        if self.batched:
            return vmap(fn, in_dims=in_dims)(*args)
        results = self._each_task(fn, in_dims, *args)
        if isinstance(results[0], dict):
            return {k: torch.stack([r[k] for r in results]) for k in results[0]}
        return tuple(torch.stack(column) for column in zip(*results))

    @staticmethod
    def _each_task(fn: Callable[..., Any], in_dims: tuple[int | None, ...], *args: Any) -> list[Any]:
        """``fn`` on every task in a loop, unstacked: task ``i`` of the arguments whose ``in_dims`` is 0."""
        n = next(leaf for a, d in zip(args, in_dims) if d == 0 for leaf in _leaves(a)).shape[0]
        return [fn(*(_pick(a, i) if d == 0 else a for a, d in zip(args, in_dims))) for i in range(n)]

    # --- data --------------------------------------------------------------------------------------
    def policy_data(self, episodes: Trajectories) -> PolicyData:
        """Observations, actions, normalised GAE advantages (linear baseline per task) and mask."""
        c = self.config
        returns = discounted_returns(episodes.rewards, episodes.mask, c.gamma)
        values = linear_baseline(episodes.observations, returns, episodes.mask, timesteps=episodes.timesteps)
        advantages = normalize(gae(episodes.rewards, values, episodes.mask, c.gamma, c.gae_lambda), episodes.mask)
        return episodes.observations, episodes.actions, advantages, episodes.mask

    def _step_all(self, params: Params, data: PolicyData, lr: float) -> Params:
        """One inner step for every task from its own (stacked) parameters, without a graph."""
        def one(task_params: Params, *task_data: Tensor) -> Params:
            return adapt(task_params, self._inner_loss, task_data, 1, lr, first_order=True, functional=self.batched)

        adapted = self._over_tasks(one, (0, 0, 0, 0, 0), params, *data)
        return {k: v.detach() for k, v in adapted.items()}

    def _sample(self, params: Params, batch: RLBatch, index: int, episodes_per_task: int) -> Trajectories:
        """The batch's ``index``-th sampling, with one parameter set per task."""
        return self.sampler.sample(params, batch.tasks, batch.sampling_seed(index), episodes_per_task,
                                   batch.first_task, batch.batch_size)

    def _adapt_by_sampling(self, params: Params, batch: RLBatch, lrs: Sequence[float],
                           episodes_per_task: int) -> _Adaptation:
        """Alternate sampling and one inner step per entry of ``lrs``, from the shared ``params``."""
        result = _Adaptation(params=stack_params(params, len(batch.tasks)))
        for index, lr in enumerate(lrs):
            episodes = self._sample(result.params, batch, index, episodes_per_task)
            data = self.policy_data(episodes)
            result.params = self._step_all(result.params, data, lr)
            result.data.append(data)
            result.episodes.append(episodes)
        return result

    # --- meta-training -----------------------------------------------------------------------------
    def meta_objective(self, batch: RLBatch) -> MetaObjective:
        """Sample and adapt for every task, sample again with the adapted policies, and return TRPO's
        surrogate loss and KL as a function of the policy's current parameters.

        For a share of a meta-batch (:meth:`RLBatch.shard`) they are the share's part of the meta-batch's
        means (the means over its tasks times :attr:`RLBatch.share`), which add up over the shares."""
        c = self.config
        params = parameters_of(self.policy)
        detached = {k: v.detach() for k, v in params.items()}
        adaptation = self._adapt_by_sampling(detached, batch, [c.inner_lr] * c.inner_steps, c.episodes_per_task)
        valid_episodes = self._sample(adaptation.params, batch, c.inner_steps, c.episodes_per_task)
        valid = self.policy_data(valid_episodes)
        with torch.no_grad():
            old_mean, old_log_std = policy_per_task(self.policy, adaptation.params, valid[0])
            old_log_prob = log_prob(old_mean, old_log_std, valid[1])
        arguments = (params, tuple(adaptation.data), valid, old_log_prob, old_mean, old_log_std)
        in_dims = (None, 0, 0, 0, 0, 0)

        def parts() -> list[tuple[Tensor, Tensor]]:
            if self.batched:
                losses, kls = self._over_tasks(self._task_surrogate, in_dims, *arguments)
                return [(losses.mean() * batch.share, kls.mean() * batch.share)]
            weight = batch.share / len(batch.tasks)
            return [(loss * weight, kl * weight) for loss, kl in self._each_task(self._task_surrogate, in_dims,
                                                                                  *arguments)]

        return MetaObjective(parts, params, adaptation.episodes, valid_episodes)

    def _trpo_step(self, objective: MetaObjective) -> tuple[float, LineSearchResult]:
        """One natural-gradient step on the surrogate within the KL bound; returns the loss before it.

        Under torchrun the objective is this process's share: the gradient, every Fisher-vector product and
        the line search's losses and KLs are summed over the processes, so all take the same step.
        """
        c = self.config
        leaves = list(objective.params.values())
        parts = objective.parts()

        def flat_grad(output: Tensor, **kwargs: bool) -> Tensor:
            return torch.cat([g.reshape(-1) for g in torch.autograd.grad(output, leaves, **kwargs)])

        def over_parts(compute: Callable[[int], Tensor]) -> Tensor:
            """The sum over the parts of ``compute(part)``, the parts on :attr:`tasks`' threads, in part order."""
            results = self.tasks.map(compute, len(parts))
            first = next(results)
            return sum(results, first)

        gradient = distributed.all_reduce_sum(over_parts(lambda k: flat_grad(parts[k][0], retain_graph=True)))
        kl_gradients = list(self.tasks.map(lambda k: flat_grad(parts[k][1], create_graph=True), len(parts)))
        old_loss = distributed.all_reduce_sum(sum(loss.detach() for loss, _ in parts)).item()

        def fisher_vector(vector: Tensor) -> Tensor:
            product = over_parts(lambda k: flat_grad(kl_gradients[k] @ vector, retain_graph=True))
            return distributed.all_reduce_sum(product) + c.cg_damping * vector

        direction = conjugate_gradient(fisher_vector, -gradient.detach(), c.cg_iterations)
        curvature = direction @ fisher_vector(direction)
        full_step = direction * torch.sqrt(2 * c.max_kl / curvature.clamp_min(1e-12))
        old_vector = parameters_to_vector(leaves).detach()

        def evaluate(vector: Tensor) -> tuple[float, float]:
            with torch.no_grad():
                vector_to_parameters(vector, leaves)
                new_loss, new_kl = distributed.all_reduce_sum(torch.stack(objective.surrogate())).tolist()
            return new_loss, new_kl

        new_vector, search = backtracking_line_search(evaluate, old_vector, full_step.detach(), old_loss,
                                                      c.max_kl, c.line_search_steps, c.line_search_ratio)
        with torch.no_grad():
            vector_to_parameters(new_vector, leaves)
        return old_loss, search

    def meta_train_step(self, batch: RLBatch) -> dict[str, float]:
        """Sample, adapt, sample again with the adapted policies, and take one TRPO step.

        Under torchrun each process samples and adapts for its share of the tasks (:mod:`metarl.distributed`).
        """
        started = time.perf_counter()
        shard = distributed.task_shard(len(batch.tasks))
        objective = self.meta_objective(batch.shard(shard.slice))
        loss, search = self._trpo_step(objective)
        sampled = [*objective.inner_episodes, objective.valid_episodes]
        before, after = sampled[0], objective.valid_episodes
        measured = distributed.mean_metrics({
            "return_before": before.mean_returns().mean().item(),
            "return_after": after.mean_returns().mean().item(),
            "episode_length_before": before.env_steps / before.episode_counts().sum().item(),
            "episode_length_after": after.env_steps / after.episode_counts().sum().item(),
            "perf/env_steps_per_second": sum(e.env_steps for e in sampled) / sum(e.seconds for e in sampled),
            "perf/sampling_seconds": sum(e.seconds for e in sampled),
        }, shard.weight)
        return {
            "return_before": measured["return_before"],
            "return_after": measured["return_after"],
            "episode_length_before": measured["episode_length_before"],
            "episode_length_after": measured["episode_length_after"],
            "surrogate_loss": loss,
            "surrogate_improvement": loss - search.loss,
            "kl": search.kl,
            "line_search_steps": float(search.steps),
            "line_search_accepted": float(search.accepted),
            "perf/env_steps_per_second": measured["perf/env_steps_per_second"],
            # where an iteration's time goes: the sampler's share against adaptation and the TRPO step
            "perf/sampling_seconds": measured["perf/sampling_seconds"],
            "perf/iteration_seconds": time.perf_counter() - started,
        }

    # --- meta-testing ------------------------------------------------------------------------------
    def evaluate(self, batch: RLBatch, steps: int | None = None, step_sizes: Sequence[float] | None = None) -> Tensor:
        """Mean episode return of each task after 0..``steps`` adaptation steps, ``[tasks, steps + 1]``.

        The steps take ``step_sizes`` when given (then ``steps`` is their number), otherwise
        :meth:`MAMLTRPOConfig.evaluation_step_sizes` (the paper: ``inner_lr``, then ``eval_inner_lr``). Under
        torchrun each process adapts to its share of the tasks and every process gets all the rows.
        """
        lrs = self.evaluation_step_sizes(steps, step_sizes)
        return distributed.gather_over_tasks(lambda part: self._evaluate_tasks(batch.shard(part), lrs),
                                             len(batch.tasks))

    def evaluation_step_sizes(self, steps: int | None = None, step_sizes: Sequence[float] | None = None
                              ) -> list[float]:
        """The step sizes :meth:`evaluate` takes: ``step_sizes`` (checked against ``steps`` when both are
        given), or the configuration's schedule for ``steps`` (default ``eval_inner_steps``) steps."""
        if step_sizes is None:
            return self.config.evaluation_step_sizes(self.config.eval_inner_steps if steps is None else steps)
        if steps is not None and steps != len(step_sizes):
            raise ValueError(f"{steps} adaptation steps but {len(step_sizes)} step sizes")
        if not all(size > 0 for size in step_sizes):
            raise ValueError(f"step sizes must be positive, got {list(step_sizes)}")
        return list(step_sizes)

    def adapt_for_evaluation(self, batch: RLBatch, lrs: Sequence[float]) -> tuple[list[Trajectories], Params]:
        """The evaluation protocol on ``batch``: from the policy, one step of each size in ``lrs``, each on
        ``eval_episodes_per_task`` fresh episodes per task, then the adapted policies sampled once more.
        Returns the episodes after 0, 1, ..., ``len(lrs)`` steps and each task's adapted parameters."""
        c = self.config
        detached = {k: v.detach() for k, v in parameters_of(self.policy).items()}
        adaptation = self._adapt_by_sampling(detached, batch, lrs, c.eval_episodes_per_task)
        final = self._sample(adaptation.params, batch, len(lrs), c.eval_episodes_per_task)
        return [*adaptation.episodes, final], adaptation.params

    def _evaluate_tasks(self, batch: RLBatch, lrs: list[float]) -> Tensor:
        episodes, _ = self.adapt_for_evaluation(batch, lrs)
        return torch.stack([e.mean_returns() for e in episodes], dim=1).cpu()

    # --- checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "config": asdict(self.config)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])


def _leaves(value: Any) -> list[Tensor]:
    """The tensors in a (nested) tuple or dict of them."""
    if isinstance(value, Tensor):
        return [value]
    return [leaf for v in (value.values() if isinstance(value, dict) else value) for leaf in _leaves(v)]


def _pick(value: Any, i: int) -> Any:
    """Task ``i`` of a tensor, or of every tensor in a (nested) tuple or dict of them."""
    if isinstance(value, Tensor):
        return value[i]
    if isinstance(value, dict):
        return {k: _pick(v, i) for k, v in value.items()}
    return type(value)(_pick(v, i) for v in value)
