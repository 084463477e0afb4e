"""Matching Networks (Vinyals et al. 2016) on Mini-ImageNet or Omniglot, with or without full context
embeddings (--fce).

Trained on N-way K-shot episodes with a conv4-32 embedding (Ravi & Larochelle's comparison); the
attention over the support set works for any number of ways and shots, so a trained network can also be
evaluated on other settings with ``metarl evaluate --checkpoint RUN --ways 20 --shots 5``.

    METARL_DATA=../shared/data python scripts/train_matching_net.py --dataset omniglot --out runs/matching-omniglot
"""

from __future__ import annotations

from dataclasses import dataclass, field

from metarl.image_tasks import ImageTasks, train_image_method
from metarl.metric import MatchingNetworkConfig
from metarl.script import run_script
from metarl.train import TrainConfig


@dataclass
class Args:
    """Matching Networks (cosine attention over the embedded support set; --fce for full context embeddings)."""

    images: ImageTasks = field(default_factory=ImageTasks)
    hidden: int = 32
    """Filters per convolutional block of the embedding."""
    matching: MatchingNetworkConfig = field(default_factory=MatchingNetworkConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        out="runs/matching-net", iterations=30_000, meta_batch_size=4, log_every=100, eval_every=1000,
        eval_tasks=100, checkpoint_every=1000))


def main(args: Args) -> None:
    train_image_method(args.images, args.hidden, args.matching, args.train)


if __name__ == "__main__":
    run_script(main, Args)
