"""MAML (Finn, Abbeel and Levine, 2017) for supervised episodes, with first-order and Meta-SGD options.

One task's contribution is "adapt on the support set, then the loss on the query set"; the meta-batch
runs it either batched over the task axis with ``torch.func.vmap`` or in a per-task loop (on a CPU, tasks side
by side on threads: :mod:`metarl.task_threads`). Both give the same meta-gradient (tested against a plain
autograd reference); which is faster depends on the device and model (see :func:`choose_batched`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, ClassVar

import torch
import torch.utils.checkpoint
from torch import Tensor, nn
from torch.func import vmap

from metarl import distributed
from metarl.choices import check_choice
from metarl.cuda_graph import GRAPH_SETTINGS, GraphedStep, GraphSetting
from metarl.few_shot import EpisodicTraining
from metarl.functional import (
    LOSSES,
    META_BATCH_PATHS,
    LearningRate,
    MetaBatchPath,
    Params,
    adapt,
    forward,
    metric_of_loss,
    parameters_of,
    score,
)
from metarl.models import build_model, vmap_safe_norm
from metarl.task_threads import TaskThreads, check_task_threads, task_threads_for
from metarl.tasks import Episode, SupervisedTaskDistribution


@dataclass
class MAMLConfig:
    """MAML's hyper-parameters; the defaults are the paper's sinusoid settings."""

    inner_lr: float = 0.01
    """Step size of the inner (adaptation) gradient steps (alpha in the paper)."""
    inner_steps: int = 1
    """Inner steps during meta-training."""
    eval_inner_steps: int = 10
    """Inner steps at meta-test; evaluation reports the metric after 0, 1, ..., this many steps."""
    first_order: bool = False
    """Drop the second-order terms of the meta-gradient (first-order MAML)."""
    meta_sgd: bool = False
    """Learn one inner step size per parameter element (Meta-SGD, Li et al. 2017), starting at inner_lr."""
    meta_lr: float = 1e-3
    """Adam step size of the outer (meta) update (beta in the paper)."""
    path: MetaBatchPath = "auto"
    """How the meta-batch is computed: vmap over tasks, a per-task loop, or the faster for the device."""
    checkpoint_steps: bool = False
    """Gradient checkpointing of the inner steps: keep only each step's parameters and recompute its
    activations in the backward pass, so memory no longer grows with every step's activations (about one
    more forward and inner gradient per step)."""
    cuda_graph: GraphSetting = "auto"
    """Record the meta-step (meta-gradient and Adam update) as a CUDA graph after three eager steps and
    replay it for every later episode, so the host launches one graph instead of each kernel: auto does so
    for one process on CUDA without checkpoint_steps; off never. The episodes must keep one shape."""
    task_threads: int = 0
    """Threads for the per-task path on a CPU, each running whole tasks on one intra-op thread
    (:mod:`metarl.task_threads`); 0 picks torch's intra-op thread count there and 1 everywhere else."""

    def __post_init__(self) -> None:
        if self.inner_lr <= 0 or self.meta_lr <= 0:
            raise ValueError(f"learning rates must be positive, got inner_lr={self.inner_lr}, meta_lr={self.meta_lr}")
        if self.inner_steps < 1 or self.eval_inner_steps < 0:
            raise ValueError(
                f"need inner_steps >= 1 and eval_inner_steps >= 0, got {self.inner_steps}, {self.eval_inner_steps}"
            )
        check_choice("path", self.path, META_BATCH_PATHS)
        check_choice("cuda_graph", self.cuda_graph, GRAPH_SETTINGS)
        check_task_threads(self.task_threads)


def choose_batched(model: nn.Module, device: torch.device) -> bool:
    """Whether vmap over tasks is the faster path for this model on this device.

    Omniglot conv4-64, meta-batch 32: on an H200 vmap was measured ~13x faster than a per-task loop;
    on a 2-core CPU it is 2.7-4.9x slower for convolutions (vmap turns them into grouped
    convolutions; ``scripts/bench_maml.py``) but ~6x faster for the sinusoid MLP.
    """
    has_conv = any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
    return device.type == "cuda" or not has_conv


def choose_cuda_graph(device: torch.device, checkpoint_steps: bool) -> bool:
    """Whether ``cuda_graph="auto"`` records the meta-step: on CUDA, in one process (the gradients' all-reduce
    under torchrun is not recorded), and without gradient checkpointing (which saves and restores random-number
    state in the backward pass, something a CUDA graph cannot record).

    On an H200 the recorded Omniglot 5-way 1-shot meta-step (meta-batch 32, second order) took 22.0 ms against
    34.4 ms eagerly for one inner step and 56.4 against 137.5 ms for five (``scripts/bench_maml.py``).
    """
    return device.type == "cuda" and distributed.world_size() == 1 and not checkpoint_steps


class MAML(EpisodicTraining):
    """Model-agnostic meta-learning of an initialisation for ``model``.

    ``loss`` is ``"mse"`` (regression) or ``"cross_entropy"`` (classification). The object owns the
    meta-optimiser (Adam), so the trainer only calls :meth:`meta_train_step` and :meth:`evaluate`.
    """

    method: ClassVar[str] = "maml"
    Config: ClassVar[type] = MAMLConfig
    adapts: ClassVar[bool] = True

    def __init__(self, model: nn.Module, loss: str, config: MAMLConfig | None = None, device: str | torch.device = "cpu"):
        check_choice("loss", loss, sorted(LOSSES))
        self.config = config or MAMLConfig()
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.loss = loss
        self.metric = metric_of_loss(loss)
        self.inner_lrs: dict[str, nn.Parameter] = {}
        if self.config.meta_sgd:
            self.inner_lrs = {
                name: nn.Parameter(torch.full_like(p, self.config.inner_lr))
                for name, p in parameters_of(self.model).items()
            }
        graphed = self.config.cuda_graph == "auto" and choose_cuda_graph(self.device, self.config.checkpoint_steps)
        self.optimizer = torch.optim.Adam(
            [*self.model.parameters(), *self.inner_lrs.values()], lr=self.config.meta_lr, capturable=graphed
        )
        if self.config.path == "auto":
            self.batched = choose_batched(self.model, self.device)
        else:
            self.batched = self.config.path == "batched"
        self._recorded_step = GraphedStep(self._update) if graphed else None
        self.tasks = TaskThreads(task_threads_for(self.config.task_threads, not self.batched, self.device))

    @property
    def graphed(self) -> bool:
        """Whether the meta-step is recorded as a CUDA graph (``cuda_graph="auto"`` where it can be)."""
        return self._recorded_step is not None

    @classmethod
    def create(cls, model: dict[str, Any], distribution: SupervisedTaskDistribution, config: MAMLConfig,
               device: torch.device) -> MAML:
        """MAML of the model ``model`` specifies, with the distribution's loss."""
        return cls(build_model(model), distribution.loss, config, device)

    @property
    def eval_steps(self) -> int:
        return self.config.eval_inner_steps

    # --- the two pieces every path shares -------------------------------------------------------
    def _support_loss(self, module: nn.Module, params: Params, data: tuple[Tensor, Tensor]) -> Tensor:
        x, y = data
        return LOSSES[self.loss](forward(module, params, x), y)

    @property
    def inner_lr(self) -> LearningRate:
        """The inner step size: the configured scalar, or the learned per-parameter tensors."""
        return self.inner_lrs if self.inner_lrs else self.config.inner_lr

    def _task_objective(
        self, module: nn.Module, params: Params, support_x: Tensor, support_y: Tensor, query_x: Tensor,
        query_y: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Adapt on one task's support set; return the query loss and the query metric (``module`` runs it)."""
        adapted = adapt(
            params,
            partial(self._support_loss, module),
            (support_x, support_y),
            self.config.inner_steps,
            self.inner_lr,
            self.config.first_order,
            functional=self.batched,
            checkpoint=self.config.checkpoint_steps and not self.batched,
        )
        return self._query_objective(module, adapted, query_x, query_y)

    def _query_objective(self, module: nn.Module, params: Params, query_x: Tensor, query_y: Tensor
                         ) -> tuple[Tensor, Tensor]:
        prediction = forward(module, params, query_x)
        return LOSSES[self.loss](prediction, query_y), score(self.loss, prediction.detach(), query_y)

    def _checkpointed_batched_objective(
        self, params: Params, support_x: Tensor, support_y: Tensor, query_x: Tensor, query_y: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The batched path with gradient checkpointing: query losses and metrics ``[tasks]``.

        ``torch.func.grad`` cannot run under non-reentrant checkpointing, so each inner step over all tasks
        (a ``vmap``) is one reentrant checkpoint; the meta-gradient must then come from ``.backward()``.
        """
        names = list(params)

        def one_task_step(x: Tensor, y: Tensor, *task_params: Tensor) -> tuple[Tensor, ...]:
            stepped = adapt(dict(zip(names, task_params)), partial(self._support_loss, self.model), (x, y), 1,
                            self.inner_lr, self.config.first_order)
            return tuple(stepped.values())

        def step(*batched: Tensor) -> tuple[Tensor, ...]:
            with vmap_safe_norm(self.model, True):  # also when recomputed in the backward pass
                return vmap(one_task_step)(support_x, support_y, *batched)

        batched = tuple(p.expand(support_x.shape[0], *p.shape) for p in params.values())
        for _ in range(self.config.inner_steps):
            batched = torch.utils.checkpoint.checkpoint(step, *batched, use_reentrant=True)
        return vmap(partial(self._query_objective, self.model))(dict(zip(names, batched)), query_x, query_y)

    # --- meta-training ----------------------------------------------------------------------------
    def meta_backward(self, episode: Episode) -> dict[str, float]:
        """Accumulate the meta-gradient of the mean query loss over the episode's tasks into ``.grad``."""
        losses, scores = self._backward(*episode.to(self.device).tensors())
        return {"query_loss": losses.mean().item(), f"query_{self.metric}": scores.mean().item()}

    def _backward(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, query_y: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`meta_backward` without reading the results on the host: per-task query losses and metrics."""
        params = parameters_of(self.model)
        tensors = support_x, support_y, query_x, query_y
        with vmap_safe_norm(self.model, self.batched):  # per call, and restored: the model may be shared
            if self.batched and self.config.checkpoint_steps:
                losses, scores = self._checkpointed_batched_objective(params, *tensors)
                losses.mean().backward()
            elif self.batched:
                objective = partial(self._task_objective, self.model)
                losses, scores = vmap(objective, in_dims=(None, 0, 0, 0, 0))(params, *tensors)
                losses.mean().backward()
            else:
                losses, scores = self._per_task_backward(params, tensors)
        return losses.detach(), scores

    def _per_task_backward(self, params: Params, tensors: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        """The per-task path: each task's meta-gradient (on :attr:`tasks`' threads), summed in task order as the
        tasks finish, so that only a few tasks' gradients are held at a time."""
        num_tasks = tensors[0].shape[0]
        trainable = [p for group in self.optimizer.param_groups for p in group["params"] if p.requires_grad]

        def task(module: nn.Module, i: int) -> tuple[Tensor, Tensor, tuple[Tensor | None, ...]]:
            loss, task_score = self._task_objective(module, params, *(t[i] for t in tensors))
            return loss.detach(), task_score, torch.autograd.grad(loss / num_tasks, trainable, allow_unused=True)

        losses, scores = [], []
        for loss, task_score, grads in self.tasks.map_with_copies(self.model, task, num_tasks):
            losses.append(loss)
            scores.append(task_score)
            for param, grad in zip(trainable, grads):
                if grad is not None:  # None: the parameter does not reach the loss, as .backward() leaves it
                    param.grad = grad if param.grad is None else param.grad + grad
        return torch.stack(losses), torch.stack(scores)

    def _update(self, *tensors: Tensor) -> tuple[Tensor, Tensor]:
        """One meta-update on an episode's tensors, all on the device: what ``cuda_graph`` records."""
        self.optimizer.zero_grad(set_to_none=True)
        losses, scores = self._backward(*tensors)
        self.optimizer.step()
        return losses.mean(), scores.mean()

    def meta_train_step(self, episode: Episode) -> dict[str, float]:
        """One meta-update (Adam) on the mean post-adaptation query loss of the episode's tasks.

        Under torchrun each process back-propagates its share of the tasks and the shares' gradients are
        summed (:mod:`metarl.distributed`) before the update, so every process takes the one-process step.
        """
        if self._recorded_step is not None:
            loss, metric = torch.stack(self._recorded_step(*episode.to(self.device).tensors())).tolist()  # one sync
            return {"query_loss": loss, f"query_{self.metric}": metric}
        shard = distributed.task_shard(episode.num_tasks)
        self.optimizer.zero_grad(set_to_none=True)
        metrics = self.meta_backward(_tasks(episode, shard.slice))
        distributed.all_reduce_gradients((p for group in self.optimizer.param_groups for p in group["params"]),
                                         shard.weight)
        self.optimizer.step()
        return distributed.mean_metrics(metrics, shard.weight)

    # --- meta-testing ----------------------------------------------------------------------------
    def adapt(self, support_x: Tensor, support_y: Tensor, steps: int | None = None) -> Params:
        """Fine-tune a copy of the parameters on one task's support set (no meta-gradient kept)."""
        steps = self.config.eval_inner_steps if steps is None else steps
        params = {name: p.detach() for name, p in parameters_of(self.model).items()}
        data = (support_x.to(self.device), support_y.to(self.device))
        return adapt(params, partial(self._support_loss, self.model), data, steps, self._detached_inner_lr(),
                     first_order=True, functional=False)

    def predict(self, params: Params, x: Tensor) -> Tensor:
        """The model's output on ``x`` with (adapted) ``params``."""
        with torch.no_grad():
            return forward(self.model, params, x.to(self.device))

    def _detached_inner_lr(self) -> LearningRate:
        if self.inner_lrs:
            return {name: lr.detach() for name, lr in self.inner_lrs.items()}
        return self.config.inner_lr

    def _adaptation_curve(
        self, module: nn.Module, params: Params, steps: int, support_x: Tensor, support_y: Tensor, query_x: Tensor,
        query_y: Tensor,
    ) -> Tensor:
        """The query metric of one task after 0, 1, ..., ``steps`` inner steps (``module`` runs it)."""
        curve = [score(self.loss, forward(module, params, query_x), query_y)]
        for _ in range(steps):
            params = adapt(params, partial(self._support_loss, module), (support_x, support_y), 1,
                           self._detached_inner_lr(), first_order=True, functional=self.batched)
            curve.append(score(self.loss, forward(module, params, query_x), query_y))
        return torch.stack(curve)

    def evaluate(self, episode: Episode, steps: int | None = None) -> Tensor:
        """Per-task query metric after 0..``steps`` adaptation steps, shape ``[tasks, steps + 1]``.

        Under torchrun each process adapts to its share of the tasks and every process gets all the rows.
        """
        steps = self.config.eval_inner_steps if steps is None else steps
        return distributed.gather_over_tasks(lambda part: self._evaluate_tasks(_tasks(episode, part), steps),
                                             episode.num_tasks)

    def _evaluate_tasks(self, episode: Episode, steps: int) -> Tensor:
        params = {name: p.detach() for name, p in parameters_of(self.model).items()}
        tensors = episode.to(self.device).tensors()
        with torch.no_grad(), vmap_safe_norm(self.model, self.batched):
            if self.batched:
                return vmap(partial(self._adaptation_curve, self.model, params, steps))(*tensors).cpu()

            def task(module: nn.Module, i: int) -> Tensor:
                with torch.no_grad():  # grad mode is per thread
                    return self._adaptation_curve(module, params, steps, *(t[i] for t in tensors))

            return torch.stack(list(self.tasks.map_with_copies(self.model, task, episode.num_tasks))).cpu()

    # --- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "inner_lrs": {name: lr.detach().clone() for name, lr in self.inner_lrs.items()},
            "optimizer": self.optimizer.state_dict(),
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if set(state["inner_lrs"]) != set(self.inner_lrs):
            raise ValueError("the checkpoint's Meta-SGD step sizes do not match this model's meta_sgd setting")
        with torch.no_grad():
            for name, lr in state["inner_lrs"].items():
                self.inner_lrs[name].copy_(lr)
        self.optimizer.load_state_dict(state["optimizer"])
        _set_capturable(self.optimizer, self.graphed)  # the checkpoint's run may have recorded or not
        if self._recorded_step is not None:  # the recorded graph holds the replaced optimiser state: record anew
            self._recorded_step = GraphedStep(self._update)


def _set_capturable(optimizer: torch.optim.Optimizer, capturable: bool) -> None:
    """Make a loaded Adam capturable (step counts on the parameters' device, for CUDA graphs) or not (on the
    host), whatever the run that saved it used."""
    for group in optimizer.param_groups:
        group["capturable"] = capturable
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if "step" in state:
                state["step"] = state["step"].to(param.device if capturable else "cpu", torch.float32)


def _tasks(episode: Episode, part: slice) -> Episode:
    """The tasks ``part`` of an episode (views, no copy)."""
    return Episode(*(t[part] for t in episode.tensors()))
