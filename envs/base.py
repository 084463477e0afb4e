"""The task protocol of a single gymnasium environment whose tasks come from a distribution.

A :class:`TaskEnv` is a ``gymnasium.Env`` and a :class:`metarl.tasks.TaskDistribution`: it samples tasks
from an explicit ``numpy.random.Generator`` and is steered to one of them with ``set_task``. The task is
also a property, so that a gymnasium vector environment assigns one task per lane with
``envs.set_attr("task", tasks)`` (through the ``TimeLimit``, ``OrderEnforcing`` and
``PassiveEnvChecker`` wrappers that ``gymnasium.make`` adds), and a ``reset`` option, so that
``env.reset(seed=s, options={"task": task})`` sets the task and starts an episode in one call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from metarl.tasks import Task

DEFAULT_TASK_SEED = 0
"""A fresh environment has the first task of ``sample_tasks(1, np.random.default_rng(DEFAULT_TASK_SEED))``."""


class TaskEnv(gym.Env, ABC):
    """A gymnasium environment with a current task, chosen from the distribution that it samples.

    Subclasses set ``family`` (the ``Task.family`` of their tasks), implement :meth:`sample_tasks` and
    :meth:`_apply_task`, and call :meth:`set_default_task` at the end of ``__init__`` so that a fresh
    environment always has a valid task. A new task takes effect from the next step; set it before
    ``reset`` (or pass it to ``reset``) to run a whole episode on it.
    """

    family: ClassVar[str]

    @abstractmethod
    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """``n`` tasks drawn with ``rng`` only: the same generator state gives the same tasks."""

    @abstractmethod
    def _apply_task(self, task: Task) -> None:
        """Check ``task.params`` (``ValueError`` when they are not a task of this distribution) and store
        what ``step`` needs; ``task.family`` is already checked."""

    def set_task(self, task: Task | Mapping[str, Any]) -> None:
        """Make ``task`` (a :class:`Task` or its ``to_dict()`` form) the current task.

        Raises ``ValueError`` for a task of another family or with parameters this environment refuses.
        """
        task = as_task(task, self.family)
        self._apply_task(task)
        self._task = task

    def get_task(self) -> Task:
        """The current task."""
        return self._task

    @property
    def task(self) -> Task:
        """The current task; assigning to it calls :meth:`set_task` (what ``VectorEnv.set_attr`` does)."""
        return self.get_task()

    @task.setter
    def task(self, value: Task | Mapping[str, Any]) -> None:
        self.set_task(value)

    def set_default_task(self) -> None:
        """Set the first task sampled with ``np.random.default_rng(DEFAULT_TASK_SEED)``."""
        self.set_task(self.sample_tasks(1, np.random.default_rng(DEFAULT_TASK_SEED))[0])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        """Reset the episode; ``options={"task": task}`` sets the task first (other options go to the parent)."""
        if options is not None and "task" in options:
            self.set_task(options["task"])
        return super().reset(seed=seed, options=options)


class TaskLanes(ABC):
    """``set_attr("task", ...)`` and ``get_attr("task")`` of a vector environment whose lanes each have a task,
    as ``SyncVectorEnv`` offers them over :class:`TaskEnv` lanes; the subclass checks and stores the tasks."""

    num_envs: int
    _tasks: list[Task]

    def set_attr(self, name: str, values: Any) -> None:
        """``set_attr("task", tasks)``: one task per lane (a list or tuple of ``num_envs``) or one for all."""
        self._check_name(name)
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} tasks, one per lane, got {len(values)}")
        self._set_tasks(list(values))

    def get_attr(self, name: str) -> tuple[Task, ...]:
        """``get_attr("task")``: the task of each lane."""
        self._check_name(name)
        return tuple(self._tasks)

    @abstractmethod
    def _set_tasks(self, values: list[Any]) -> None:
        """Check one task (or its ``to_dict()`` form) per lane, ``ValueError`` if one is refused, and store them
        in ``_tasks`` with whatever ``step`` needs."""

    def _check_name(self, name: str) -> None:
        if name != "task":
            raise AttributeError(f"{type(self).__name__} lanes have the attribute 'task' only, not {name!r}")


def as_task(task: Task | Mapping[str, Any], family: str) -> Task:
    """``task`` as a :class:`Task` of ``family``; a dict is read with ``Task.from_dict``."""
    if isinstance(task, Mapping):
        task = Task.from_dict(task)
    if not isinstance(task, Task):
        raise ValueError(f"expected a Task or its to_dict() form, got {type(task).__name__}: {task!r}")
    if task.family != family:
        raise ValueError(f"expected a {family!r} task, got a {task.family!r} task: {task.to_dict()}")
    return task

