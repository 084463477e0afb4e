"""Sinusoid regression (Finn et al. 2017, section 5.1): K-shot regression of y = A sin(x - phase)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from metarl.choices import check_choice
from metarl.tasks import Episode, Task

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Sinusoid:
    """Tasks are sinusoids with amplitude ~ U[0.1, 5.0] and phase ~ U[0, pi]; inputs x ~ U[-5, 5].

    Every part ("train", "val", "test") is the same distribution: held-out tasks are simply tasks
    drawn with another seed, as in the paper.
    """

    shots: int = 10
    """Support points per task (K)."""
    queries: int = 10
    """Query points per task; the paper's code uses K for the meta-update too."""
    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)

    family = "sinusoid"
    loss = "mse"
    metric = "mse"

    def __post_init__(self) -> None:
        if self.shots < 1 or self.queries < 1:
            raise ValueError(f"shots and queries must be >= 1, got shots={self.shots}, queries={self.queries}")

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        amplitudes = rng.uniform(*self.amplitude, size=n)
        phases = rng.uniform(*self.phase, size=n)
        return [Task(self.family, {"amplitude": float(a), "phase": float(p)}) for a, p in zip(amplitudes, phases)]

    def episode(self, tasks: Sequence[Task], rng: np.random.Generator) -> Episode:
        amplitude, phase = self.task_arrays(tasks)
        x = rng.uniform(*self.x_range, size=(len(tasks), self.shots + self.queries, 1))
        y = amplitude[:, None, None] * np.sin(x - phase[:, None, None])
        x_t, y_t = torch.from_numpy(x).float(), torch.from_numpy(y).float()
        return Episode(x_t[:, : self.shots], y_t[:, : self.shots], x_t[:, self.shots :], y_t[:, self.shots :])

    def task_arrays(self, tasks: Sequence[Task]) -> tuple[np.ndarray, np.ndarray]:
        """Amplitudes and phases of ``tasks``; a task of another family or outside the ranges is refused."""
        for task in tasks:
            if task.family != self.family:
                raise ValueError(f"not a sinusoid task: {task}")
            if not (self.amplitude[0] <= task["amplitude"] <= self.amplitude[1]) or not (
                self.phase[0] <= task["phase"] <= self.phase[1]
            ):
                raise ValueError(f"{task} is outside amplitude {self.amplitude} and phase {self.phase}")
        return (np.array([t["amplitude"] for t in tasks]), np.array([t["phase"] for t in tasks]))

    @staticmethod
    def curve(task: Task, x: np.ndarray) -> np.ndarray:
        """The task's true function at ``x``."""
        return task["amplitude"] * np.sin(x - task["phase"])


def make_sinusoid(part: str = "train", *, shots: int = 10, queries: int = 10) -> Sinusoid:
    """The sinusoid family as a task distribution (every part is the same distribution)."""
    check_choice("part", part, PARTS)
    return Sinusoid(shots=shots, queries=queries)
