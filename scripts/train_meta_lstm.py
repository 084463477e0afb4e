"""The LSTM meta-learner of Ravi & Larochelle (2017) on Mini-ImageNet or Omniglot.

Defaults are the paper's 5-way 1-shot Mini-ImageNet settings: a conv4-32 learner, 12 updates per episode,
one episode per meta-update, Adam 1e-3 with meta-gradient norm clipping 0.25. For 5-shot the authors' code
makes 8 updates, which this script uses unless --inner-steps is given.

    METARL_DATA=../shared/data python scripts/train_meta_lstm.py --dataset omniglot --out runs/meta-lstm-omniglot
"""

from __future__ import annotations

from dataclasses import dataclass, field

from metarl.image_tasks import ImageTasks, train_image_method
from metarl.meta_lstm import MetaLSTMConfig
from metarl.script import run_script
from metarl.train import TrainConfig


@dataclass
class Args:
    """Meta-LSTM few-shot classification (paper defaults: 5-way 1-shot Mini-ImageNet, 12 updates, Adam 1e-3)."""

    images: ImageTasks = field(default_factory=ImageTasks)
    hidden: int = 32
    """Filters per convolutional block of the learner."""
    meta_lstm: MetaLSTMConfig = field(default_factory=MetaLSTMConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        out="runs/meta-lstm", iterations=75_000, meta_batch_size=1, log_every=100, eval_every=1000,
        eval_tasks=100, checkpoint_every=500))


def main(args: Args) -> None:
    train_image_method(args.images, args.hidden, args.meta_lstm.for_shots(args.images.shots), args.train)


if __name__ == "__main__":
    run_script(main, Args)
