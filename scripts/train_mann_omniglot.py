"""MANN (Santoro et al. 2016) and its LSTM and feed-forward baselines on Omniglot online classification.

Each episode shows 5 new classes, 10 drawings each, in random order; the label of a drawing arrives with
the next one. Reported: accuracy at the 1st, 2nd, ..., 10th presentation of a class, on episodes of the
423 held-out characters (paper Table 1). For 15 classes with string labels:
``--ways 15 --labels string``; for a baseline: ``--model lstm`` or ``--model ff``.

    METARL_DATA=../shared/data python scripts/train_mann_omniglot.py --out runs/mann-5way
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from metarl.evaluate import EvalResult
from metarl.mann import MANNConfig
from metarl.mann_experiment import MANNRunConfig, run_mann
from metarl.script import run_script
from metarl.sequence_learner import SequenceLearnerConfig
from metarl.train import TrainConfig
from supervised.omniglot import SEQUENCE_FAMILY
from supervised.sequences import Augmentation


@dataclass
class Args:
    """MANN on Omniglot (paper defaults: 5 classes x 10 drawings, one-hot labels, 20x20, minibatch 16)."""

    model: Literal["mann", "lstm", "ff"] = "mann"
    """mann, or a baseline with the same input and output: lstm (MANN's controller alone) or ff (feed-forward)."""
    ways: int = 5
    """Classes per episode (the paper: 5, also 10 and 15)."""
    samples: int = 10
    """Drawings of each class per episode (the paper: 10)."""
    labels: Literal["one_hot", "string"] = "one_hot"
    """one_hot, or the paper's five-character strings (5 symbols of 5 values; its 15-class runs)."""
    split: Literal["maml", "vinyals"] = "maml"
    """Class split: maml = 1200 training characters and 423 held out, as in the paper; or Vinyals et al.'s."""
    data: str | None = None
    """Omniglot folder holding images_background(.zip) and images_evaluation(.zip); default $METARL_DATA/omniglot."""
    init_from: str | None = None
    """Start from the weights of this MANN run (folder or checkpoint.pt) of the same model and label shapes, not
    from random ones; e.g. 15 classes with string labels from a 5-class string run (a curriculum, not the paper's)."""
    augment: Augmentation = field(default_factory=Augmentation)
    mann: MANNConfig = field(default_factory=MANNConfig)
    optim: SequenceLearnerConfig = field(default_factory=SequenceLearnerConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        out="runs/mann-omniglot", iterations=100_000, meta_batch_size=16, log_every=100, eval_every=1000,
        eval_tasks=160, final_eval_tasks=1000, checkpoint_every=1000))


def table_row(name: str, result: EvalResult) -> str:
    return f"  {name:<10}" + "".join(f"{100 * m:7.1f}" for m in result.mean)


def main(args: Args) -> None:
    config = MANNRunConfig(
        family=SEQUENCE_FAMILY,
        task={"ways": args.ways, "samples": args.samples, "labels": args.labels, "class_split": args.split,
              "root": args.data, **asdict(args.augment)},
        model=args.model,
        mann=args.mann,
        optim=args.optim,
        train=args.train,
        init_from=args.init_from,
    )
    _, initial, trained = run_mann(config)
    print(f"{args.model}, {args.ways} classes, {args.labels} labels: % correct by instance on {trained.tasks} "
          f"episodes of the test classes ({args.split} split), 95% CI up to +-{100 * max(trained.ci95):.1f}")
    print(f"  {'instance':<10}" + "".join(f"{s:7d}" for s in trained.steps))
    if initial is not None:
        print(table_row("untrained" if args.init_from is None else "initial", initial))
    print(table_row("trained", trained))
    print(f"evaluation written to {args.train.out}/eval.json; TensorBoard: tensorboard --logdir {args.train.out}")


if __name__ == "__main__":
    run_script(main, Args)
