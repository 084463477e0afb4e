"""The MuJoCo task environments vectorised over lanes: what ``gymnasium.make_vec("metarl/...")`` returns.

A gymnasium ``SyncVectorEnv`` pays some 35 us of Python per lane and step (wrappers, observation, reward)
around the physics (7 us for a HalfCheetah step, ~75 us for an Ant one). Here the lanes' physics runs on
``workers`` cores (default: :func:`default_workers`), and observations, rewards and terminations are
computed for all lanes at once in numpy, with the task terms and costs of the single environments
(``forward_rewards`` / ``task_rewards`` of :mod:`envs.locomotion`, :func:`envs.locomotion.control_costs`):

- HalfCheetah (:class:`HalfCheetahRolloutVectorEnv`): one ``mujoco.rollout`` call per step for all lanes, on
  ``workers`` threads. ``mujoco.rollout`` starts each call with a zero warm start of the constraint solver
  where the single environment carries the last step's, so states agree with ``SyncVectorEnv``'s to the
  solver's tolerance (~2e-8 after 200 steps), not bit for bit.
- Ant (:class:`AntWorkersVectorEnv`): its reward and observation need the contact forces ``cfrc_ext``,
  which ``mujoco.rollout`` does not return, so ``workers`` processes (:class:`metarl.rl.parallel.WorkerPool`)
  step contiguous shares of the lanes with ``mujoco.mj_step`` and ``mj_rnePostConstraint``, each lane's
  integration state loaded into one ``MjData`` per process. Bit for bit the single environment's physics.

Both behave as ``SyncVectorEnv`` over the single environment (``tests/test_locomotion_vector.py``): lane
``i`` reset with seed ``s + i`` draws the same start state, tasks are set per lane with
``set_attr("task", tasks)``, lanes are truncated after ``max_episode_steps`` and reset on their next step
(``AutoresetMode.NEXT_STEP``), and infos are merged as ``SyncVectorEnv`` merges them.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from mujoco import rollout

from envs.base import TaskLanes, as_task
from envs.locomotion import (
    ANT_SURVIVE_REWARD,
    AntDirEnv,
    AntGoalEnv,
    AntVelEnv,
    HalfCheetahDirEnv,
    HalfCheetahVelEnv,
    _AntTaskEnv,
    _LocomotionTaskEnv,
    control_costs,
)
from metarl.rl.parallel import WorkerPool, lane_shards
from metarl.tasks import Task

Arrays = dict[str, np.ndarray]


def default_workers() -> int:
    """This process's share of the CPU cores: all of them, divided among torchrun's processes on this machine
    (``LOCAL_WORLD_SIZE``) when it started several, so that they do not oversubscribe the cores."""
    return max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class _LocomotionVectorEnv(TaskLanes, VectorEnv):
    """Lanes of one MuJoCo task environment: tasks, seeding, time limit, autoreset and infos.

    Subclasses own the physics: :meth:`_reset_lanes` puts the chosen lanes at a start state drawn with each
    lane's generator, :meth:`_advance` steps every lane, restarts the lanes whose episode ended, and returns
    observations, rewards, terminations and the step's info arrays, :meth:`_observations` and
    :meth:`_reset_info` describe the current states.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, max_episode_steps: int, env_class: type[_LocomotionTaskEnv],
                 workers: int | None, **env_kwargs: Any) -> None:
        self.num_envs = _positive_int("num_envs", num_envs)
        self.max_episode_steps = _positive_int("max_episode_steps", max_episode_steps)
        self.workers = min(_positive_int("workers", default_workers() if workers is None else workers), num_envs)
        self.render_mode, self.spec = None, None
        self._single = env_class(**env_kwargs)
        self.single_observation_space = self._single.observation_space
        self.single_action_space = self._single.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._model = self._single.model
        self._lane_rngs = [seeding.np_random()[0] for _ in range(num_envs)]  # until reset(seed=...)
        self.set_attr("task", self._single.get_task())
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._prev_done = np.zeros(num_envs, dtype=bool)
        self._needs_reset = True

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """The single environment's distribution."""
        return self._single.sample_tasks(n, rng)

    def _set_tasks(self, values: list[Any]) -> None:
        """Each task checked by the single environment's ``set_task``."""
        tasks, vectors = [], []
        for value in values:
            self._single.set_task(as_task(value, self._single.family))
            tasks.append(self._single.get_task())
            vectors.append(self._single.task_vector())
        self._tasks, self._task_vectors = tasks, np.stack(vectors)
        self._task_info = {name: np.array([task.params[name] for task in tasks]) for name in tasks[0].params}

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
        everything = np.ones(self.num_envs, dtype=bool)
        self._reset_lanes(everything)
        self._steps[:] = 0
        self._prev_done[:] = False
        self._needs_reset = False
        return self._observations(), self._merge_info(self._reset_info(), {}, everything)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._needs_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != self.action_space.shape:
            raise ValueError(f"expected actions of shape {self.action_space.shape}, got {actions.shape}")
        restart = self._prev_done  # these lanes ignore their action and start a new episode
        observations, rewards, terminated, step_info = self._advance(actions, restart)
        self._steps += 1
        truncated = self._steps >= self.max_episode_steps
        reset_info: Arrays = {}
        if restart.any():
            rewards[restart], terminated[restart], truncated[restart] = 0.0, False, False
            self._steps[restart] = 0
            reset_info = self._reset_info()
        self._prev_done = terminated | truncated
        return observations, rewards, terminated, truncated, self._merge_info(reset_info, step_info, restart)

    def _merge_info(self, reset_info: Arrays, step_info: Arrays, restart: np.ndarray) -> dict[str, Any]:
        """What ``SyncVectorEnv`` makes of its lanes' infos: restarted lanes give their reset info, the others
        their step info; a key is kept with a mask of the lanes that gave it."""
        info: dict[str, Any] = {}
        for key in [*reset_info, *(k for k in step_info if k not in reset_info)]:
            mask = (restart & (key in reset_info)) | (~restart & (key in step_info))
            if mask.any():
                value = np.where(restart, reset_info.get(key, 0.0), step_info.get(key, 0.0))
                info[key], info[f"_{key}"] = value.astype(np.float64, copy=False), mask
        everything = np.ones(self.num_envs, dtype=bool)
        info["task"] = {name: values.copy() for name, values in self._task_info.items()}
        info["task"].update({f"_{name}": everything.copy() for name in self._task_info})
        info["_task"] = everything
        return info

    def _draw_start(self, lane: int) -> tuple[np.ndarray, np.ndarray]:
        """``(qpos, qvel)`` of the single environment's ``reset_model``, drawn with the lane's generator."""
        single, rng, scale = self._single, self._lane_rngs[lane], self._single._reset_noise_scale
        qpos = single.init_qpos + rng.uniform(low=-scale, high=scale, size=self._model.nq)
        qvel = single.init_qvel + scale * rng.standard_normal(self._model.nv)
        return qpos, qvel

    @abstractmethod
    def _reset_lanes(self, lanes: np.ndarray) -> None:
        """Put the lanes where ``lanes`` is True at a start state drawn by :meth:`_draw_start`."""

    @abstractmethod
    def _advance(self, actions: np.ndarray, restart: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, Arrays]:
        """Step every lane with ``actions``, then put the lanes where ``restart`` is True at a start state as
        :meth:`_reset_lanes` does: ``(observations, rewards, terminated, info arrays)`` of the resulting states
        (the restarted lanes' rewards, terminations and info are discarded)."""

    @abstractmethod
    def _observations(self) -> np.ndarray:
        """The observation of every lane's current state."""

    @abstractmethod
    def _reset_info(self) -> Arrays:
        """The single environment's reset info, for every lane's current state."""


class HalfCheetahRolloutVectorEnv(_LocomotionVectorEnv):
    """``num_envs`` lanes of a HalfCheetah task environment stepped together by ``mujoco.rollout`` on ``workers``
    threads (default: :func:`default_workers`); ``env_kwargs`` go to ``env_class``."""

    STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS
    """A lane's state: time, qpos, qvel (activations and plugin state: none here)."""

    def __init__(self, num_envs: int, max_episode_steps: int, env_class: type[_LocomotionTaskEnv],
                 workers: int | None = None, **env_kwargs: Any) -> None:
        super().__init__(num_envs, max_episode_steps, env_class, workers, **env_kwargs)
        model = self._model
        self._qpos = slice(1, 1 + model.nq)  # after the time
        self._qvel = slice(1 + model.nq, 1 + model.nq + model.nv)
        self._datas = [mujoco.MjData(model) for _ in range(self.workers)]
        self._pool = rollout.Rollout(nthread=self.workers if self.workers > 1 else 0)
        initial = mujoco.MjData(model)
        self._initial_state = np.zeros(mujoco.mj_stateSize(model, self.STATE))
        mujoco.mj_getState(model, initial, self._initial_state, self.STATE)
        if self._initial_state.size != 1 + model.nq + model.nv:
            raise ValueError(f"{type(self).__name__} writes reset states as time, qpos and qvel, but this model's "
                             f"state also has activations, mocap or plugin entries ({self._initial_state.size} values)")
        self._states = np.tile(self._initial_state, (num_envs, 1))

    def close(self, **kwargs: Any) -> None:
        self._pool.close()
        self._single.close()
        super().close(**kwargs)

    def _reset_lanes(self, lanes: np.ndarray) -> None:
        """The state ``mj_resetData`` then the drawn ``qpos``, ``qvel`` give, written directly: a HalfCheetah state
        holds nothing else but the time (reset to 0)."""
        indices = np.flatnonzero(lanes)
        if indices.size:
            starts = [self._draw_start(i) for i in indices]
            self._states[indices] = self._initial_state
            self._states[indices, self._qpos] = [qpos for qpos, _ in starts]
            self._states[indices, self._qvel] = [qvel for _, qvel in starts]

    def _advance(self, actions: np.ndarray, restart: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, Arrays]:
        frame_skip = self._single.frame_skip
        x_before = self._states[:, self._qpos.start].copy()
        control = np.ascontiguousarray(np.broadcast_to(actions[:, None], (self.num_envs, frame_skip, actions.shape[1])))
        trajectory, _ = self._pool.rollout(self._model, self._datas, self._states, control, nstep=frame_skip)
        self._states = np.ascontiguousarray(trajectory[:, -1])
        x_after = self._states[:, self._qpos.start]
        x_velocity = (x_after - x_before) / self._single.dt
        forward = self._single.forward_rewards(x_velocity, self._task_vectors)
        ctrl = control_costs(actions, self.single_action_space.low, self.single_action_space.high,
                             self._single._ctrl_cost_weight)
        info = {"x_position": x_after.copy(), "x_velocity": x_velocity, "reward_forward": forward, "reward_ctrl": -ctrl}
        self._reset_lanes(restart)
        return self._observations(), forward - ctrl, np.zeros(self.num_envs, dtype=bool), info

    def _observations(self) -> np.ndarray:
        qpos = self._states[:, self._qpos]
        if self._single._exclude_current_positions_from_observation:
            qpos = qpos[:, 1:]
        return np.concatenate([qpos, self._states[:, self._qvel]], axis=1)

    def _reset_info(self) -> Arrays:
        return {"x_position": self._states[:, self._qpos.start].copy()}


class _AntLanes:
    """The physics of some Ant lanes: what :class:`AntWorkersVectorEnv` holds itself (one worker) or each of its
    worker processes holds. Both methods return the lanes' ``(qpos, qvel, cfrc_ext, torso xy)`` arrays, the
    state the vector environment computes rewards and observations from.

    The lanes share one ``MjData`` and keep their own integration state (``mjSTATE_INTEGRATION``: time,
    positions, velocities, controls, the solver's warm start), loaded before and saved after each lane's step:
    1.2 kB per lane where an ``MjData`` each meant sweeping hundreds of megabytes per step
    through memory on a 16-core machine. The result is the single environment's physics bit for bit.
    """

    STATE = mujoco.mjtState.mjSTATE_INTEGRATION

    def __init__(self, env_class: type[_AntTaskEnv], env_kwargs: dict[str, Any], lanes: int) -> None:
        self._single = env_class(**env_kwargs)
        model = self._model = self._single.model
        self._data = mujoco.MjData(model)
        self._states = np.zeros((lanes, mujoco.mj_stateSize(model, self.STATE)))
        self._arrays = (np.zeros((lanes, model.nq)), np.zeros((lanes, model.nv)), np.zeros((lanes, model.nbody, 6)),
                        np.zeros((lanes, 2)))

    def reset(self, lanes: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> tuple[np.ndarray, ...]:
        """Put lanes ``lanes`` (indices) at the start states ``qpos``, ``qvel`` (one row each), as the single
        environment's ``reset`` does."""
        model, data = self._model, self._data
        for i, position, velocity in zip(lanes, qpos, qvel):
            mujoco.mj_resetData(model, data)
            data.qpos[:], data.qvel[:] = position, velocity
            mujoco.mj_forward(model, data)
            self._save(i)
        return self._arrays

    def step(self, actions: np.ndarray, restart: np.ndarray, qpos: np.ndarray,
             qvel: np.ndarray) -> tuple[np.ndarray, ...]:
        """One environment step (``frame_skip`` physics steps) of every lane, as ``MujocoEnv.do_simulation``,
        then :meth:`reset` of lanes ``restart`` (in the same message, to save the parent a round trip)."""
        model, data, frame_skip = self._model, self._data, self._single.frame_skip
        for i, action in enumerate(actions):
            mujoco.mj_setState(model, data, self._states[i], self.STATE)
            data.ctrl[:] = action
            mujoco.mj_step(model, data, nstep=frame_skip)
            mujoco.mj_rnePostConstraint(model, data)
            self._save(i)
        return self.reset(restart, qpos, qvel)

    def close(self) -> None:
        self._single.close()

    def _save(self, lane: int) -> None:
        data, (qpos, qvel, cfrc_ext, torso_xy) = self._data, self._arrays
        mujoco.mj_getState(self._model, data, self._states[lane], self.STATE)
        qpos[lane], qvel[lane], cfrc_ext[lane] = data.qpos, data.qvel, data.cfrc_ext
        torso_xy[lane] = data.xpos[self._single._main_body, :2]


class AntWorkersVectorEnv(_LocomotionVectorEnv):
    """``num_envs`` lanes of an Ant task environment stepped in contiguous shares by ``workers`` processes
    (default: :func:`default_workers`; with one, this process steps them), each lane with ``mj_step`` and
    ``mj_rnePostConstraint`` as the single environment does; ``env_kwargs`` go to ``env_class`` (in the
    workers too, so they must pickle).

    Processes, not threads: ``mj_step`` releases the GIL, but the per-lane Python around it does not, and
    threads measured 25% of the ``mujoco.rollout`` ceiling on 16 cores. The workers are spawned, so a script
    that builds this environment with ``workers > 1`` guards its entry point with
    ``if __name__ == "__main__":``. Call :meth:`close` to stop them.
    """

    def __init__(self, num_envs: int, max_episode_steps: int, env_class: type[_AntTaskEnv],
                 workers: int | None = None, **env_kwargs: Any) -> None:
        super().__init__(num_envs, max_episode_steps, env_class, workers, **env_kwargs)
        model = self._model
        self._qpos, self._qvel = np.zeros((num_envs, model.nq)), np.zeros((num_envs, model.nv))
        self._cfrc_ext = np.zeros((num_envs, model.nbody, 6))
        self._torso_xy = np.zeros((num_envs, 2))
        self._shares = lane_shards(num_envs, self.workers)
        if self.workers == 1:
            self._lanes, self._pool = _AntLanes(env_class, env_kwargs, num_envs), None
        else:
            self._lanes = None
            self._pool = WorkerPool(_AntLanes, [(env_class, env_kwargs, s.stop - s.start) for s in self._shares],
                                    owner=f"{type(self).__name__}(num_envs={num_envs}, workers={self.workers})",
                                    labels=[f"lanes {s.start}..{s.stop - 1}" for s in self._shares])

    def close(self, **kwargs: Any) -> None:
        if self._pool is not None:
            self._pool.close()
        else:
            self._lanes.close()
        self._single.close()
        super().close(**kwargs)

    def _ask(self, method: str, args: list[tuple[Any, ...]]) -> None:
        """``method`` of every share's physics with its ``args``; the arrays they return copied in."""
        if self._pool is None:
            results = [getattr(self._lanes, method)(*args[0])]
        else:
            results = self._pool.ask_all(method, args)
        for lanes, arrays in zip(self._shares, results):
            for mine, theirs in zip((self._qpos, self._qvel, self._cfrc_ext, self._torso_xy), arrays):
                mine[lanes] = theirs

    def _starts(self, lanes: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """For each share: its lanes among ``lanes`` (indices within the share) and their start states."""
        starts = []
        for share in self._shares:
            chosen = np.flatnonzero(lanes[share])
            drawn = [self._draw_start(share.start + i) for i in chosen]
            starts.append((chosen, np.array([q for q, _ in drawn]).reshape(len(chosen), self._model.nq),
                           np.array([v for _, v in drawn]).reshape(len(chosen), self._model.nv)))
        return starts

    def _reset_lanes(self, lanes: np.ndarray) -> None:
        self._ask("reset", self._starts(lanes))

    def _advance(self, actions: np.ndarray, restart: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, Arrays]:
        single = self._single
        xy_before = self._torso_xy.copy()
        self._ask("step", [(actions[share], *start) for share, start in zip(self._shares, self._starts(restart))])
        x_velocity, y_velocity = ((self._torso_xy - xy_before) / single.dt).T
        task = single.task_rewards(x_velocity, self._qpos[:, :2], self._task_vectors)
        ctrl = control_costs(actions, self.single_action_space.low, self.single_action_space.high,
                             single._ctrl_cost_weight)
        contact = single._contact_cost_weight * np.square(self._contact_forces()).sum(axis=(1, 2))
        rewards = task - ctrl - contact + ANT_SURVIVE_REWARD
        state = np.concatenate([self._qpos, self._qvel], axis=1)
        min_z, max_z = single._healthy_z_range
        healthy = np.isfinite(state).all(axis=1) & (min_z <= self._qpos[:, 2]) & (self._qpos[:, 2] <= max_z)
        terminated = ~healthy if single._terminate_when_unhealthy else np.zeros(self.num_envs, dtype=bool)
        info = {**self._reset_info(), "x_velocity": x_velocity, "y_velocity": y_velocity,
                single._task_reward_name: task, "reward_ctrl": -ctrl, "reward_contact": -contact,
                "reward_survive": np.full(self.num_envs, ANT_SURVIVE_REWARD)}
        return self._observations(), rewards, terminated, info

    def _contact_forces(self) -> np.ndarray:
        return np.clip(self._cfrc_ext, *self._single._contact_force_range)

    def _observations(self) -> np.ndarray:
        single = self._single
        qpos = self._qpos[:, 2:] if single._exclude_current_positions_from_observation else self._qpos
        parts = [qpos, self._qvel]
        if single._include_cfrc_ext_in_observation:
            parts.append(self._contact_forces()[:, 1:].reshape(self.num_envs, -1))
        return np.concatenate(parts, axis=1)

    def _reset_info(self) -> Arrays:
        return {"x_position": self._qpos[:, 0].copy(), "y_position": self._qpos[:, 1].copy(),
                "distance_from_origin": np.linalg.norm(self._qpos[:, :2], axis=1)}


def _vector_class(base: type[_LocomotionVectorEnv], env_class: type[_LocomotionTaskEnv]) -> type:
    """``base`` fixed to ``env_class``, with the id's default horizon: what the registry names as vector entry point."""

    def __init__(self: Any, num_envs: int, max_episode_steps: int = 200, workers: int | None = None,
                 **env_kwargs: Any) -> None:
        base.__init__(self, num_envs, max_episode_steps, env_class, workers, **env_kwargs)

    name = env_class.__name__.removesuffix("Env") + "VectorEnv"
    doc = f"``{env_class.__name__}`` lanes: :class:`{base.__name__}` of it (what ``gymnasium.make_vec`` returns)."
    return type(name, (base,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})


HalfCheetahVelVectorEnv = _vector_class(HalfCheetahRolloutVectorEnv, HalfCheetahVelEnv)
HalfCheetahDirVectorEnv = _vector_class(HalfCheetahRolloutVectorEnv, HalfCheetahDirEnv)
AntVelVectorEnv = _vector_class(AntWorkersVectorEnv, AntVelEnv)
AntDirVectorEnv = _vector_class(AntWorkersVectorEnv, AntDirEnv)
AntGoalVectorEnv = _vector_class(AntWorkersVectorEnv, AntGoalEnv)
