"""What every supervised few-shot learner offers the shared experiment (:mod:`metarl.experiment`).

MAML, the Meta-LSTM and the metric baselines differ in what they train on (episodes, or ordinary
batches of labelled images) and in how they adapt (gradient steps, an LSTM's updates, or none), but a
run needs the same few things of each: build it from a model spec, draw a training batch, take one
update, report per-task query metrics, and save its state.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import Tensor

from metarl.tasks import Episode, SupervisedTaskDistribution


class FewShotLearner(Protocol):
    """A supervised meta-learner as :class:`~metarl.experiment.SupervisedExperiment` drives it."""

    method: ClassVar[str]
    """The name checkpoints and ``config.json`` record."""
    Config: ClassVar[type]
    """Its configuration dataclass (defaults are the paper's settings)."""
    adapts: ClassVar[bool]
    """Whether it adapts to a task by steps (MAML, Meta-LSTM) or classifies by comparing embeddings."""

    @classmethod
    def create(cls, model: dict[str, Any], distribution: SupervisedTaskDistribution, config: Any,
               device: torch.device) -> FewShotLearner:
        """The learner for ``model`` (a :func:`metarl.models.build_model` spec) on the training ``distribution``."""
        ...

    @property
    def eval_steps(self) -> int:
        """Adaptation steps an evaluation reports by default (0 for methods that do not adapt by steps)."""
        ...

    def training_batch(self, distribution: SupervisedTaskDistribution, size: int, rng: np.random.Generator) -> Any:
        """What one :meth:`meta_train_step` takes; ``size`` is the run's meta-batch size."""
        ...

    def meta_train_step(self, batch: Any) -> dict[str, float]: ...

    def evaluate(self, episode: Episode, steps: int | None = None) -> Tensor:
        """Per-task query metric after 0, 1, ..., ``steps`` adaptation steps: ``[tasks, steps + 1]``."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class EpisodicTraining:
    """The :meth:`FewShotLearner.training_batch` of every learner that trains on episodes (MAML, the
    Meta-LSTM, Matching Networks): ``size`` fresh tasks."""

    def training_batch(self, distribution: SupervisedTaskDistribution, size: int, rng: np.random.Generator) -> Episode:
        return distribution.episode(distribution.sample_tasks(size, rng), rng)
