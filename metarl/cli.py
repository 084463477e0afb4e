"""The ``metarl`` command: ``metarl evaluate --checkpoint RUN`` re-evaluates a trained run."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from metarl.checkpoint import CheckpointError

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, CheckpointError)


def _evaluate(args: argparse.Namespace) -> None:
    from metarl.experiment import load_experiment

    experiment, step = load_experiment(args.checkpoint, device=args.device)
    overrides = {name: value for name, value in (("shots", args.shots), ("ways", args.ways), ("queries", args.queries))
                 if value is not None}
    unknown = set(overrides) - set(experiment.config.task)
    if unknown:
        raise ValueError(f"--{', --'.join(sorted(unknown))} does not apply to the {experiment.config.family} family")
    result = experiment.evaluate(args.part, args.tasks, args.steps, **overrides)
    result.protocol["checkpoint_step"] = step
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return
    print(f"{experiment.config.family}, {args.part} part, checkpoint at step {step}:")
    for s in result.steps:
        print(f"  {result.describe(s)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metarl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    evaluate = commands.add_parser("evaluate", help="evaluate a trained run on held-out tasks (mean and 95% CI)")
    evaluate.add_argument("--checkpoint", required=True, help="run folder or checkpoint.pt file")
    evaluate.add_argument("--tasks", type=int, default=600, help="held-out tasks (default 600)")
    evaluate.add_argument("--steps", type=int, default=None, help="adaptation steps (default: the run's eval_inner_steps)")
    evaluate.add_argument("--shots", type=int, default=None, help="support examples per class (default: as trained)")
    evaluate.add_argument("--ways", type=int, default=None, help="classes per task (default: as trained)")
    evaluate.add_argument("--queries", type=int, default=None, help="query examples per class (default: as trained)")
    evaluate.add_argument("--part", default="test", choices=("train", "val", "test"), help="which class split")
    evaluate.add_argument("--device", default=None, help="auto, cpu or cuda (default: the run's own setting)")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON (the eval.json shape)")
    evaluate.set_defaults(run=_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "tasks", 1) < 1 or (getattr(args, "steps", None) or 0) < 0:
        print("metarl: error: --tasks must be >= 1 and --steps >= 0", file=sys.stderr)
        return 2
    try:
        args.run(args)
    except USER_ERRORS as error:
        print(f"metarl: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
