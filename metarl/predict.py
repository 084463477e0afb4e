"""Few-shot prediction on one's own images (``metarl predict``): classify the images of a query folder from the
labelled images of a support folder, with a trained supervised image classifier.

The support folder holds one sub-folder per class (its name is the class) with a few images each; the query
folder holds the images to classify. Images may have any size and colour mode: they are decoded the way the
run's training data was, by the ``decode_image(path, image_size)`` of the module that defines the run's task
family (its ``metarl.task_families`` entry point; ``supervised.omniglot`` and ``supervised.miniimagenet`` offer
one), at the model's ``image_size``.

What the probability of a prediction is depends on the method:

- MAML and the Meta-LSTM adapt the model to the support set (``steps`` updates, by default the run's
  evaluation setting) and report the softmax of its output for the query image. Their batch norm uses the
  statistics of the batch it is given, so the query images are normalised together, as one batch (the
  papers' transductive protocol): a prediction can depend on the other images of the query folder.
- Matching Networks report their own class distribution: attention over the support images (Vinyals et al.
  2016, eq. 1).
- Nearest neighbour (1-NN) has no distribution of its own; it reports a softmax over the classes of the
  similarity of each class's nearest support image (:func:`metarl.metric.nearest_neighbour_log_probabilities`),
  whose most likely class is the 1-NN label. It is a score, not a calibrated probability: with the cosine
  distance it is at most e^2 / (e^2 + classes - 1), 0.65 for five classes.
"""

from __future__ import annotations

import csv
import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metarl.checkpoint import checkpoint_file, load_checkpoint
from metarl.experiment import LEARNERS, SupervisedConfig, check_ways, load_experiment, task_family

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
"""The files of a folder that are read as images (case-insensitive); other files are ignored."""

ImageDecoder = Callable[[Path, int], np.ndarray]
"""``decode_image(path, image_size)``: ``uint8 [S, S]`` (greyscale) or ``[S, S, 3]`` (colour)."""


@dataclass
class Prediction:
    """One query image's most likely class and its probability."""

    image: str
    """The image's file name in the query folder."""
    label: str
    """The predicted class: the name of a sub-folder of the support folder."""
    probability: float

    def fields(self) -> tuple[str, str, str]:
        """The printed and CSV columns: image, class, probability (4 decimals)."""
        return self.image, self.label, f"{self.probability:.4f}"


@dataclass
class Predictions:
    """Every query image's prediction and how they were made."""

    method: str
    family: str
    checkpoint_step: int
    classes: list[str]
    support_images: int
    steps: int | None
    """Adaptation steps taken (MAML, Meta-LSTM); None for the metric methods, which do not adapt."""
    rows: list[Prediction]

    def lines(self) -> list[str]:
        """A header, then one line per query image: image, class and probability in aligned columns."""
        adaptation = "no adaptation (compares embeddings)" if self.steps is None else f"{self.steps} adaptation steps"
        header = (f"{self.method} on {self.family}, checkpoint at step {self.checkpoint_step}: "
                  f"{self.support_images} support images of {len(self.classes)} classes, {adaptation}")
        widths = [max(len(row.fields()[i]) for row in self.rows) for i in range(2)]
        return [header, *(f"  {image:<{widths[0]}}  {label:<{widths[1]}}  {probability}"
                          for image, label, probability in (row.fields() for row in self.rows))]

    def write_csv(self, path: str | Path) -> None:
        """The predictions as CSV with the columns image, class, probability (as printed); ValueError if the
        file cannot be written."""
        try:
            with open(path, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["image", "class", "probability"])
                writer.writerows(row.fields() for row in self.rows)
        except OSError as error:
            raise ValueError(f"cannot write the CSV file {path}: {error.strerror or error}") from None


# --- the run ------------------------------------------------------------------------------------------
def run_config(checkpoint: str | Path) -> SupervisedConfig:
    """The configuration of the run at ``checkpoint`` (its folder or ``checkpoint.pt``); ValueError unless it is
    a supervised image classifier whose task family can decode images."""
    path = Path(checkpoint)
    state = load_checkpoint(checkpoint_file(path))
    supported = f"predict supports supervised image classifiers: {', '.join(LEARNERS)}"
    if state.get("method") not in LEARNERS:
        raise ValueError(f"{supported}; {path} is a {state.get('method')!r} checkpoint")
    try:
        config = SupervisedConfig.from_json(json.loads(state["config"]))
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: its configuration is of an older or unknown format ({type(error).__name__}: "
                         f"{error}); this version of metarl cannot rebuild the run") from None
    if "image_size" not in config.model:
        raise ValueError(f"{supported}; {path} is a {config.method} run on {config.family!r}, whose model "
                         f"({config.model.get('name')!r}) does not take images")
    return config


def image_decoder(family: str) -> ImageDecoder:
    """The ``decode_image`` of the module that defines task family ``family``; ValueError if it has none."""
    module = importlib.import_module(task_family(family).__module__)
    decode = getattr(module, "decode_image", None)
    if decode is None:
        raise ValueError(f"predict supports supervised image classifiers; the {family!r} family's module "
                         f"{module.__name__} has no decode_image(path, image_size) to read images with")
    return decode


# --- the folders --------------------------------------------------------------------------------------
def _folder(path: str | Path, role: str) -> Path:
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"{role} folder {folder} does not exist")
    if not folder.is_dir():
        raise ValueError(f"{role} folder {folder} is not a folder")
    return folder


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, by name."""
    return [p for p in _visible(folder) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]


def support_images(path: str | Path) -> tuple[list[str], list[Path], Tensor]:
    """The classes (sub-folder names, sorted), every support image and its label ``int64 [images]``.

    ValueError if the folder has fewer than two class sub-folders, a class folder has no images, or images
    lie outside the class folders (a likely mix-up).
    """
    folder = _folder(path, "support")
    loose = _images(folder)
    if loose:
        raise ValueError(f"support folder {folder} holds images outside class sub-folders ({loose[0].name}, ...): "
                         "put each class's images in a sub-folder named after the class")
    classes = [p for p in _visible(folder) if p.is_dir()]
    if len(classes) < 2:
        raise ValueError(f"support folder {folder} has {len(classes)} class sub-folder(s); it needs one sub-folder "
                         "per class (at least two), each holding that class's images")
    paths, labels = [], []
    for label, class_folder in enumerate(classes):
        images = _images(class_folder)
        if not images:
            raise ValueError(f"class folder {class_folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
        paths += images
        labels += [label] * len(images)
    return [c.name for c in classes], paths, torch.tensor(labels)


def query_images(path: str | Path) -> list[Path]:
    """The images to classify: the image files directly in the folder (sub-folders are not searched)."""
    folder = _folder(path, "query")
    images = _images(folder)
    if not images:
        raise ValueError(f"query folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)}) directly inside it")
    return images


def load_images(paths: Sequence[Path], decode: ImageDecoder, image_size: int) -> Tensor:
    """The images decoded by ``decode`` as ``float32 [N, C, S, S]`` in [0, 1], the layout of the training
    episodes (:class:`supervised.episodes.FewShotClassification`)."""
    images = np.stack([decode(path, image_size) for path in paths])
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(images)).float().div_(255)


# --- prediction ---------------------------------------------------------------------------------------
def class_probabilities(learner: Any, support_x: Tensor, support_y: Tensor, query_x: Tensor, steps: int) -> Tensor:
    """``[Q, ways]`` class probabilities of the query images given the support set (see the module docstring);
    ``steps`` is ignored by the methods that do not adapt."""
    if learner.adapts:
        return torch.softmax(learner.predict(learner.adapt(support_x, support_y, steps), query_x), dim=-1).cpu()
    return learner.log_probabilities(support_x[None], support_y[None], query_x[None])[0].exp().cpu()


def predict_folders(checkpoint: str | Path, support: str | Path, query: str | Path, steps: int | None = None,
                    device: str | None = None) -> Predictions:
    """Classify the images of ``query`` with the run at ``checkpoint``, adapted to (or comparing with) ``support``.

    ``steps`` (MAML, Meta-LSTM) defaults to the run's evaluation setting; the metric methods refuse it. An
    adapting method needs as many classes as its model's outputs. Every check on the folders and images is
    made before the run is rebuilt (which loads its training data, as ``metarl evaluate`` does).
    """
    config = run_config(checkpoint)
    learner_type = LEARNERS[config.method]
    if not learner_type.adapts and steps not in (None, 0):
        raise ValueError(f"{config.method} does not adapt by gradient steps; drop --steps (got {steps})")
    classes, support_paths, support_y = support_images(support)
    query_paths = query_images(query)
    check_ways(config, len(classes), f"the support folder has {len(classes)} classes")
    decode, size = image_decoder(config.family), config.model["image_size"]
    support_x, query_x = load_images(support_paths, decode, size), load_images(query_paths, decode, size)
    experiment, step = load_experiment(checkpoint, device=device)
    learner = experiment.learner
    steps = (learner.eval_steps if steps is None else steps) if learner.adapts else None
    probability, label = class_probabilities(learner, support_x, support_y, query_x, steps or 0).max(dim=-1)
    rows = [Prediction(path.name, classes[i], p) for path, i, p in zip(query_paths, label.tolist(), probability.tolist())]
    return Predictions(config.method, config.family, step, classes, len(support_paths), steps, rows)
