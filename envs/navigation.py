"""2D navigation to a random goal (Finn et al. 2017, section 5.3), as one env and natively vectorised.

A point starts at the origin and moves by its action, a velocity clipped to [-0.1, 0.1] per axis; the
reward is minus the Euclidean distance to the goal after the move, and goals are uniform on
[-0.5, 0.5]^2. As in the original (rllab/maml_rl ``point_env_randgoal`` and pytorch-maml-rl's
``Navigation2DEnv``), an episode terminates when the point is within 0.01 of the goal on both axes;
otherwise it is truncated after 100 steps (``max_episode_steps`` of the registration).

:class:`Navigation2DVectorEnv` steps many lanes with one numpy operation and gives exactly the
trajectories of as many :class:`Navigation2DEnv` (same tasks, same actions), with gymnasium 1.x's
next-step autoreset. The position is kept in float64; observations are float32 like the original's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.base import DEFAULT_TASK_SEED, TaskEnv, TaskLanes, as_task
from envs.task_params import check_keys, check_range, point_in_box, task_info, uniform_point_tasks
from metarl.tasks import Task

FAMILY = "navigation2d"
MAX_SPEED = 0.1
"""Actions are clipped to [-MAX_SPEED, MAX_SPEED] on each axis."""
GOAL_TOLERANCE = 0.01
"""The episode terminates when ``|dx| < GOAL_TOLERANCE`` and ``|dy| < GOAL_TOLERANCE``."""
MAX_EPISODE_STEPS = 100



def observation_space() -> Box:
    """A new observation space (each environment seeds its own): the position, float32."""
    return Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)


def action_space() -> Box:
    """A new action space (each environment seeds its own): a velocity of at most MAX_SPEED per axis."""
    return Box(-MAX_SPEED, MAX_SPEED, shape=(2,), dtype=np.float32)


def sample_goal_tasks(n: int, rng: np.random.Generator, goal_range: tuple[float, float]) -> list[Task]:
    """``n`` tasks ``Task("navigation2d", {"goal": [x, y]})`` with x and y uniform on ``goal_range``."""
    return uniform_point_tasks(FAMILY, "goal", 2, n, rng, goal_range)


def task_goal(task: Task, goal_range: tuple[float, float]) -> np.ndarray:
    """The goal of a navigation task as a float64 array of shape (2,); ``ValueError`` for a bad task."""
    check_keys(task, ("goal",))
    return point_in_box(task, "goal", 2, *goal_range)


def move(position: np.ndarray, goal: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step for positions, goals and actions of shape ``(..., 2)``: new position, reward, terminated.

    The single and the vectorised environment both step through this function, so their trajectories
    are equal to the last bit.
    """
    position = position + np.clip(action, -MAX_SPEED, MAX_SPEED)
    delta = position - goal
    reward = -np.sqrt(np.sum(np.square(delta), axis=-1))
    terminated = np.all(np.abs(delta) < GOAL_TOLERANCE, axis=-1)
    return position, reward, terminated


def _action_array(action: Any, shape: tuple[int, ...]) -> np.ndarray:
    action = np.asarray(action, dtype=np.float64)
    if action.shape != shape:
        raise ValueError(f"expected an action of shape {shape}, got shape {action.shape}")
    return action


class Navigation2DEnv(TaskEnv):
    """Move a point from the origin to a goal; ``metarl/Navigation2D-v0``.

    Observation: the position, float32, shape (2,). Action: a velocity, ``Box(-0.1, 0.1, (2,))``; the
    environment clips actions to it. Reward: minus the distance to the goal after the move. Tasks:
    ``Task("navigation2d", {"goal": [x, y]})`` with x, y ~ U[goal_range] (default [-0.5, 0.5]);
    ``set_task`` refuses goals outside ``goal_range``. ``info["task"]`` holds the goal.
    """

    family = FAMILY
    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, goal_range: Sequence[float] = (-0.5, 0.5)) -> None:
        self._goal_range = check_range("goal_range", goal_range)
        self.observation_space = observation_space()
        self.action_space = action_space()
        self._position = np.zeros(2)
        self.set_default_task()

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        return sample_goal_tasks(n, rng, self._goal_range)

    def _apply_task(self, task: Task) -> None:
        self._goal = task_goal(task, self._goal_range)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Put the point at the origin; ``options`` may hold ``"task"`` and nothing else."""
        if options is not None and set(options) - {"task"}:
            raise ValueError(f"Navigation2DEnv.reset takes only the option 'task', got {sorted(options)}")
        super().reset(seed=seed, options=options)
        self._position = np.zeros(2)
        return self._position.astype(np.float32), {"task": task_info(self._task)}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._position, reward, terminated = move(self._position, self._goal, _action_array(action, (2,)))
        info = {"task": task_info(self._task)}
        return self._position.astype(np.float32), float(reward), bool(terminated), False, info


class Navigation2DVectorEnv(TaskLanes, VectorEnv):
    """``num_envs`` Navigation2D lanes stepped together in numpy; what ``gymnasium.make_vec`` returns.

    Each lane has its own task: ``set_attr("task", tasks)`` takes one task per lane (or one task for
    all), ``get_attr("task")`` returns them. Lanes are truncated after ``max_episode_steps`` steps and,
    once done, reset on their next step (``AutoresetMode.NEXT_STEP``: that step ignores the lane's
    action and returns the start observation, reward 0, not terminated, not truncated), like
    ``SyncVectorEnv`` over :class:`Navigation2DEnv`. A fresh lane has the default task of
    :class:`Navigation2DEnv`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self, num_envs: int, max_episode_steps: int = MAX_EPISODE_STEPS, goal_range: Sequence[float] = (-0.5, 0.5)
    ) -> None:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if not isinstance(max_episode_steps, int) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive integer, got {max_episode_steps!r}")
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.render_mode = None
        self._goal_range = check_range("goal_range", goal_range)
        self.single_observation_space = observation_space()
        self.single_action_space = action_space()
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        default = sample_goal_tasks(1, np.random.default_rng(DEFAULT_TASK_SEED), self._goal_range)[0]
        self._tasks: list[Task] = [default] * num_envs
        self._goals = np.tile(task_goal(default, self._goal_range), (num_envs, 1))
        self._positions = np.zeros((num_envs, 2))
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._prev_done = np.zeros(num_envs, dtype=bool)
        self._needs_reset = True

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """The same distribution as :meth:`Navigation2DEnv.sample_tasks`."""
        return sample_goal_tasks(n, rng, self._goal_range)

    def _set_tasks(self, values: list[Any]) -> None:
        tasks = [as_task(value, FAMILY) for value in values]
        self._goals = np.stack([task_goal(task, self._goal_range) for task in tasks])
        self._tasks = tasks

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Put every lane at the origin; ``options={"task": task}`` sets that task on every lane first.

        The environment is deterministic, so ``seed`` only seeds ``np_random`` (for gymnasium's API).
        """
        if options is not None and set(options) - {"task"}:
            raise ValueError(f"Navigation2DVectorEnv.reset takes only the option 'task', got {sorted(options)}")
        if options is not None:
            self.set_attr("task", options["task"])
        super().reset(seed=seed)
        self._positions = np.zeros((self.num_envs, 2))
        self._steps[:] = 0
        self._prev_done[:] = False
        self._needs_reset = False
        return self._positions.astype(np.float32), self._info()

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._needs_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        positions, rewards, terminated = move(
            self._positions, self._goals, _action_array(actions, (self.num_envs, 2))
        )
        self._steps += 1
        truncated = self._steps >= self.max_episode_steps
        restart = self._prev_done
        positions[restart] = 0.0
        rewards[restart] = 0.0
        terminated[restart] = False
        truncated[restart] = False
        self._steps[restart] = 0
        self._positions = positions
        self._prev_done = terminated | truncated
        return positions.astype(np.float32), rewards, terminated, truncated, self._info()

    def _info(self) -> dict[str, Any]:
        """The per-lane ``{"task": {"goal": ...}}`` infos merged as ``SyncVectorEnv`` merges them."""
        lanes = np.ones(self.num_envs, dtype=bool)
        return {"task": {"goal": self._goals.copy(), "_goal": lanes}, "_task": lanes.copy()}
