"""Sampling and validation of task parameters, shared by the environments.

Tasks are drawn from an explicit ``numpy.random.Generator`` only, so the same seed gives the same tasks.
Every check raises ``ValueError`` with a message naming the task family, the parameter and the allowed
values, so a task from another distribution (or a typo in a logged task) fails where it is set, not as a
wrong reward many steps later.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from numbers import Real
from typing import Any

import numpy as np

from metarl.tasks import Task


def uniform_number_tasks(
    family: str, key: str, n: int, rng: np.random.Generator, value_range: tuple[float, float]
) -> list[Task]:
    """``n`` tasks ``Task(family, {key: v})`` with v uniform on ``value_range``."""
    check_num_tasks(n, rng)
    return [Task(family, {key: float(v)}) for v in rng.uniform(value_range[0], value_range[1], size=n)]


def uniform_point_tasks(
    family: str, key: str, dim: int, n: int, rng: np.random.Generator, value_range: tuple[float, float]
) -> list[Task]:
    """``n`` tasks ``Task(family, {key: [x1, ..., x_dim]})`` with every coordinate uniform on ``value_range``."""
    check_num_tasks(n, rng)
    points = rng.uniform(value_range[0], value_range[1], size=(n, dim))
    return [Task(family, {key: [float(x) for x in point]}) for point in points]


def sign_tasks(family: str, key: str, n: int, rng: np.random.Generator) -> list[Task]:
    """``n`` tasks ``Task(family, {key: s})`` with s = -1 or +1 with equal probability."""
    check_num_tasks(n, rng)
    return [Task(family, {key: int(s)}) for s in rng.choice((-1, 1), size=n)]


def check_num_tasks(n: int, rng: np.random.Generator) -> None:
    """Refuse a negative or non-integer task count and a generator that is not a ``numpy.random.Generator``."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"the number of tasks must be a non-negative integer, got {n!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"tasks are sampled from a numpy.random.Generator (e.g. np.random.default_rng(seed)), got {rng!r}"
        )


def check_range(name: str, value: Sequence[float]) -> tuple[float, float]:
    """``value`` as a ``(low, high)`` pair of finite floats with ``low <= high``."""
    if (
        not isinstance(value, Sequence)
        or len(value) != 2
        or not all(_is_number(v) and math.isfinite(v) for v in value)
        or value[0] > value[1]
    ):
        raise ValueError(f"{name} must be a pair (low, high) of finite numbers with low <= high, got {value!r}")
    return float(value[0]), float(value[1])


def check_keys(task: Task, keys: Collection[str]) -> None:
    """Refuse a task whose parameter names are not exactly ``keys``."""
    if set(task.params) != set(keys):
        raise ValueError(
            f"a {task.family!r} task has exactly the parameters {sorted(keys)}, got {sorted(task.params)}"
        )


def number_in_range(task: Task, key: str, low: float, high: float) -> float:
    """The finite number ``task[key]``, which must lie in ``[low, high]``."""
    value = task[key]
    if not _is_number(value) or not math.isfinite(value) or not low <= value <= high:
        raise ValueError(
            f"{task.family!r} task parameter {key!r} must be a number in [{low}, {high}], got {value!r}; "
            "pass a wider range to the environment's constructor to evaluate outside the training range"
        )
    return float(value)


def point_in_box(task: Task, key: str, dim: int, low: float, high: float) -> np.ndarray:
    """``task[key]`` as a float64 array of ``dim`` finite numbers, each in ``[low, high]``."""
    value = task[key]
    if (
        not isinstance(value, Sequence)
        or len(value) != dim
        or not all(_is_number(v) and math.isfinite(v) and low <= v <= high for v in value)
    ):
        raise ValueError(
            f"{task.family!r} task parameter {key!r} must be a list of {dim} numbers in [{low}, {high}], "
            f"got {value!r}; pass a wider range to the environment's constructor to evaluate outside it"
        )
    return np.array(value, dtype=np.float64)


def sign(task: Task, key: str) -> int:
    """``task[key]``, which must be -1 or +1."""
    value = task[key]
    if not _is_number(value) or value not in (-1, 1):
        raise ValueError(f"{task.family!r} task parameter {key!r} must be -1 or 1, got {value!r}")
    return int(value)


def task_info(task: Task) -> dict[str, Any]:
    """The task's parameters for ``info["task"]``: numbers stay numbers, lists become float arrays.

    Arrays rather than lists let gymnasium's vector environments stack the values of all lanes.
    """
    return {
        key: np.array(value, dtype=np.float64) if isinstance(value, tuple) else value
        for key, value in task.params.items()
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)
