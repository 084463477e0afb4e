"""The shared interface between task distributions and meta-learners.

A *task* is a plain value (a family name and a few JSON-serialisable parameters) so that it can be
logged, checkpointed and compared. A *task distribution* samples tasks from an explicit
``numpy.random.Generator``: the same seed gives the same tasks. Supervised families also turn a list
of tasks into an :class:`Episode`, the support and query sets stacked on a leading task axis. RL task
distributions are gymnasium environments with ``set_task``/``get_task`` (see ``envs``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

Metric = Literal["mse", "accuracy", "return"]


def _freeze(value: Any) -> Any:
    """Turn lists into tuples and dicts into read-only mappings so a Task cannot change once made."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Task:
    """One task of a distribution, named by the few values that define it.

    ``params`` holds JSON values only (numbers, strings, booleans, lists, dicts); numpy scalars are
    converted on construction. Examples: ``Task("sinusoid", {"amplitude": 2.0, "phase": 0.3})``,
    ``Task("omniglot", {"classes": [12, 407, 3, 99, 1500]})``.
    """

    family: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.family, str) or not self.family:
            raise ValueError(f"Task.family must be a non-empty string, got {self.family!r}")
        frozen = _freeze(self.params)
        try:
            json.dumps(_thaw(frozen), allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"Task parameters must be JSON values (numbers, strings, lists, dicts): {error}"
            ) from None
        object.__setattr__(self, "params", frozen)

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle through :meth:`to_dict` (the read-only params mapping itself cannot be pickled), so
        tasks travel to worker processes (gymnasium's AsyncVectorEnv) and survive ``copy.deepcopy``."""
        return Task.from_dict, (self.to_dict(),)

    def to_dict(self) -> dict[str, Any]:
        """The task as a JSON-ready dict: ``{"family": ..., "params": {...}}``."""
        return {"family": self.family, "params": _thaw(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        """Rebuild a task from :meth:`to_dict`'s output."""
        if set(data) != {"family", "params"}:
            raise ValueError(f"a task dict has exactly the keys 'family' and 'params', got {sorted(data)}")
        return cls(data["family"], data["params"])


@runtime_checkable
class TaskDistribution(Protocol):
    """Anything that samples tasks from an explicit random generator."""

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]: ...


@dataclass
class Episode:
    """A batch of supervised tasks: support and query sets stacked on a leading task axis.

    Shapes: ``support_x [tasks, support, *features]``, ``support_y [tasks, support(, ...)]`` and the
    same for the query set. Labels are class indices (``long``) for classification and values for
    regression.
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor

    def __post_init__(self) -> None:
        sizes = {t.shape[0] for t in (self.support_x, self.support_y, self.query_x, self.query_y)}
        if len(sizes) != 1:
            raise ValueError(f"support and query tensors disagree on the number of tasks: {sizes}")

    @property
    def num_tasks(self) -> int:
        return self.support_x.shape[0]

    def to(self, device: torch.device | str) -> Episode:
        return Episode(*(t.to(device, non_blocking=True) for t in self.tensors()))

    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.support_x, self.support_y, self.query_x, self.query_y


@runtime_checkable
class SupervisedTaskDistribution(TaskDistribution, Protocol):
    """A task distribution whose tasks become support/query episodes.

    ``loss`` names the training loss (``"mse"`` or ``"cross_entropy"``) and ``metric`` what is
    reported (``"mse"`` or ``"accuracy"``).
    """

    loss: str
    metric: Metric

    def episode(self, tasks: Sequence[Task], rng: np.random.Generator) -> Episode: ...


@dataclass
class SequenceEpisode:
    """A batch of labelled sequences for online few-shot classification (Santoro et al. 2016).

    ``x [episodes, steps, *features]`` are the inputs in presentation order and ``labels [episodes,
    steps, label_length]`` (``int64``, each entry in ``[0, alphabet)``) their labels: one symbol per
    step for one-hot labels, several for string labels. A learner sees the label of step t only at
    step t + 1, so the episode holds the labels as they are and the learner shifts them.
    """

    x: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if self.labels.ndim != 3 or self.labels.dtype != torch.int64:
            raise ValueError(f"labels must be int64 [episodes, steps, label_length], got {self.labels.dtype} "
                             f"{tuple(self.labels.shape)}")
        if self.x.ndim < 3 or self.x.shape[:2] != self.labels.shape[:2]:
            raise ValueError(f"x {tuple(self.x.shape)} and labels {tuple(self.labels.shape)} must agree on "
                             "[episodes, steps]")

    @property
    def num_episodes(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> SequenceEpisode:
        return SequenceEpisode(self.x.to(device, non_blocking=True), self.labels.to(device, non_blocking=True))


@runtime_checkable
class SequenceTaskDistribution(TaskDistribution, Protocol):
    """A task distribution whose tasks become labelled sequences (MANN-style online classification).

    ``feature_size`` is the number of input values per step (``x`` flattened), and labels are
    ``label_length`` symbols of ``alphabet`` values each.
    """

    feature_size: int
    label_length: int
    alphabet: int

    def episode(self, tasks: Sequence[Task], rng: np.random.Generator) -> SequenceEpisode: ...
