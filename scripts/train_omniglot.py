"""MAML on Omniglot N-way K-shot classification (Finn et al. 2017, section 5.2).

Defaults are the paper's 5-way 1-shot settings. For 20-way 1-shot the paper uses
``--ways 20 --inner-lr 0.1 --inner-steps 5 --meta-batch-size 16``.

    METARL_DATA=../shared/data python scripts/train_omniglot.py --out runs/omniglot-5w1s
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import tyro

from metarl.experiment import SupervisedMAMLConfig, run_supervised_maml
from metarl.maml import MAMLConfig
from metarl.train import TrainConfig


@dataclass
class Args:
    """MAML on Omniglot (paper defaults: 5-way 1-shot, inner lr 0.4, 1 step in training and 3 at test, meta-batch 32)."""

    ways: int = 5
    """Classes per task (N)."""
    shots: int = 1
    """Support images per class (K)."""
    queries: int = 15
    """Query images per class."""
    split: Literal["maml", "vinyals"] = "maml"
    """Class split: Finn et al.'s (1200 training characters) or Vinyals et al.'s (1028/172/423)."""
    data: str | None = None
    """Omniglot folder holding images_background(.zip) and images_evaluation(.zip); default $METARL_DATA/omniglot."""
    hidden: int = 64
    """Filters per convolutional block."""
    maml: MAMLConfig = field(default_factory=lambda: MAMLConfig(inner_lr=0.4, inner_steps=1, eval_inner_steps=3))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        out="runs/omniglot", iterations=60_000, meta_batch_size=32, log_every=50, eval_every=500,
        eval_tasks=100, checkpoint_every=100))


def main(args: Args) -> None:
    config = SupervisedMAMLConfig(
        family="omniglot",
        task={"ways": args.ways, "shots": args.shots, "queries": args.queries, "class_split": args.split,
              "root": args.data},
        model={"name": "conv4", "in_channels": 1, "out_features": args.ways, "hidden": args.hidden, "image_size": 28},
        maml=args.maml,
        train=args.train,
    )
    _, untrained, trained = run_supervised_maml(config)
    print(f"{args.ways}-way {args.shots}-shot, test classes of the {args.split} split:")
    if untrained is not None:
        print(f"  untrained model: {untrained.describe()}")
    print(f"  trained model:   {trained.describe()}")
    print(f"evaluation written to {args.train.out}/eval.json; TensorBoard: tensorboard --logdir {args.train.out}")


if __name__ == "__main__":
    main(tyro.cli(tyro.conf.OmitArgPrefixes[Args]))
