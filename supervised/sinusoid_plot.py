"""Picture of sinusoid adaptation: true curve, support points, prediction before and after adapting
(the figure is :func:`metarl.plots.regression_adaptation_figure`, which ``metarl plot`` and TensorBoard also show)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from metarl.maml import MAML
from metarl.plots import regression_adaptation_figure
from supervised.sinusoid import Sinusoid


def plot_sinusoid_adaptation(
    maml: MAML, family: Sinusoid, path: str | Path, tasks: int = 4, steps: Sequence[int] = (0, 1, 10), seed: int = 0
) -> Path:
    """Save a PNG with one panel per held-out task and return its path."""
    path = Path(path)
    regression_adaptation_figure(maml, family, tasks, steps, seed).savefig(path, dpi=100)
    return path
