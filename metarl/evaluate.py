"""Few-shot evaluation: mean and 95% confidence interval over many held-out tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from metarl.tasks import SupervisedTaskDistribution


@dataclass
class EvalResult:
    """The metric after 0, 1, ..., k adaptation steps, averaged over ``tasks`` held-out tasks.

    ``stderr`` is the standard error of the mean and ``ci95`` the half-width of the normal 95%
    interval (1.96 standard errors).
    ``protocol`` records what else defines the numbers (ways, shots, queries, split, seed, ...).
    """

    metric: str
    steps: list[int]
    mean: list[float]
    ci95: list[float]
    stderr: list[float]
    tasks: int
    protocol: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_values(cls, metric: str, values: np.ndarray, protocol: dict[str, Any]) -> EvalResult:
        """Summarise per-task values of shape ``[tasks, steps + 1]``."""
        tasks = values.shape[0]
        std = values.std(axis=0, ddof=1) if tasks > 1 else np.zeros(values.shape[1])
        stderr = std / np.sqrt(tasks)
        return cls(
            metric=metric,
            steps=list(range(values.shape[1])),
            mean=values.mean(axis=0).tolist(),
            ci95=(1.96 * stderr).tolist(),
            stderr=stderr.tolist(),
            tasks=tasks,
            protocol=protocol,
        )

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "steps": self.steps, "mean": self.mean, "ci95": self.ci95,
                "stderr": self.stderr, "tasks": self.tasks, **self.protocol}

    def describe(self, step: int | None = None) -> str:
        """``"accuracy after 3 steps: 98.12% +- 0.25% (600 tasks)"``, by default after the last step.

        When ``protocol["step_kind"]`` is ``"instance"`` the steps are the 1st, 2nd, ... presentation of a
        class in an episode (MANN), and it reads ``"accuracy at instance 2: ..."``; when it is ``"none"``
        the method does not adapt by steps (metric baselines) and it reads ``"accuracy: ..."``.
        """
        step = self.steps[-1] if step is None else step
        i = self.steps.index(step)
        scale, unit = (100.0, "%") if self.metric == "accuracy" else (1.0, "")
        kind = self.protocol.get("step_kind", "step")
        where = {"instance": f" at instance {step}", "none": ""}.get(kind, f" after {step} step{'s' * (step != 1)}")
        return (f"{self.metric}{where}: {self.mean[i] * scale:.4g}{unit}"
                f" +- {self.ci95[i] * scale:.2g}{unit} ({self.tasks} tasks)")

    def scalars(self, prefix: str = "eval") -> dict[str, float]:
        """``{"eval/accuracy_step0": ..., ...}`` (``accuracy_instance1``, ... for instances; ``eval/accuracy`` for a
        method without steps) for the logger."""
        kind = self.protocol.get("step_kind", "step")
        if kind == "none":
            return {f"{prefix}/{self.metric}": self.mean[0]}
        return {f"{prefix}/{self.metric}_{kind}{s}": m for s, m in zip(self.steps, self.mean)}


def evaluate_supervised(
    learner: Any,
    distribution: SupervisedTaskDistribution,
    tasks: int,
    steps: int,
    rng: np.random.Generator,
    batch_size: int,
    protocol: dict[str, Any] | None = None,
) -> EvalResult:
    """Adapt ``learner`` on ``tasks`` fresh tasks and report the query metric after 0..steps steps."""
    if tasks < 1 or batch_size < 1:
        raise ValueError(f"need tasks >= 1 and batch_size >= 1, got {tasks}, {batch_size}")
    values = []
    for start in range(0, tasks, batch_size):
        batch = distribution.sample_tasks(min(batch_size, tasks - start), rng)
        values.append(learner.evaluate(distribution.episode(batch, rng), steps))
    return EvalResult.from_values(distribution.metric, torch.cat(values).numpy().astype(np.float64), protocol or {})
