"""``metarl plot RUN``: write the figures of a run folder as PNG files (and, on request, a MuJoCo GIF).

Which figures a run gets depends on what it is: every run has its learning curves (``metrics.jsonl``)
and, once finished, its final evaluation (``eval.json``); a 1-D regression run (sinusoid) also shows
held-out tasks before and after adaptation, a Navigation2D run the paths of its policy before and after
adaptation, and a MuJoCo run may get a GIF of its policy. Figures that need the trained model reload it
from ``checkpoint.pt``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from metarl.experiment import load_experiment
from metarl.paper_results import run_key
from metarl.plots import (
    CurveFamily,
    evaluation_figure,
    learning_curves_figure,
    read_metrics,
    regression_adaptation_figure,
)
from metarl.rl.experiment import load_rl_experiment


@dataclass
class PlotReport:
    """The files written, in order, and one line for each figure that was not made, saying why."""

    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _save(figure: Figure, path: Path, report: PlotReport) -> None:
    figure.savefig(path, dpi=110)
    report.written.append(path)


def plot_run(run: str | Path, out: str | Path | None = None, eval_path: str | Path | None = None, gif: bool = False,
             device: str = "cpu") -> PlotReport:
    """Write the run's figures into ``out`` (default ``RUN/plots``) and report what was written.

    ``eval_path`` is the final evaluation to draw (default ``RUN/eval.json``); ``gif`` asks for a GIF of a
    MuJoCo policy (skipped with a message when MuJoCo cannot render offscreen); ``device`` is where a
    reloaded model runs.
    """
    run = Path(run)
    if run.name == "checkpoint.pt":
        run = run.parent
    config_path = run / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"no config.json in {run}: give a run folder (written by a training script)")
    config = json.loads(config_path.read_text())
    out = Path(out) if out is not None else run / "plots"
    out.mkdir(parents=True, exist_ok=True)
    report = PlotReport()
    _save(learning_curves_figure(read_metrics(run / "metrics.jsonl"), config), out / "curves.png", report)
    evaluation = Path(eval_path) if eval_path is not None else run / "eval.json"
    if evaluation.exists():
        result = json.loads(evaluation.read_text())
        if result.get("step_kind") == "none":
            report.skipped.append(f"evaluation.png: the run reports one {result['metric']} ({result['mean'][0]:.4g} "
                                  f"+- {result['ci95'][0]:.2g}, {result['tasks']} tasks) and no adaptation steps; "
                                  "curves.png shows it during training")
        else:
            _save(evaluation_figure(result, config), out / "evaluation.png", report)
    elif eval_path is not None:
        raise FileNotFoundError(f"--eval {evaluation}: no such file")
    else:
        report.skipped.append(f"evaluation.png: {run} has no eval.json yet (training writes it at the end); "
                              "pass --eval FILE to draw another evaluation")
    if "env_id" in config:
        _plot_rl(run, config, out, gif, device, report)
    elif gif:
        raise ValueError("--gif draws a MuJoCo policy; this is not a reinforcement-learning run")
    elif _is_regression(config):
        _plot_regression(run, config, out, device, report)
    return report


def _is_regression(config: dict[str, Any]) -> bool:
    """A MAML run of a model with one input and one output: a family of functions of x to draw."""
    model = config.get("model")
    sizes = model.get("sizes", []) if isinstance(model, dict) else []
    return run_key(config)["method"] == "maml" and len(sizes) >= 2 and sizes[0] == sizes[-1] == 1


def _plot_regression(run: Path, config: dict[str, Any], out: Path, device: str, report: PlotReport) -> None:
    if "method" not in config:
        report.skipped.append(f"adaptation.png: {run}/config.json predates the 'method' entry and this version of "
                              "metarl cannot reload its checkpoint")
        return
    experiment, _ = load_experiment(run, device=device)
    family = experiment.distribution("test")
    if not isinstance(family, CurveFamily):
        report.skipped.append(f"adaptation.png: the {config['family']} family has no curve(task, x) to draw")
        return
    steps = (0, 1, experiment.learner.eval_steps)
    _save(regression_adaptation_figure(experiment.learner, family, steps=steps), out / "adaptation.png", report)


def _plot_rl(run: Path, config: dict[str, Any], out: Path, gif: bool, device: str, report: PlotReport) -> None:
    navigation = run_key(config)["task"] == "Navigation2D"
    if not (navigation or gif):
        return
    experiment, _ = load_rl_experiment(run, device=device)
    try:
        if navigation:
            _save(experiment.trajectories_figure(), out / "trajectories.png", report)
        if gif:
            # imported here: importing mujoco fails outright when MUJOCO_GL names no backend, and only --gif needs it
            from metarl.rl.animation import is_mujoco, renderer_problem, write_policy_gif

            if not is_mujoco(experiment):
                raise ValueError(f"--gif draws a MuJoCo policy; {config['env_id']} is not a MuJoCo environment")
            problem = renderer_problem(config["env_id"])
            if problem is not None:
                report.skipped.append(problem)
            else:
                report.written.append(write_policy_gif(experiment, out / "policy.gif"))
    finally:
        experiment.learner.sampler.close()
