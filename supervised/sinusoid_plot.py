"""Picture of sinusoid adaptation: true curve, support points, prediction before and after adapting."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from metarl.maml import MAML  # noqa: E402
from supervised.sinusoid import Sinusoid  # noqa: E402


def plot_sinusoid_adaptation(
    maml: MAML, family: Sinusoid, path: str | Path, tasks: int = 4, steps: Sequence[int] = (0, 1, 10), seed: int = 0
) -> Path:
    """Save a PNG with one panel per held-out task and return its path."""
    rng = np.random.default_rng(seed)
    sampled = family.sample_tasks(tasks, rng)
    episode = family.episode(sampled, rng)
    grid = np.linspace(*family.x_range, 200)
    grid_t = torch.from_numpy(grid).float().unsqueeze(-1)
    figure, axes = plt.subplots(1, tasks, figsize=(4 * tasks, 3.4), sharey=True, squeeze=False)
    for i, (axis, task) in enumerate(zip(axes[0], sampled)):
        axis.plot(grid, family.curve(task, grid), color="black", lw=2, label="true function")
        axis.scatter(episode.support_x[i, :, 0], episode.support_y[i, :, 0], color="tab:red", zorder=5,
                     label=f"{family.shots} support points")
        for k, colour in zip(steps, ("tab:gray", "tab:blue", "tab:green", "tab:purple")):
            params = maml.adapt(episode.support_x[i], episode.support_y[i], steps=k)
            prediction = maml.predict(params, grid_t).cpu().numpy()[:, 0]
            axis.plot(grid, prediction, color=colour, ls="--" if k == 0 else "-",
                      label="before adaptation" if k == 0 else f"after {k} step{'s' * (k != 1)}")
        axis.set_title(f"A={task['amplitude']:.2f}, phase={task['phase']:.2f}")
        axis.set_xlabel("x")
    axes[0][0].set_ylabel("y")
    axes[0][0].legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
