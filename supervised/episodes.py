"""N-way K-shot classification episodes over a fixed array of images, shared by every image family.

A task is ``Task(family, {"classes": [c0, ..., c_{ways-1}]})``: ``ways`` distinct class indices into
the image array, and their order is the label assignment (the class at position ``i`` gets label
``i``). Sampling a fresh random order for every task gives every task its own label permutation, so a
learner cannot memorise a class-to-label mapping across tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch

from metarl.tasks import Episode, Metric, Task


def check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    return int(value)


def task_classes(tasks: Sequence[Task], family: str, ways: int, num_classes: int) -> np.ndarray:
    """The ``[tasks, ways]`` class indices under ``"classes"`` of ``tasks``; ValueError if a task is not
    of ``family`` or does not list ``ways`` distinct classes in ``0..num_classes - 1``."""
    if len(tasks) == 0:
        raise ValueError("an episode needs at least one task; got an empty sequence")
    rows = []
    for i, task in enumerate(tasks):
        if task.family != family:
            raise ValueError(f"task {i} is of family {task.family!r}, but this distribution samples {family!r}")
        classes = task.params.get("classes")
        if not isinstance(classes, tuple) or len(classes) != ways:
            raise ValueError(f"task {i} must list {ways} classes under 'classes', got {classes!r}")
        if any(isinstance(c, bool) or not isinstance(c, int) for c in classes):
            raise ValueError(f"task {i}: class indices must be integers, got {list(classes)}")
        if any(not 0 <= c < num_classes for c in classes):
            raise ValueError(
                f"task {i}: class indices {list(classes)} out of range; this {family!r} distribution "
                f"has classes 0..{num_classes - 1} (was the task sampled from another split?)"
            )
        if len(set(classes)) != ways:
            raise ValueError(f"task {i}: classes must be distinct, got {list(classes)}")
        rows.append(classes)
    return np.asarray(rows, dtype=np.int64)


class FewShotClassification:
    """N-way K-shot episodes drawn from ``images``; satisfies ``metarl.tasks.SupervisedTaskDistribution``.

    ``images`` is a ``uint8`` array ``[classes, examples_per_class, H, W]`` (greyscale) or
    ``[classes, examples_per_class, H, W, 3]`` (colour). Episodes hold ``float32`` images in
    ``[0, 1]`` laid out ``[tasks, ways * shots, C, H, W]`` (``C`` is 1 for greyscale) and ``int64``
    labels ``[tasks, ways * shots]`` in class-major order (``shots`` zeros, then ``shots`` ones, ...);
    the query set is the same with ``queries`` in place of ``shots``. The images stay ``uint8`` in
    memory and only the ones an episode uses are converted, so large families stay affordable.
    """

    loss: ClassVar[str] = "cross_entropy"
    metric: ClassVar[Metric] = "accuracy"

    def __init__(self, images: np.ndarray, *, family: str, ways: int, shots: int, queries: int) -> None:
        if not isinstance(family, str) or not family:
            raise ValueError(f"family must be a non-empty string naming the task family, got {family!r}")
        if not isinstance(images, np.ndarray):
            raise ValueError(f"images must be a numpy array, got {type(images).__name__}")
        if images.dtype != np.uint8:
            raise ValueError(
                f"images must have dtype uint8 (pixel values 0..255), got {images.dtype}; "
                "convert with (x * 255).round().astype(np.uint8) if you have floats in [0, 1]"
            )
        colour = images.ndim == 5 and images.shape[-1] == 3
        if images.ndim != 4 and not colour:
            raise ValueError(
                "images must be [classes, examples_per_class, H, W] (greyscale) or "
                f"[classes, examples_per_class, H, W, 3] (colour), got shape {images.shape}"
            )
        ways, shots, queries = (check_int(n, v) for n, v in (("ways", ways), ("shots", shots), ("queries", queries)))
        num_classes, per_class = images.shape[:2]
        if ways < 2:
            raise ValueError(f"ways must be at least 2 (a classification task needs two classes), got {ways}")
        if ways > num_classes:
            raise ValueError(
                f"ways={ways} is more than the {num_classes} classes in images; choose ways <= {num_classes}"
            )
        if shots < 1:
            raise ValueError(f"shots must be at least 1 (examples per class in the support set), got {shots}")
        if queries < 1:
            raise ValueError(f"queries must be at least 1 (examples per class in the query set), got {queries}")
        if shots + queries > per_class:
            raise ValueError(
                f"shots + queries = {shots} + {queries} = {shots + queries} distinct examples per class are "
                f"needed but each class has only {per_class}; lower shots or queries so that "
                f"shots + queries <= {per_class}"
            )
        self.images = images
        self.family = family
        self.ways, self.shots, self.queries = ways, shots, queries

    @property
    def num_classes(self) -> int:
        """How many classes a task can draw from."""
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return (
            f"FewShotClassification(family={self.family!r}, classes={self.num_classes}, "
            f"images={tuple(self.images.shape)}, ways={self.ways}, shots={self.shots}, queries={self.queries})"
        )

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """``n`` tasks, each ``ways`` distinct classes in a random order (the order is the labelling)."""
        n = check_int("n", n)
        if n < 0:
            raise ValueError(f"n (number of tasks) must be >= 0, got {n}")
        return [
            Task(self.family, {"classes": rng.choice(self.num_classes, self.ways, replace=False).tolist()})
            for _ in range(n)
        ]

    def _as_float(self, picked: np.ndarray) -> np.ndarray:
        """``uint8`` images ``[..., H, W]`` (greyscale) or ``[..., H, W, 3]`` (colour) as ``float32``
        ``[..., C, H, W]`` in ``[0, 1]``: the layout of every batch this distribution hands out."""
        if self.images.ndim == 4:
            picked = picked[..., None, :, :]  # greyscale: add the channel axis
        else:
            picked = np.moveaxis(picked, -1, -3)  # colour: channels before H, W
        x = picked.astype(np.float32)
        x /= np.float32(255)
        return x

    def class_batch(self, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` distinct random images of all classes and their global class indices.

        What an ordinary classifier over every class of this distribution trains on (the pre-trained
        baselines of Ravi & Larochelle 2017): images ``float32 [size, C, H, W]`` in ``[0, 1]``, laid out
        as in :meth:`episode`, and labels ``int64 [size]`` in ``0..num_classes - 1`` (the index into
        ``images``, not a per-task label). Images are drawn uniformly without replacement, so every class
        is equally likely (all classes have the same number of examples).
        """
        size = check_int("size", size)
        num_classes, per_class = self.images.shape[:2]
        if not 1 <= size <= num_classes * per_class:
            raise ValueError(f"size must be in 1..{num_classes * per_class} (the number of images), got {size}")
        classes, examples = np.divmod(rng.choice(num_classes * per_class, size, replace=False), per_class)
        x = self._as_float(self.images[classes, examples])
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(classes.astype(np.int64))

    def episode(self, tasks: Sequence[Task], rng: np.random.Generator) -> Episode:
        """Support and query sets for ``tasks``: per class, ``shots + queries`` distinct random examples.

        The first ``shots`` examples of a class go to the support set and the rest to the query set,
        so the two never share an image. All images are gathered with one fancy index.
        """
        classes = task_classes(tasks, self.family, self.ways, self.num_classes)  # [T, ways]
        num_tasks, per_class = len(classes), self.images.shape[1]
        draws = self.shots + self.queries
        # A random permutation of each class's examples, cut to the first `draws`: sampling without replacement.
        examples = np.argsort(rng.random((num_tasks, self.ways, per_class)), axis=-1)[..., :draws]
        # Converted and split in numpy (faster than torch for these small copies), then wrapped.
        x = self._as_float(self.images[classes[:, :, None], examples])  # [T, ways, draws, C, H, W]
        support_x = x[:, :, : self.shots].reshape(num_tasks, self.ways * self.shots, *x.shape[3:])
        query_x = x[:, :, self.shots :].reshape(num_tasks, self.ways * self.queries, *x.shape[3:])
        labels = np.arange(self.ways, dtype=np.int64)
        support_y = np.tile(np.repeat(labels, self.shots), (num_tasks, 1))
        query_y = np.tile(np.repeat(labels, self.queries), (num_tasks, 1))
        return Episode(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (support_x, support_y, query_x, query_y)))
