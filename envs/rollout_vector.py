"""HalfCheetah task environments vectorised over lanes with ``mujoco.rollout``: what ``gymnasium.make_vec`` returns.

A gymnasium ``SyncVectorEnv`` pays some 35 us of Python per lane and step (wrappers, observation, reward)
around a 7 us MuJoCo step. Here the physics of every lane runs in one ``mujoco.rollout`` call per step on a
pool of threads, in C, and observations and rewards are computed for all lanes at once in numpy; the task
terms and the control cost are the very functions the single environments use
(:meth:`envs.locomotion.HalfCheetahVelEnv.forward_rewards`, :func:`envs.locomotion.control_costs`).

Same environment as ``SyncVectorEnv`` over the single one, up to the constraint solver's tolerance: every
lane reset with seed ``seed + i`` draws the same start state, and the same actions give the same
observations and rewards (``tests/test_rollout_vector.py`` checks it). The one difference: ``mujoco.rollout``
starts each call with a zero solver warm start, where the single environment carries the last step's, so
contact forces agree to the solver's tolerance rather than bit for bit.

Ant is not here: its reward and observation need the contact forces ``cfrc_ext``, which ``mujoco.rollout``
does not return; the Ant tasks are vectorised by :class:`metarl.rl.ShardedVectorEnv` or ``SyncVectorEnv``.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from mujoco import rollout

from envs.base import as_task
from envs.locomotion import HalfCheetahDirEnv, HalfCheetahVelEnv, _HalfCheetahTaskEnv, control_costs
from envs.task_params import task_info
from metarl.tasks import Task

STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS
"""What a lane's state array holds: time, qpos, qvel (and activations and plugin state, none here)."""


class HalfCheetahRolloutVectorEnv(VectorEnv):
    """``num_envs`` lanes of ``env_class`` (a HalfCheetah task environment) stepped together by ``mujoco.rollout``.

    Each lane has its own task: ``set_attr("task", tasks)`` takes one task per lane (or one for all), each
    checked by the single environment's ``set_task``; ``get_attr("task")`` returns them. Lanes are truncated
    after ``max_episode_steps`` steps and, once done, reset on their next step (``AutoresetMode.NEXT_STEP``:
    that step ignores the lane's action and returns the start observation, reward 0), like ``SyncVectorEnv``.
    ``threads`` (default: the CPU count) step the physics; ``env_kwargs`` go to ``env_class``.
    """

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, max_episode_steps: int, env_class: type[_HalfCheetahTaskEnv],
                 threads: int | None = None, **env_kwargs: Any) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if not isinstance(max_episode_steps, int) or isinstance(max_episode_steps, bool) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive integer, got {max_episode_steps!r}")
        threads = (os.cpu_count() or 1) if threads is None else threads
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        self._single = env_class(**env_kwargs)
        self.num_envs, self.max_episode_steps, self.render_mode = num_envs, max_episode_steps, None
        self.single_observation_space = self._single.observation_space
        self.single_action_space = self._single.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.spec = None
        model = self._single.model
        self._model, self._frame_skip, self._dt = model, self._single.frame_skip, self._single.dt
        self._qpos = slice(1, 1 + model.nq)  # in a FULLPHYSICS state, after the time
        self._qvel = slice(1 + model.nq, 1 + model.nq + model.nv)
        self._scratch = mujoco.MjData(model)
        self._datas = [mujoco.MjData(model) for _ in range(min(threads, num_envs))]
        self._pool = rollout.Rollout(nthread=len(self._datas)) if len(self._datas) > 1 else rollout.Rollout(nthread=0)
        self._states = np.zeros((num_envs, mujoco.mj_stateSize(model, STATE)))
        self._lane_rngs = [seeding.np_random()[0] for _ in range(num_envs)]  # until reset(seed=...)
        self.set_attr("task", self._single.get_task())
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._prev_done = np.zeros(num_envs, dtype=bool)
        self._needs_reset = True

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """The single environment's distribution."""
        return self._single.sample_tasks(n, rng)

    def set_attr(self, name: str, values: Any) -> None:
        """``set_attr("task", tasks)``: one task per lane (a list or tuple of ``num_envs``) or one for all."""
        if name != "task":
            raise AttributeError(f"{type(self).__name__} lanes have the attribute 'task' only, not {name!r}")
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} tasks, one per lane, got {len(values)}")
        tasks, vectors = [], []
        for value in values:
            self._single.set_task(as_task(value, self._single.family))
            tasks.append(self._single.get_task())
            vectors.append(self._single.task_vector())
        self._tasks, self._task_vectors = tasks, np.stack(vectors)

    def get_attr(self, name: str) -> tuple[Task, ...]:
        """``get_attr("task")``: the task of each lane."""
        if name != "task":
            raise AttributeError(f"{type(self).__name__} lanes have the attribute 'task' only, not {name!r}")
        return tuple(self._tasks)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start every lane; lane ``i`` is seeded with ``seed + i`` (as ``SyncVectorEnv`` seeds its lanes) and
        ``options={"task": task}`` sets that task on every lane first."""
        if options is not None and set(options) - {"task"}:
            raise ValueError(f"{type(self).__name__}.reset takes only the option 'task', got {sorted(options)}")
        if options is not None:
            self.set_attr("task", options["task"])
        super().reset(seed=seed)
        if seed is not None:
            self._lane_rngs = [seeding.np_random(seed + i)[0] for i in range(self.num_envs)]
        self._reset_lanes(np.ones(self.num_envs, dtype=bool))
        self._steps[:] = 0
        self._prev_done[:] = False
        self._needs_reset = False
        return self._observations(self._states), self._info({"x_position": self._states[:, self._qpos][:, 0]})

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._needs_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != self.action_space.shape:
            raise ValueError(f"expected actions of shape {self.action_space.shape}, got {actions.shape}")
        x_before = self._states[:, self._qpos.start].copy()
        control = np.broadcast_to(actions[:, None, :], (self.num_envs, self._frame_skip, actions.shape[1]))
        trajectory, _ = self._pool.rollout(self._model, self._datas, self._states, np.ascontiguousarray(control),
                                           nstep=self._frame_skip)
        self._states = np.ascontiguousarray(trajectory[:, -1])
        x_after = self._states[:, self._qpos.start]
        x_velocity = (x_after - x_before) / self._dt
        forward = self._single.forward_rewards(x_velocity, self._task_vectors)
        ctrl = control_costs(actions, self.single_action_space.low, self.single_action_space.high,
                             self._single._ctrl_cost_weight)
        rewards = forward - ctrl
        self._steps += 1
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = self._steps >= self.max_episode_steps
        restart = self._prev_done
        if restart.any():
            self._reset_lanes(restart)
            x_after = self._states[:, self._qpos.start]
            for array in (x_velocity, forward, ctrl, rewards):
                array[restart] = 0.0
            truncated[restart] = False
            self._steps[restart] = 0
        self._prev_done = terminated | truncated
        # as SyncVectorEnv merges infos: a restarted lane gives its reset info (x_position, task) only
        info = self._info({"x_position": x_after.copy()})
        if not restart.all():
            for key, value in (("x_velocity", x_velocity), ("reward_forward", forward), ("reward_ctrl", -ctrl)):
                info[key], info[f"_{key}"] = value, ~restart
        return self._observations(self._states), rewards, terminated, truncated, info

    def close(self, **kwargs: Any) -> None:
        self._pool.close()
        self._single.close()
        super().close(**kwargs)

    def _reset_lanes(self, lanes: np.ndarray) -> None:
        """The single environment's ``reset_model`` noise for each of ``lanes``, drawn from the lane's generator."""
        single, data = self._single, self._scratch
        scale = single._reset_noise_scale
        for i in np.flatnonzero(lanes):
            rng = self._lane_rngs[i]
            mujoco.mj_resetData(self._model, data)
            data.qpos[:] = single.init_qpos + rng.uniform(low=-scale, high=scale, size=self._model.nq)
            data.qvel[:] = single.init_qvel + scale * rng.standard_normal(self._model.nv)
            mujoco.mj_getState(self._model, data, self._states[i], STATE)

    def _observations(self, states: np.ndarray) -> np.ndarray:
        qpos = states[:, self._qpos]
        if self._single._exclude_current_positions_from_observation:
            qpos = qpos[:, 1:]
        return np.concatenate([qpos, states[:, self._qvel]], axis=1)

    def _info(self, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        """Per-lane values and the tasks, merged as ``SyncVectorEnv`` merges its lanes' infos."""
        lanes = np.ones(self.num_envs, dtype=bool)
        info: dict[str, Any] = {}
        for key, value in arrays.items():
            info[key], info[f"_{key}"] = value, lanes.copy()
        (name,) = task_info(self._tasks[0])
        info["task"] = {name: np.array([task.params[name] for task in self._tasks]), f"_{name}": lanes.copy()}
        info["_task"] = lanes.copy()
        return info


class HalfCheetahVelVectorEnv(HalfCheetahRolloutVectorEnv):
    """``metarl/HalfCheetahVel-v0`` vectorised: :class:`HalfCheetahRolloutVectorEnv` of :class:`HalfCheetahVelEnv`."""

    def __init__(self, num_envs: int, max_episode_steps: int = 200, threads: int | None = None,
                 **env_kwargs: Any) -> None:
        super().__init__(num_envs, max_episode_steps, HalfCheetahVelEnv, threads, **env_kwargs)


class HalfCheetahDirVectorEnv(HalfCheetahRolloutVectorEnv):
    """``metarl/HalfCheetahDir-v0`` vectorised: :class:`HalfCheetahRolloutVectorEnv` of :class:`HalfCheetahDirEnv`."""

    def __init__(self, num_envs: int, max_episode_steps: int = 200, threads: int | None = None,
                 **env_kwargs: Any) -> None:
        super().__init__(num_envs, max_episode_steps, HalfCheetahDirEnv, threads, **env_kwargs)
