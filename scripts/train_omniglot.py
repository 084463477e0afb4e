"""MAML on Omniglot N-way K-shot classification (Finn et al. 2017, section 5.2).

Defaults are the paper's 5-way 1-shot settings. For 20-way 1-shot the paper uses
``--ways 20 --inner-lr 0.1 --inner-steps 5 --meta-batch-size 16``. ``--dataset miniimagenet`` runs the
same script on Mini-ImageNet (the paper there: conv4-32, ``--hidden 32 --inner-lr 0.01 --inner-steps 5``
with ``--meta-batch-size 4`` for 1-shot and 2 for 5-shot).

    METARL_DATA=../shared/data python scripts/train_omniglot.py --out runs/omniglot-5w1s
"""

from __future__ import annotations

from dataclasses import dataclass, field

from metarl.image_tasks import ImageTasks, train_image_method
from metarl.maml import MAMLConfig
from metarl.script import run_script
from metarl.train import TrainConfig


@dataclass
class Args:
    """MAML on Omniglot (paper defaults: 5-way 1-shot, inner lr 0.4, 1 step in training and 3 at test, meta-batch 32)."""

    images: ImageTasks = field(default_factory=lambda: ImageTasks(dataset="omniglot", split="maml"))
    hidden: int = 64
    """Filters per convolutional block."""
    maml: MAMLConfig = field(default_factory=lambda: MAMLConfig(inner_lr=0.4, inner_steps=1, eval_inner_steps=3))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        out="runs/omniglot", iterations=60_000, meta_batch_size=32, log_every=50, eval_every=500,
        eval_tasks=100, checkpoint_every=100))


def main(args: Args) -> None:
    train_image_method(args.images, args.hidden, args.maml, args.train)


if __name__ == "__main__":
    run_script(main, Args)
