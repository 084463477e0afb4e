"""The paper's oracle baseline: a policy that is told the task.

Finn et al. (2017, section 5.3) compare MAML with an "oracle" policy that receives the task's parameters
(the goal velocity, the direction, the goal position) as part of its input and is trained with TRPO on the
whole task distribution; cbfinn/maml_rl's ``*_oracle.py`` environments append the goal to the observation.
:class:`TaskInObservation` does that for any task-distribution vector environment, so the oracle is
MAML-TRPO's pretrained baseline (``inner_steps=0``) on the wrapped environment.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium.vector import VectorEnv, VectorObservationWrapper
from gymnasium.vector.utils import batch_space

from metarl.tasks import Task


def task_features(task: Task) -> np.ndarray:
    """The task's parameters as one flat float64 vector, by parameter name in sorted order
    (``{"goal": [x, y]}`` gives ``[x, y]``, ``{"velocity": v}`` gives ``[v]``)."""
    if not task.params:
        raise ValueError(f"a {task.family!r} task has no parameters to show the policy")
    values = []
    for name in sorted(task.params):
        value = np.asarray(task.params[name])
        if value.dtype.kind not in "biuf":
            raise ValueError(f"a policy can only be shown numeric task parameters; the {task.family!r} task's "
                             f"{name!r} is {task.params[name]!r}")
        values.append(value.astype(np.float64).ravel())
    return np.concatenate(values)


class TaskInObservation(VectorObservationWrapper):
    """Appends each lane's :func:`task_features` to its observations.

    The features are read from the lanes' tasks (``get_attr("task")``) at every reset, so set tasks with
    ``set_attr("task", ...)`` or ``reset(options={"task": ...})`` and then reset, as
    :class:`metarl.rl.TrajectorySampler` does; a lane keeps its task through its automatic resets.
    """

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env)
        space = env.single_observation_space
        if not isinstance(space, gymnasium.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"TaskInObservation needs flat Box observations, got {space}")
        self._features = self._lane_features()
        unbounded = np.full(self._features.shape[1], np.inf, dtype=space.dtype)
        self.single_observation_space = gymnasium.spaces.Box(
            np.concatenate([space.low, -unbounded]), np.concatenate([space.high, unbounded]), dtype=space.dtype)
        self.observation_space = batch_space(self.single_observation_space, env.num_envs)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return self.env.get_attr(name)

    def set_attr(self, name: str, values: Any) -> None:
        self.env.set_attr(name, values)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        return self.env.call(name, *args, **kwargs)

    def _lane_features(self) -> np.ndarray:
        return np.stack([task_features(task) for task in self.env.get_attr("task")])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        observations, infos = self.env.reset(seed=seed, options=options)
        self._features = self._lane_features()
        return self.observations(observations), infos

    def observations(self, observations: np.ndarray) -> np.ndarray:
        return np.concatenate([observations, self._features.astype(observations.dtype)], axis=1)
