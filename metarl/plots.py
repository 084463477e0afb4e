"""Figures of a run: learning curves, the final evaluation by step or instance, a regression family's
adaptation, and Navigation2D trajectories, each with the paper's figure for reference where there is one.

Every function returns a :class:`matplotlib.figure.Figure` made without pyplot, so there is no global
figure registry or backend to set (``savefig`` renders with Agg); the caller saves it or hands it to
TensorBoard (``SummaryWriter.add_figure``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from metarl.paper_results import PaperResult, describe_run, paper_result

if TYPE_CHECKING:
    from metarl.evaluate import EvalResult
    from metarl.rl.sampler import Trajectories
    from metarl.tasks import Episode, Task

_EVAL_KEY = re.compile(r"^eval/(?P<metric>[a-z]+)(?:_(?P<kind>step|instance)(?P<n>\d+))?$")
_COLOURS = ("tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")
_SMOOTH_FROM = 50
"""Training series with at least this many records are drawn faintly, with a moving average on top."""

FigureHook = Callable[[int, "EvalResult"], dict[str, Figure]]
"""What :class:`metarl.train.Trainer` calls after each evaluation: ``(step, result) -> {tag: figure}``."""


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl``, in order."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no metrics at {path}: is this a run folder?")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _scale(metric: str) -> tuple[float, str]:
    return (100.0, f"{metric} (%)") if metric == "accuracy" else (1.0, metric)


def _step_label(n: int, kind: str) -> str:
    if kind == "instance":
        return f"instance {n}"
    if kind == "none":
        return "held-out"
    return "before adaptation" if n == 0 else f"after {n} step{'s' * (n != 1)}"


def shown_steps(steps: Sequence[int]) -> list[int]:
    """The steps (or instances) worth a curve of their own: first, second, last and 5 (or the middle one)."""
    steps = sorted(steps)
    chosen = {steps[0], steps[-1], 5 if 5 in steps else steps[len(steps) // 2]}
    if len(steps) > 1:
        chosen.add(steps[1])
    return sorted(chosen)


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    points = [(r["step"], r[key]) for r in records if key in r and np.isfinite(r[key])]
    x, y = zip(*points) if points else ((), ())
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def _eval_curves(records: Sequence[dict[str, Any]]) -> tuple[str, str, dict[int, str]]:
    """``(metric, step kind, {step: key})`` of the periodic evaluations in the records."""
    found: dict[tuple[str, str], dict[int, str]] = {}
    for key in {k for r in records for k in r}:
        match = _EVAL_KEY.match(key)
        if match:
            kind = match["kind"] or "none"
            found.setdefault((match["metric"], kind), {})[int(match["n"] or 0)] = key
    if len(found) != 1:
        raise ValueError(f"expected the eval/ records of one metric, found {sorted(found) or 'none'}")
    (metric, kind), keys = found.popitem()
    return metric, kind, keys


def _plot_series(axis: Axes, x: np.ndarray, y: np.ndarray, label: str, colour: str) -> None:
    if len(y) >= _SMOOTH_FROM:
        width = len(y) // 25
        axis.plot(x, y, color=colour, lw=0.7, alpha=0.25)
        axis.plot(x[width - 1:], np.convolve(y, np.ones(width) / width, mode="valid"), color=colour,
                  label=f"{label} (mean of {width})")
    else:
        axis.plot(x, y, color=colour, marker="." if len(y) < 20 else None, label=label)


def _log_scale_if_wide(axis: Axes, values: Sequence[np.ndarray]) -> None:
    joined = np.concatenate([v for v in values if len(v)]) if values else np.array([])
    if len(joined) and joined.min() > 0 and joined.max() / joined.min() > 10:
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(FuncFormatter(_log_tick))
        axis.yaxis.set_minor_formatter(FuncFormatter(_log_tick) if joined.max() / joined.min() < 30 else NullFormatter())


def _log_tick(value: float, _: int) -> str:
    """Plain numbers on a log axis (0.3, not 3e-01), and only at 1, 2, 3 and 5 times a power of ten."""
    mantissa = value / 10 ** np.floor(np.log10(value))
    return f"{value:g}" if any(np.isclose(mantissa, m) for m in (1, 2, 3, 5)) else ""


def _reference_lines(axis: Axes, paper: PaperResult | None, metric: str, kind: str, colours: dict[int, str],
                     evaluated: Sequence[int]) -> None:
    """The paper's figures as dashed horizontal lines, each in the colour of the run's curve for the same
    step; black for a step the run does not evaluate, none for a step it evaluates but does not draw."""
    if paper is None or paper.metric != metric or paper.step_kind != kind:
        return
    scale, _ = _scale(metric)
    for n, value in zip(paper.steps, paper.values):
        if n in colours or n not in evaluated:
            axis.axhline(value * scale, color=colours.get(n, "black"), ls="--", lw=1.2,
                         label=f"paper, {_step_label(n, kind)}: {value * scale:g} ({paper.source})")


def learning_curves_figure(records: Sequence[dict[str, Any]], config: dict[str, Any]) -> Figure:
    """Held-out metric during training (before and after adaptation, or by instance) with the paper's
    figures as horizontal lines, next to the training batches' metrics and loss."""
    metric, kind, eval_keys = _eval_curves(records)
    scale, unit = _scale(metric)
    shown = shown_steps(list(eval_keys))
    colours = {n: _COLOURS[i % len(_COLOURS)] for i, n in enumerate(shown)}
    panels = _train_panels(records, metric, shown, colours)
    figure = Figure(figsize=(5.4 * (1 + len(panels)), 4.2), layout="constrained")
    axes = figure.subplots(1, 1 + len(panels), squeeze=False)[0]
    held_out, values = axes[0], []
    for n in shown:
        x, y = _series(records, eval_keys[n])
        values.append(y * scale)
        held_out.plot(x, y * scale, color=colours[n], marker="o", ms=3, label=_step_label(n, kind))
    _reference_lines(held_out, paper_result(config), metric, kind, colours, list(eval_keys))
    if metric == "mse":
        _log_scale_if_wide(held_out, values)
    held_out.set(title=f"held-out {metric} during training", xlabel="meta-iteration", ylabel=unit)
    for axis, panel in zip(axes[1:], panels):
        drawn = []
        for label, key, colour in panel.curves:
            x, y = _series(records, key)
            drawn.append(y * panel.scale)
            _plot_series(axis, x, y * panel.scale, label, colour)
        if panel.ylabel in ("loss", "mse"):
            _log_scale_if_wide(axis, drawn)
        axis.set(title=panel.title, xlabel="meta-iteration", ylabel=panel.ylabel)
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    figure.suptitle(describe_run(config))
    return figure


@dataclass
class _Panel:
    title: str
    ylabel: str
    scale: float
    curves: list[tuple[str, str, str]]
    """``(label, metrics key, colour)``"""


def _train_panels(records: Sequence[dict[str, Any]], metric: str, shown: Sequence[int], colours: dict[int, str]
                  ) -> list[_Panel]:
    """The training metrics worth a panel, found by their keys: RL returns before and after adaptation,
    MANN accuracy by instance, or the batches' metric; and the loss when it is not the metric itself."""
    keys = {k for r in records for k in r}
    scale, unit = _scale(metric)
    panels = []
    if {"train/return_before", "train/return_after"} <= keys:
        panels.append(_Panel("training meta-batches: mean return", "return", 1.0, [
            ("before adaptation", "train/return_before", colours.get(0, "tab:gray")),
            ("after adaptation", "train/return_after", colours.get(1, "tab:blue"))]))
    by_instance = [(f"instance {n}", f"train/{metric}_instance{n}", colours[n]) for n in shown
                   if f"train/{metric}_instance{n}" in keys]
    metric_key = next((k for k in (f"train/query_{metric}", f"train/{metric}") if k in keys), None)
    if by_instance:
        panels.append(_Panel(f"training episodes: {metric} by instance", unit, scale, by_instance))
    elif metric_key is not None:
        panels.append(_Panel(f"training batches: {metric_key}", unit, scale, [(metric_key, metric_key, "tab:blue")]))
    loss_key = next((k for k in ("train/query_loss", "train/loss") if k in keys), None)
    if loss_key is not None and (metric_key is None
                                 or not np.array_equal(_series(records, loss_key)[1], _series(records, metric_key)[1])):
        panels.append(_Panel(f"training batches: {loss_key}", "loss", 1.0, [(loss_key, loss_key, "tab:red")]))
    return panels


def evaluation_figure(result: dict[str, Any], config: dict[str, Any], title: str | None = None) -> Figure:
    """A final (or periodic) evaluation in ``eval.json``'s shape: the metric after each adaptation step, or
    at each instance (MANN), with its 95% interval and the paper's figures. A method without adaptation
    steps (``step_kind`` ``none``) has a single number and no figure: ``ValueError``."""
    metric, steps, kind = result["metric"], np.asarray(result["steps"]), result.get("step_kind", "step")
    if kind == "none":
        raise ValueError(f"{describe_run(config)} reports one {metric}, not a curve over steps: nothing to draw")
    scale, unit = _scale(metric)
    mean, ci = np.asarray(result["mean"]) * scale, np.asarray(result["ci95"]) * scale
    figure = Figure(figsize=(6.4, 4.6), layout="constrained")
    axis = figure.subplots()
    axis.fill_between(steps, mean - ci, mean + ci, color="tab:blue", alpha=0.2, label="95% interval")
    axis.errorbar(steps, mean, yerr=ci, color="tab:blue", marker="o", capsize=3, label="this run")
    paper = paper_result(config)
    if paper is not None and paper.metric == metric and paper.step_kind == kind:
        axis.plot(paper.steps, np.asarray(paper.values) * scale, color="black", ls="--", marker="s",
                  label=f"paper ({paper.source})")
        steps = np.union1d(steps, paper.steps)
    axis.set_xticks(steps)
    xlabel = "instance (n-th presentation of a class in the episode)" if kind == "instance" else "adaptation steps"
    tasks = f"{result['tasks']} held-out {'episodes' if kind == 'instance' else 'tasks'}"
    axis.set(xlabel=xlabel, ylabel=unit)
    axis.set_title(f"{title or describe_run(config)}\n{metric} on {tasks}, mean and 95% interval", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return figure


@runtime_checkable
class CurveFamily(Protocol):
    """A 1-D regression task family whose tasks are functions that can be drawn (e.g. sinusoid)."""

    shots: int
    x_range: tuple[float, float]

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]: ...
    def episode(self, tasks: Sequence[Task], rng: np.random.Generator) -> Episode: ...
    def curve(self, task: Task, x: np.ndarray) -> np.ndarray: ...


def regression_adaptation_figure(learner: Any, family: CurveFamily, tasks: int = 4, steps: Sequence[int] = (0, 1, 10),
                                 seed: int = 0) -> Figure:
    """One panel per held-out task: the true function, the support points, and the prediction before
    adaptation and after each of ``steps`` (``learner`` is a MAML: ``adapt`` and ``predict``)."""
    rng = np.random.default_rng(seed)
    sampled = family.sample_tasks(tasks, rng)
    episode = family.episode(sampled, rng)
    grid = np.linspace(*family.x_range, 200)
    grid_t = torch.from_numpy(grid).float().unsqueeze(-1)
    figure = Figure(figsize=(3.6 * tasks, 3.2), layout="constrained")
    axes = figure.subplots(1, tasks, sharey=True, squeeze=False)[0]
    for i, (axis, task) in enumerate(zip(axes, sampled)):
        axis.plot(grid, family.curve(task, grid), color="black", lw=2, label="true function")
        axis.scatter(episode.support_x[i, :, 0], episode.support_y[i, :, 0], color="tab:red", zorder=5,
                     label=f"{family.shots} support points")
        for k, colour in zip(steps, ("tab:gray", "tab:blue", "tab:green", "tab:purple")):
            params = learner.adapt(episode.support_x[i], episode.support_y[i], steps=k)
            prediction = learner.predict(params, grid_t).cpu().numpy()[:, 0]
            axis.plot(grid, prediction, color=colour, ls="--" if k == 0 else "-", label=_step_label(k, "step"))
        axis.set_title(", ".join(f"{name}={value:.2f}" for name, value in task.params.items()), fontsize=10)
        axis.set_xlabel("x")
    axes[0].set_ylabel("y")
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2 + len(steps), fontsize=8)
    return figure


def adaptation_figures(learner: Any, family: CurveFamily, steps: Sequence[int], tasks: int = 3) -> FigureHook:
    """The Trainer hook that logs :func:`regression_adaptation_figure` (the same ``tasks`` tasks each time) as
    ``eval/adaptation``. It costs about 0.3 s of CPU per evaluation (3 tasks, adapted and drawn), against
    about 8 s for the 1000 sinusoid iterations between two evaluations."""
    return lambda step, result: {"eval/adaptation": regression_adaptation_figure(learner, family, tasks, steps)}


def instance_figures(config: dict[str, Any]) -> FigureHook:
    """The Trainer hook that logs the held-out accuracy by instance (MANN) with the paper's curve as
    ``eval/accuracy_by_instance``."""
    return lambda step, result: {"eval/accuracy_by_instance": evaluation_figure(
        result.to_json(), config, f"{describe_run(config)}, step {step}")}


def navigation_figure(stages: Sequence[tuple[str, Trajectories]], episodes: int = 2) -> Figure:
    """One panel per goal: the point's path in the first ``episodes`` episodes of each stage (e.g. before
    adaptation, after 1 step, after 3; the first episode of each of that many lanes), from the origin
    towards the goal (a star), with each stage's mean return over all its episodes. The observations of
    Navigation2D are the positions; a path stops where its episode ended. Actions are sampled, as in the
    evaluation, so paths wander by the policy's noise."""
    tasks = stages[0][1].tasks
    firsts = [(t.mask * (t.starts().cumsum(dim=1) == 1)).bool().cpu().numpy() for _, t in stages]
    paths = [[[t.observations[i, :, e, :2].cpu().numpy()[first[i, :, e]]
               for e in range(min(episodes, t.observations.shape[2]))] for (_, t), first in zip(stages, firsts)]
             for i in range(len(tasks))]
    reach = max(np.abs(np.concatenate([p for task in paths for stage in task for p in stage])).max(),
                *(np.abs(task.params["goal"]).max() for task in tasks))
    limit = max(0.55, reach + 0.05)
    figure = Figure(figsize=(3.4 * len(tasks), 4.0), layout="constrained")
    axes = figure.subplots(1, len(tasks), squeeze=False)[0]
    for i, (axis, task) in enumerate(zip(axes, tasks)):
        goal = task.params["goal"]
        for s, (label, _) in enumerate(stages):
            for e, path in enumerate(paths[i][s]):
                axis.plot(path[:, 0], path[:, 1], color=_COLOURS[s % len(_COLOURS)], lw=0.9, alpha=0.85,
                          ls="--" if s == 0 else "-", label=label if i == e == 0 else None)
        axis.plot(0, 0, "ko", ms=4, label="start" if i == 0 else None)
        axis.plot(*goal, marker="*", color="gold", mec="black", ms=16, ls="", label="goal" if i == 0 else None)
        returns = " / ".join(f"{t.mean_returns()[i].item():.1f}" for _, t in stages)
        axis.set(title=f"goal ({goal[0]:.2f}, {goal[1]:.2f})\nreturn {returns}", aspect="equal",
                 xlim=(-limit, limit), ylim=(-limit, limit))
        axis.title.set_fontsize(9)
        axis.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncol=len(stages) + 2, fontsize=8)
    figure.suptitle(f"Navigation2D: {episodes} paths per stage; return: mean over each stage's episodes, "
                    f"{' / '.join(label for label, _ in stages)}", fontsize=10)
    return figure
