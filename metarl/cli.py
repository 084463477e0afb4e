"""The ``metarl`` command: ``metarl evaluate --checkpoint RUN`` re-evaluates a trained run of any method (MAML,
Meta-LSTM, nearest neighbour, Matching Networks, MANN, MAML-TRPO), by the checkpoint's method; ``metarl plot RUN``
draws its learning curves, evaluation and adaptation as PNG files; ``metarl predict`` classifies your own images
few-shot with a trained image classifier."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from metarl.checkpoint import CheckpointError
from metarl.evaluate import EvalResult

USER_ERRORS = (ValueError, OSError, CheckpointError)
"""A user's mistake (a bad value; a missing, unreadable or unwritable file; an unusable checkpoint): one line,
exit code 2."""


def _evaluate(args: argparse.Namespace) -> None:
    from metarl.checkpoint import checkpoint_file, load_checkpoint

    method = load_checkpoint(checkpoint_file(args.checkpoint))["method"]
    if method == "maml_trpo":
        result, step, title = _evaluate_rl(args)
    else:
        result, step, title = _evaluate_supervised(args, method)
    result.protocol["checkpoint_step"] = step
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return
    print(f"{title}, checkpoint at step {step}:")
    for s in result.steps:
        print(f"  {result.describe(s)}")


def _evaluate_supervised(args: argparse.Namespace, method: str) -> tuple[EvalResult, int, str]:
    if method == "mann":
        from metarl.mann_experiment import load_mann_experiment as load_experiment
    else:
        from metarl.experiment import load_experiment

    rl_only = [f"--{name.replace('_', '-')}" for name in ("seed", "step_sizes", "sampling")
               if getattr(args, name) is not None]
    if rl_only:
        raise ValueError(f"{', '.join(rl_only)} applies to reinforcement-learning runs only")
    experiment, step = load_experiment(args.checkpoint, device=args.device)
    overrides = {name: value for name, value in (("shots", args.shots), ("ways", args.ways), ("queries", args.queries))
                 if value is not None}
    unknown = set(overrides) - set(experiment.config.task)
    if unknown:
        raise ValueError(f"--{', --'.join(sorted(unknown))} does not apply to the {experiment.config.family} family")
    part = args.part or "test"
    result = experiment.evaluate(part, args.tasks or 600, args.steps, **overrides)
    return result, step, f"{experiment.config.family}, {part} part"


def _evaluate_rl(args: argparse.Namespace) -> tuple[EvalResult, int, str]:
    from metarl.rl.experiment import load_rl_experiment

    supervised_only = [f"--{name}" for name in ("shots", "ways", "queries", "part") if getattr(args, name) is not None]
    if supervised_only:
        raise ValueError(f"{', '.join(supervised_only)} does not apply to a reinforcement-learning run")
    experiment, step = load_rl_experiment(args.checkpoint, device=args.device, sampling=args.sampling)
    result = experiment.evaluate(args.tasks or 40, args.steps, seed=args.seed, step_sizes=args.step_sizes)
    return result, step, experiment.config.env_id


def _predict(args: argparse.Namespace) -> None:
    from metarl.predict import predict_folders

    predictions = predict_folders(args.checkpoint, args.support, args.query, args.steps, args.device)
    print("\n".join(predictions.lines()))
    if args.csv:
        predictions.write_csv(args.csv)
        print(f"predictions written to {args.csv}", file=sys.stderr)


def _plot(args: argparse.Namespace) -> None:
    from metarl.plot_run import plot_run

    report = plot_run(args.folder, args.out, args.eval, args.gif, args.device)
    for path in report.written:
        print(path)
    for reason in report.skipped:
        print(f"metarl plot: {reason}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metarl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    evaluate = commands.add_parser("evaluate", help="evaluate a trained run on held-out tasks (mean and 95% CI)")
    evaluate.add_argument("--checkpoint", required=True, help="run folder or checkpoint.pt file")
    evaluate.add_argument("--tasks", type=int, default=None,
                          help="held-out tasks (default 600 for supervised runs, 40 for RL runs)")
    evaluate.add_argument("--steps", type=int, default=None, help="adaptation steps (default: the run's eval_inner_steps)")
    evaluate.add_argument("--shots", type=int, default=None, help="support examples per class (default: as trained)")
    evaluate.add_argument("--ways", type=int, default=None, help="classes per task (default: as trained)")
    evaluate.add_argument("--queries", type=int, default=None, help="query examples per class (default: as trained)")
    evaluate.add_argument("--part", default=None, choices=("train", "val", "test"),
                          help="which class split (supervised runs; default test)")
    evaluate.add_argument("--seed", type=int, default=None,
                          help="reinforcement-learning runs: draw the tasks of this seed (default: the run's seed, "
                               "whose tasks are its test tasks; other seeds give tuning tasks)")
    evaluate.add_argument("--step-sizes", type=float, nargs="+", default=None, metavar="SIZE",
                          help="reinforcement-learning runs: one size per adaptation step, in order (default: the "
                               "run's schedule)")
    evaluate.add_argument("--sampling", default=None,
                          help="reinforcement-learning runs: episodes (one per lane) or steps (whole episodes until "
                               "each lane took the horizon's steps); default: the run's own")
    evaluate.add_argument("--device", default=None, help="auto, cpu or cuda (default: the run's own setting)")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON (the eval.json shape)")
    evaluate.set_defaults(run=_evaluate)
    predict = commands.add_parser("predict", help="classify your own images few-shot, from a folder per class")
    predict.add_argument("--checkpoint", required=True, help="run folder or checkpoint.pt file (a supervised "
                         "image classifier: MAML, Meta-LSTM, nearest neighbour, Matching Networks)")
    predict.add_argument("--support", required=True, help="folder with one sub-folder of images per class")
    predict.add_argument("--query", required=True, help="folder of the images to classify")
    predict.add_argument("--steps", type=int, default=None,
                         help="adaptation steps (MAML, Meta-LSTM; default: the run's evaluation setting)")
    predict.add_argument("--csv", default=None, help="also write the predictions here (image, class, probability)")
    predict.add_argument("--device", default=None, help="auto, cpu or cuda (default: the run's own setting)")
    predict.set_defaults(run=_predict)
    plot = commands.add_parser("plot", help="draw a run's learning curves, evaluation and adaptation as PNG files")
    plot.add_argument("folder", metavar="RUN", help="run folder")
    plot.add_argument("--out", default=None, help="folder for the pictures (default: RUN/plots)")
    plot.add_argument("--eval", default=None, help="evaluation to draw, in eval.json's shape (default: RUN/eval.json)")
    plot.add_argument("--gif", action="store_true",
                      help="MuJoCo runs: also a GIF of the policy before and after adaptation (needs MUJOCO_GL=egl or osmesa)")
    plot.add_argument("--device", default="cpu", help="where a reloaded model runs: cpu (default), cuda or auto")
    plot.set_defaults(run=_plot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "tasks", None) is not None and args.tasks < 1:
        print(f"metarl: error: --tasks must be >= 1, got {args.tasks}", file=sys.stderr)
        return 2
    if (getattr(args, "steps", None) or 0) < 0:
        print(f"metarl: error: --steps must be >= 0, got {args.steps}", file=sys.stderr)
        return 2
    try:
        args.run(args)
    except USER_ERRORS as error:
        print(f"metarl: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
