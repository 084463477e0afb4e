"""The nearest-neighbour baseline of Ravi & Larochelle (2017) on Mini-ImageNet or Omniglot.

The conv4-32 network is trained as an ordinary classifier over all meta-training classes (64 on
Mini-ImageNet) on batches of --meta-batch-size images; at meta-test each query image takes the label of
its nearest support image in the network's feature space. One trained network serves every N-way K-shot
setting: evaluate it with ``metarl evaluate --checkpoint RUN --ways 20 --shots 5``.

    METARL_DATA=../shared/data python scripts/train_nearest_neighbour.py --dataset omniglot --out runs/nn-omniglot
"""

from __future__ import annotations

from dataclasses import dataclass, field

from metarl.image_tasks import ImageTasks, train_image_method
from metarl.metric import NearestNeighbourConfig
from metarl.script import run_script
from metarl.train import TrainConfig


@dataclass
class Args:
    """Nearest-neighbour baseline (a conv4-32 classifier over all training classes, 1-NN at meta-test)."""

    images: ImageTasks = field(default_factory=ImageTasks)
    hidden: int = 32
    """Filters per convolutional block."""
    nearest_neighbour: NearestNeighbourConfig = field(default_factory=NearestNeighbourConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        out="runs/nearest-neighbour", iterations=30_000, meta_batch_size=64, log_every=100, eval_every=1000,
        eval_tasks=100, checkpoint_every=1000))


def main(args: Args) -> None:
    train_image_method(args.images, args.hidden, args.nearest_neighbour, args.train)


if __name__ == "__main__":
    run_script(main, Args)
