"""Lock-step sampling of a meta-batch's episodes from a vector environment.

All ``tasks x episodes_per_task`` episodes of an iteration run side by side: one batched policy
forward per time step for every lane (``vmap`` over the tasks' parameter sets), one batched
environment step. Policies act in [-1, 1] and the sampler rescales to the environment's action
bounds (:func:`action_affine`); the recorded actions are the policy's. Lane ``i`` belongs to task
``i // episodes_per_task``; tasks are assigned with
gymnasium's per-lane ``set_attr("task", [...])``.

Each task gets ``episodes_per_task`` lanes. Under ``sampling="episodes"`` (the paper's "20 trajectories
per task") a lane runs one episode of at most ``horizon`` steps. Under ``sampling="steps"`` (rllab's
``BatchSampler`` in MAML's code: at least ``episodes_per_task x horizon`` steps per task, in whole
episodes) a lane whose episode ends before the lane has taken ``horizon`` steps starts another and
finishes the last one it starts, so an Ant that falls early is replaced by new episodes instead of
leaving its task with fewer steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import Tensor, nn
from torch.func import functional_call, vmap

from metarl.choices import check_choice
from metarl.functional import Params
from metarl.tasks import Task

Sampling = Literal["episodes", "steps"]
"""What fills a task's lanes: one episode each, or episodes back to back until each lane took ``horizon`` steps."""
SAMPLINGS: tuple[str, ...] = get_args(Sampling)


@dataclass
class Trajectories:
    """Episodes grouped by task: tensors shaped ``[tasks, time, lanes, ...]``.

    ``mask`` is 1 for the steps of an episode and 0 where a lane has no step: after its last episode
    ended (a terminated Ant, say), or while the environment restarts it between two episodes.
    ``timesteps`` counts each step from the start of its episode (0 at the first step), so a lane of
    several episodes (``sampling="steps"``) is cut into them where it is 0.
    """

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    mask: Tensor
    timesteps: Tensor
    tasks: list[Task]
    seconds: float
    """Wall time of the sampling (environment and policy)."""

    @property
    def env_steps(self) -> int:
        return int(self.mask.sum().item())

    def starts(self) -> Tensor:
        """1 at the first step of every episode, ``[tasks, time, lanes]``."""
        return self.mask * (self.timesteps == 0)

    def episode_counts(self) -> Tensor:
        """Episodes of each task, ``[tasks]``."""
        return self.starts().sum(dim=(1, 2))

    def mean_returns(self) -> Tensor:
        """Mean undiscounted episode return of each task, ``[tasks]``."""
        return (self.rewards * self.mask).sum(dim=(1, 2)) / self.episode_counts()


def stack_params(params: Params, tasks: int) -> Params:
    """The same (detached) parameters for each of ``tasks`` tasks, on a leading task axis, without copying."""
    return {name: p.detach().expand(tasks, *p.shape) for name, p in params.items()}


def policy_per_task(policy: nn.Module, params: Params, observations: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean, log_std)`` of each task's policy on its own observations: ``params`` and
    ``observations`` share a leading task axis. A policy with a ``forward_per_task(params, observations)`` of
    its own (:class:`metarl.models.GaussianMLPPolicy`: the same numbers, faster) computes it; any other
    policy runs under ``vmap``."""
    forward_per_task = getattr(policy, "forward_per_task", None)
    if forward_per_task is not None:
        return forward_per_task(params, observations)
    return vmap(lambda p, o: functional_call(policy, p, (o,)))(params, observations)


def action_affine(space: gymnasium.spaces.Space, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(scale, center)`` mapping the policy's actions in [-1, 1] onto a bounded ``Box`` action space.

    As rllab's ``normalize`` wrapper did for MAML's experiments, the policy acts in [-1, 1] on every
    axis and the environment receives ``center + scale * action`` (it clips what falls outside), so the
    initial standard deviation of 1 means the same exploration whatever the action units. An
    unbounded axis is passed through unchanged.
    """
    if not isinstance(space, gymnasium.spaces.Box):
        raise ValueError(f"the Gaussian policy needs a Box action space, got {space}")
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    bounded = np.isfinite(low) & np.isfinite(high)
    scale, center = np.ones_like(low), np.zeros_like(low)
    scale[bounded] = (high[bounded] - low[bounded]) / 2
    center[bounded] = (high[bounded] + low[bounded]) / 2
    return (torch.as_tensor(scale, dtype=dtype, device=device), torch.as_tensor(center, dtype=dtype, device=device))


class TrajectorySampler:
    """Samples ``episodes_per_task`` lanes of episodes of at most ``horizon`` steps for each task, in lock-step.

    ``make_env(lanes)`` builds the vector environment (for example
    ``lambda n: gymnasium.make_vec("envs:metarl/Navigation2D-v0", num_envs=n)``); it is built once
    per lane count and reused. ``sampling`` chooses what a lane holds (see the module's docstring); under
    ``"steps"`` the environment must restart a finished lane on its next step
    (``AutoresetMode.NEXT_STEP``, gymnasium's default and that of every environment here).
    """

    def __init__(
        self,
        make_env: Callable[[int], gymnasium.vector.VectorEnv],
        policy: nn.Module,
        episodes_per_task: int,
        horizon: int,
        device: torch.device | str = "cpu",
        sampling: Sampling = "episodes",
    ) -> None:
        if episodes_per_task < 1 or horizon < 1:
            raise ValueError(f"need episodes_per_task >= 1 and horizon >= 1, got {episodes_per_task}, {horizon}")
        check_choice("sampling", sampling, SAMPLINGS)
        self.make_env, self.policy = make_env, policy
        self.episodes_per_task, self.horizon, self.sampling = episodes_per_task, horizon, sampling
        self.device = torch.device(device)
        self._envs: dict[int, gymnasium.vector.VectorEnv] = {}

    def env(self, lanes: int) -> gymnasium.vector.VectorEnv:
        if lanes not in self._envs:
            env = self.make_env(lanes)
            if env.num_envs != lanes:
                raise ValueError(f"make_env({lanes}) returned a vector env of {env.num_envs} lanes")
            autoreset = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
            if self.sampling == "steps" and autoreset != AutoresetMode.NEXT_STEP:
                raise ValueError(f"sampling='steps' needs a vector env that restarts a lane on the step after it "
                                 f"ended (AutoresetMode.NEXT_STEP); make_env({lanes}) gave {autoreset}")
            self._envs[lanes] = env
        return self._envs[lanes]

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    def _actions(self, params: Params, observations: Tensor, noise: Tensor) -> Tensor:
        """Sampled actions ``[tasks, episodes, act]``: each task's policy on its own lanes."""
        mean, log_std = policy_per_task(self.policy, params, observations)
        return mean + log_std.exp() * noise

    @torch.no_grad()
    def sample(self, params: Params, tasks: Sequence[Task], seed: int, episodes_per_task: int | None = None,
               first_task: int = 0, batch_size: int | None = None) -> Trajectories:
        """Run one batch of episodes; ``params`` holds one parameter set per task on a leading axis
        (:func:`stack_params` gives every task the same one).

        ``seed`` seeds the environments' resets (lane ``i`` gets ``seed + i``) and the action noise,
        so the same seed, tasks and parameters give the same trajectories. ``episodes_per_task``
        overrides the sampler's own count for this call (evaluation may use more episodes).

        ``tasks`` may be a part of a meta-batch (one process's share, :mod:`metarl.distributed`): tasks
        ``first_task`` onwards of ``batch_size`` tasks. Their lanes then get the seeds and the action noise
        they have when the whole meta-batch is sampled with ``seed``, so they get the same trajectories.
        """
        tasks = list(tasks)
        n_tasks = len(tasks)
        per_task = self.episodes_per_task if episodes_per_task is None else episodes_per_task
        if per_task < 1:
            raise ValueError(f"episodes_per_task must be >= 1, got {per_task}")
        batch_size = n_tasks if batch_size is None else batch_size
        if first_task < 0 or first_task + n_tasks > batch_size:
            raise ValueError(f"tasks {first_task} to {first_task + n_tasks} are not part of a batch of {batch_size}")
        lanes = n_tasks * per_task
        if any(p.shape[0] != n_tasks for p in params.values()):
            raise ValueError(f"params must have a leading axis of {n_tasks} tasks (see stack_params)")
        stacked = {k: v.detach().to(self.device) for k, v in params.items()}
        env = self.env(lanes)
        env.set_attr("task", [task for task in tasks for _ in range(per_task)])
        scale, center = action_affine(env.single_action_space, self.policy.log_std.dtype, self.device)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        started = time.perf_counter()
        observation, _ = env.reset(seed=seed + first_task * per_task)  # lane i gets seed + i, i counted in the batch
        columns: dict[str, list[Tensor]] = {"observations": [], "actions": [], "rewards": [], "mask": [],
                                            "timesteps": []}
        alive = torch.ones(lanes, dtype=torch.bool)         # the lane still samples
        restarting = torch.zeros(lanes, dtype=torch.bool)   # its episode ended: this step restarts it, unrecorded
        timestep = torch.zeros(lanes, dtype=torch.long)
        lane_steps = torch.zeros(lanes, dtype=torch.long)
        action_size, dtype = self.policy.log_std.shape[0], self.policy.log_std.dtype
        while alive.any():
            obs = torch.as_tensor(np.asarray(observation), dtype=dtype, device=self.device)
            obs = obs.view(n_tasks, per_task, -1)
            noise = torch.randn(batch_size, per_task, action_size, generator=generator, device=self.device,
                                dtype=dtype)[first_task:first_task + n_tasks]
            action = self._actions(stacked, obs, noise)
            env_action = action.view(lanes, -1) * scale + center
            observation, reward, terminated, truncated, _ = env.step(env_action.cpu().numpy())
            recorded = alive & ~restarting
            columns["observations"].append(obs)
            columns["actions"].append(action)
            columns["rewards"].append(torch.as_tensor(np.asarray(reward), dtype=dtype).view(n_tasks, per_task))
            columns["mask"].append(recorded.to(dtype).view(n_tasks, per_task))
            columns["timesteps"].append(timestep.view(n_tasks, per_task))
            # an episode ends where the environment says so or at the horizon; one that reaches the horizon
            # has filled its lane, so the environment never has to restart a lane it did not end itself
            ended = recorded & (torch.as_tensor(np.logical_or(terminated, truncated)) | (timestep + 1 >= self.horizon))
            lane_steps += recorded
            timestep = torch.where(recorded & ~ended, timestep + 1, 0)
            if self.sampling == "episodes":
                alive &= ~ended
            else:
                alive &= ~(ended & (lane_steps >= self.horizon))
                restarting = ended & alive
        seconds = time.perf_counter() - started
        batch = {name: torch.stack(values, dim=1).to(self.device) for name, values in columns.items()}
        return Trajectories(**batch, tasks=tasks, seconds=seconds)
