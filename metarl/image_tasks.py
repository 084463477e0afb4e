"""Few-shot image classification runs on Omniglot or Mini-ImageNet, as the training scripts set them up.

Every image-classification script (MAML, Meta-LSTM, nearest neighbour, Matching Networks) takes the same
data set options and the same 4-block convolutional backbone; :class:`ImageTasks` holds those options and
:func:`train_image_method` runs one method on them and prints the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from metarl.experiment import SupervisedConfig, run_supervised
from metarl.train import TrainConfig

IMAGE_SHAPES = {"omniglot": (1, 28), "miniimagenet": (3, 84)}
"""Channels and side of the images each data set is resized to (the papers' sizes)."""


@dataclass
class ImageTasks:
    """Which few-shot image tasks to train and test on."""

    dataset: Literal["omniglot", "miniimagenet"] = "miniimagenet"
    """Task family: Omniglot (28x28 greyscale) or Mini-ImageNet (84x84 colour, Ravi & Larochelle's split)."""
    ways: int = 5
    """Classes per task (N)."""
    shots: int = 1
    """Support images per class (K)."""
    queries: int = 15
    """Query images per class."""
    split: Literal["maml", "vinyals"] = "vinyals"
    """Omniglot only: the class split of Vinyals et al. (1028/172/423 characters) or Finn et al.'s."""
    data: str | None = None
    """Data folder (Omniglot's or Mini-ImageNet's); default $METARL_DATA/omniglot or $METARL_DATA/miniimagenet."""

    def task(self) -> dict[str, Any]:
        """The options of the data set's task family."""
        task: dict[str, Any] = {"ways": self.ways, "shots": self.shots, "queries": self.queries, "root": self.data}
        if self.dataset == "omniglot":
            task["class_split"] = self.split
        return task

    def conv4(self, hidden: int) -> dict[str, Any]:
        """The spec of the 4-block convolutional network with ``hidden`` filters, classifying ``ways`` classes."""
        channels, size = IMAGE_SHAPES[self.dataset]
        return {"name": "conv4", "in_channels": channels, "out_features": self.ways, "hidden": hidden,
                "image_size": size}


def train_image_method(images: ImageTasks, hidden: int, learner: Any, train: TrainConfig) -> None:
    """Train the method that ``learner`` configures on ``images``, evaluate it on the test classes, print both."""
    config = SupervisedConfig(family=images.dataset, task=images.task(), model=images.conv4(hidden), learner=learner,
                              train=train)
    _, untrained, trained = run_supervised(config)
    print(f"{config.method}, {images.ways}-way {images.shots}-shot {images.dataset}, test classes:")
    if untrained is not None:
        print(f"  untrained: {untrained.describe()}")
    print(f"  trained:   {trained.describe()}")
    print(f"evaluation written to {train.out}/eval.json; TensorBoard: tensorboard --logdir {train.out}")
