"""Labelled sequences for online few-shot classification: the episodes of MANN (Santoro et al. 2016, section 4).

An episode draws ``ways`` classes, gives them fresh random labels and shows ``samples`` drawings of
each class in a random order (5 classes x 10 samples = 50 steps in the paper). The learner sees the
label of a drawing only at the next step (``metarl.sequence_learner`` shifts the labels), so it must
bind each new class to its label within the episode.

Labels are either one-hot (one symbol of ``ways`` values) or the paper's five-character strings
(five symbols of five values each, 3125 labels), drawn without replacement for each episode. A task is
``Task(family, {"classes": [c0, ...], "labels": [l0, ...]})``: class ``ci`` gets label number
``li``, which is the symbol itself for one-hot labels and the string read as a base-5 number for
string labels.

Images are augmented as the paper describes ("randomly translating and rotating character images",
section 4.1): a random rotation and translation per class, shared by all its drawings in the episode,
plus a further one per drawing. New classes from 90/180/270-degree turns come from the class split
itself (``supervised.omniglot``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from metarl.choices import check_choice
from metarl.tasks import Metric, SequenceEpisode, Task
from supervised.episodes import check_int, task_classes

LABELS = ("one_hot", "string")
STRING_LENGTH, STRING_SYMBOLS = 5, 5
"""The paper's string labels: five characters, each one of five values (section 4.2)."""


@dataclass(frozen=True)
class Augmentation:
    """Random rotation and translation of each class of an episode and, added to those, of each drawing.

    The paper gives no magnitudes; these defaults are ours. A drawing turns by up to 30 degrees in all,
    the per-drawing range of tristandeleu/ntm-one-shot (max_rotation=pi/6), and moves by up to 3 pixels
    at 20x20 (that code's +-10 pixels at 105x105 are +-2).
    """

    class_rotation: float = 15.0
    """Rotation of each class in an episode, degrees (uniform in [-r, r]; 0 turns it off)."""
    class_shift: float = 2.0
    """Translation of each class in an episode, pixels on each axis (uniform in [-s, s])."""
    sample_rotation: float = 15.0
    """Further rotation of each drawing, degrees."""
    sample_shift: float = 1.0
    """Further translation of each drawing, pixels on each axis."""

    def __post_init__(self) -> None:
        for name in ("class_rotation", "class_shift", "sample_rotation", "sample_shift"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")


def transform(images: torch.Tensor, degrees: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Rotate ``images [N, S, S]`` about their centre by ``degrees [N]`` and translate them by ``shifts [N, 2]``
    pixels (x, y), with bilinear interpolation; what comes in from outside the image is background (0)."""
    size = images.shape[-1]
    angle = torch.deg2rad(degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # affine_grid maps output to input coordinates, in units of half the image: input = R(-a) (output - t).
    inverse = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # [N, 2, 2]
    offset = -(inverse @ (2.0 * shifts / size)[..., None])
    theta = torch.cat([inverse, offset], -1)
    grid = F.affine_grid(theta, [images.shape[0], 1, size, size], align_corners=False)
    return F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]


class ClassSequences:
    """Online classification episodes over ``images``; satisfies ``metarl.tasks.SequenceTaskDistribution``.

    ``images`` is ``uint8 [classes, drawings_per_class, S, S]`` (ink 255). Episodes hold ``x [episodes,
    ways * samples, 1, S, S]`` (``float32`` in ``[0, 1]``, augmented) and ``labels [episodes, ways *
    samples, label_length]``.
    """

    loss: ClassVar[str] = "cross_entropy"
    metric: ClassVar[Metric] = "accuracy"

    def __init__(self, images: np.ndarray, *, family: str, ways: int, samples: int, labels: str = "one_hot",
                 augmentation: Augmentation | None = None) -> None:
        if not isinstance(family, str) or not family:
            raise ValueError(f"family must be a non-empty string naming the task family, got {family!r}")
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 \
                or images.shape[-1] != images.shape[-2]:
            raise ValueError("images must be a uint8 numpy array [classes, drawings_per_class, S, S], got "
                             f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}")
        check_choice("labels", labels, LABELS)
        ways, samples = check_int("ways", ways), check_int("samples", samples)
        num_classes, per_class = images.shape[:2]
        self.label_length, self.alphabet = (1, ways) if labels == "one_hot" else (STRING_LENGTH, STRING_SYMBOLS)
        if not 2 <= ways <= min(num_classes, self.alphabet**self.label_length):
            raise ValueError(f"ways must be between 2 and {min(num_classes, self.alphabet**self.label_length)} "
                             f"({num_classes} classes, {labels} labels), got {ways}")
        if not 1 <= samples <= per_class:
            raise ValueError(f"samples must be between 1 and the {per_class} drawings of a class, got {samples}")
        self.images, self.family, self.ways, self.samples, self.labels = images, family, ways, samples, labels
        self.augmentation = augmentation or Augmentation()
        self.feature_size = int(images.shape[-1] * images.shape[-2])

    @property
    def num_classes(self) -> int:
        return int(self.images.shape[0])

    @property
    def steps(self) -> int:
        """Steps per episode: every class ``samples`` times."""
        return self.ways * self.samples

    def __repr__(self) -> str:
        return (f"ClassSequences(family={self.family!r}, classes={self.num_classes}, ways={self.ways}, "
                f"samples={self.samples}, labels={self.labels!r}, {self.augmentation})")

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """``n`` tasks, each ``ways`` distinct classes with ``ways`` distinct random labels."""
        n = check_int("n", n)
        if n < 0:
            raise ValueError(f"n (number of tasks) must be >= 0, got {n}")
        return [Task(self.family, {"classes": rng.choice(self.num_classes, self.ways, replace=False).tolist(),
                                   "labels": rng.choice(self.alphabet**self.label_length, self.ways,
                                                        replace=False).tolist()})
                for _ in range(n)]

    def _label_numbers(self, tasks: Sequence[Task]) -> np.ndarray:
        """The ``[tasks, ways]`` label numbers of ``tasks``, checked."""
        count = self.alphabet**self.label_length
        for i, task in enumerate(tasks):
            numbers = task.params.get("labels")
            if (not isinstance(numbers, tuple) or len(numbers) != self.ways or len(set(numbers)) != self.ways
                    or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < count for v in numbers)):
                raise ValueError(f"task {i} must list {self.ways} distinct label numbers in 0..{count - 1} under "
                                 f"'labels', got {numbers!r}")
        return np.asarray([task.params["labels"] for task in tasks], dtype=np.int64)

    def episode(self, tasks: Sequence[Task], rng: np.random.Generator) -> SequenceEpisode:
        """The labelled, augmented sequences of ``tasks``: each class ``samples`` distinct drawings, in random order."""
        classes = task_classes(tasks, self.family, self.ways, self.num_classes)  # [E, ways]
        numbers = self._label_numbers(tasks)
        episodes, steps = len(classes), self.steps
        # A random permutation of the steps: step t shows class order[t] // samples, its (order[t] % samples)-th
        # drawing, so each class appears `samples` times with distinct drawings.
        order = np.argsort(rng.random((episodes, steps)), axis=1)
        shown, nth = order // self.samples, order % self.samples
        drawings = np.argsort(rng.random((episodes, self.ways, self.images.shape[1])), axis=-1)[..., :self.samples]
        rows = np.arange(episodes)[:, None]
        images = self.images[classes[rows, shown], drawings[rows, shown, nth]]  # [E, steps, S, S]

        a = self.augmentation
        class_degrees = rng.uniform(-a.class_rotation, a.class_rotation, (episodes, self.ways))
        class_shifts = rng.uniform(-a.class_shift, a.class_shift, (episodes, self.ways, 2))
        degrees = class_degrees[rows, shown] + rng.uniform(-a.sample_rotation, a.sample_rotation, (episodes, steps))
        shifts = class_shifts[rows, shown] + rng.uniform(-a.sample_shift, a.sample_shift, (episodes, steps, 2))
        size = images.shape[-1]
        x = transform(torch.from_numpy(images.reshape(-1, size, size)).float() / 255.0,
                      torch.from_numpy(degrees.reshape(-1)).float(), torch.from_numpy(shifts.reshape(-1, 2)).float())

        places = self.alphabet ** np.arange(self.label_length - 1, -1, -1)  # most significant symbol first
        labels = numbers[rows, shown][..., None] // places % self.alphabet
        return SequenceEpisode(x.reshape(episodes, steps, 1, size, size), torch.from_numpy(labels))
