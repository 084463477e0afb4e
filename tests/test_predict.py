"""`metarl predict` (issue 7): few-shot prediction on one's own images, with tiny runs of every supervised image
method trained here on Omniglot and support/query folders of real drawings saved at several sizes and modes."""

from __future__ import annotations

import csv
import json
import math
import shutil
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metarl.checkpoint import save_checkpoint
from metarl.cli import main
from metarl.experiment import SupervisedConfig, run_supervised
from metarl.maml import MAMLConfig
from metarl.meta_lstm import MetaLSTMConfig
from metarl.metric import MatchingNetworkConfig, NearestNeighbourConfig, nearest_neighbour_log_probabilities
from metarl.predict import image_decoder, load_images
from metarl.train import TrainConfig
from supervised import miniimagenet
from supervised.omniglot import load_omniglot

WAYS = 3
CLASSES = ["alpha", "beta", "gamma"]
LEARNERS = {
    "maml": MAMLConfig(inner_lr=0.4, eval_inner_steps=2),
    "meta_lstm": MetaLSTMConfig(inner_steps=2),
    "nearest_neighbour": NearestNeighbourConfig(),
    "matching_net": MatchingNetworkConfig(),
}
DEFAULT_STEPS = {"maml": 2, "meta_lstm": 2}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, omniglot_root, omniglot_cache) -> dict[str, Path]:
    """A run folder per method: 3-way 1-shot Omniglot, conv4-8, two updates (enough to have a checkpoint)."""
    folders = {}
    for method, learner in LEARNERS.items():
        out = tmp_path_factory.mktemp(method)
        task = {"ways": WAYS, "shots": 1, "queries": 2, "class_split": "maml", "root": str(omniglot_root),
                "cache_dir": str(omniglot_cache)}
        model = {"name": "conv4", "in_channels": 1, "out_features": WAYS, "hidden": 8, "image_size": 28}
        train = TrainConfig(out=str(out), iterations=2, meta_batch_size=2, eval_every=2, eval_tasks=2,
                            final_eval_tasks=2, checkpoint_every=2, device="cpu", progress=False)
        run_supervised(SupervisedConfig(family="omniglot", task=task, model=model, learner=learner, train=train))
        folders[method] = out
    return folders


@pytest.fixture(scope="module")
def drawings(omniglot_root, omniglot_cache) -> np.ndarray:
    """Four drawings of each of three characters, ``uint8 [3, 4, 28, 28]``, ink 255 (as decoded)."""
    return load_omniglot(omniglot_root, cache_dir=omniglot_cache).images[[1000, 1200, 1400], :4]


def save(drawing: np.ndarray, path: Path, size: int, mode: str) -> Path:
    """Save an Omniglot drawing (ink 255) as a user would: dark ink on light paper, at ``size`` pixels, in PIL
    ``mode`` ("L", "RGB": blue ink on cream, "RGBA": black ink on a transparent background)."""
    paper = Image.fromarray(255 - drawing).resize((size, size), Image.LANCZOS)
    if mode == "RGB":
        ink = np.asarray(paper, dtype=np.float32)[..., None] / 255
        paper = Image.fromarray((ink * [255, 250, 230] + (1 - ink) * [20, 40, 160]).round().astype(np.uint8))
    elif mode == "RGBA":
        alpha = 255 - np.asarray(paper)
        paper = Image.fromarray(np.stack([np.zeros_like(alpha)] * 3 + [alpha], axis=-1), "RGBA")
    path.parent.mkdir(parents=True, exist_ok=True)
    paper.save(path)
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory, drawings) -> tuple[Path, Path]:
    """A support folder (two drawings per class: a 28px greyscale PNG and a 105px colour JPEG) and a query folder
    (the other two drawings of each class, as a 60px RGB PNG and a 40px transparent PNG)."""
    root = tmp_path_factory.mktemp("images")
    for name, character in zip(CLASSES, drawings):
        save(character[0], root / "support" / name / "a.png", 28, "L")
        save(character[1], root / "support" / name / "b.jpg", 105, "RGB")
        save(character[2], root / "query" / f"{name}-2.png", 60, "RGB")
        save(character[3], root / "query" / f"{name}-3.png", 40, "RGBA")
    (root / "support" / "alpha" / "notes.txt").write_text("not an image: ignored")
    return root / "support", root / "query"


def predict(capsys, *args: str) -> tuple[int, list[str], list[str]]:
    """``metarl predict ARGS`` in this process: exit code, stdout lines, stderr lines."""
    code = main(["predict", *args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def rows(lines: list[str]) -> list[list[str]]:
    """The printed prediction lines (after the header), split into image, class, probability."""
    return [line.split() for line in lines[1:]]


@pytest.mark.parametrize("method", sorted(LEARNERS))
def test_every_query_image_gets_a_support_class_and_the_csv_matches(method, runs, folders, tmp_path, capsys):
    support, query = folders
    out = tmp_path / "predictions.csv"
    code, lines, errors = predict(capsys, "--checkpoint", str(runs[method]), "--support", str(support),
                                  "--query", str(query), "--csv", str(out))
    assert code == 0, errors
    header, printed = lines[0], rows(lines)
    assert header.startswith(f"{method} on omniglot, checkpoint at step 2: 6 support images of 3 classes")
    assert header.endswith(f"{DEFAULT_STEPS[method]} adaptation steps" if method in DEFAULT_STEPS
                           else "no adaptation (compares embeddings)")
    assert sorted(image for image, _, _ in printed) == sorted(p.name for p in query.iterdir())
    for _, label, probability in printed:
        # the most likely of three classes has at least a third of the probability
        assert label in CLASSES and 1 / WAYS - 1e-4 <= float(probability) <= 1
    with open(out, newline="") as handle:
        assert list(csv.reader(handle)) == [["image", "class", "probability"], *printed]
    assert errors == [f"predictions written to {out}"]


@pytest.mark.parametrize("method", ["nearest_neighbour", "matching_net"])
def test_a_metric_method_gives_a_copy_of_a_support_image_that_image_s_class(method, runs, drawings, tmp_path, capsys):
    # One image per class: Matching Networks sum the attention over a class's images, so with several shots a
    # copy of one image could lose to a class of two near ones; with one shot the copy's cosine of 1 wins.
    (tmp_path / "query").mkdir()
    for i, name in enumerate(CLASSES):
        save(drawings[i, 0], tmp_path / "support" / name / "only.png", 28 + 20 * i, "RGB")
        shutil.copy(tmp_path / "support" / name / "only.png", tmp_path / "query" / f"copy-of-{name}.png")
    code, lines, errors = predict(capsys, "--checkpoint", str(runs[method]), "--support", str(tmp_path / "support"),
                                  "--query", str(tmp_path / "query"))
    assert code == 0, errors
    assert {image: label for image, label, _ in rows(lines)} == {f"copy-of-{name}.png": name for name in CLASSES}


def test_adaptation_steps_are_taken_as_asked(runs, folders, capsys):
    support, query = folders
    results = {}
    for steps in ("0", "5"):
        code, lines, errors = predict(capsys, "--checkpoint", str(runs["maml"]), "--support", str(support),
                                      "--query", str(query), "--steps", steps)
        assert code == 0, errors
        assert lines[0].endswith(f"{steps} adaptation steps")
        results[steps] = rows(lines)
    assert [r[2] for r in results["0"]] != [r[2] for r in results["5"]]


def one_line_error(capsys, *args: str) -> str:
    code, lines, errors = predict(capsys, *args)
    assert code == 2 and lines == [] and len(errors) == 1 and errors[0].startswith("metarl: error: "), errors
    return errors[0]


@pytest.mark.parametrize("method", ["maml", "meta_lstm"])
def test_an_adapting_method_refuses_another_number_of_classes(method, runs, folders, tmp_path, capsys):
    support, query = folders
    shutil.copytree(support, tmp_path / "support")
    shutil.copytree(support / "alpha", tmp_path / "support" / "delta")
    error = one_line_error(capsys, "--checkpoint", str(runs[method]), "--support", str(tmp_path / "support"),
                           "--query", str(query))
    assert f"{method} classifies with the model's 3-way output layer" in error and "has 4 classes" in error


def test_a_metric_method_takes_any_number_of_classes(runs, folders, tmp_path, capsys):
    support, query = folders
    shutil.copytree(support / "alpha", tmp_path / "support" / "alpha")
    shutil.copytree(support / "gamma", tmp_path / "support" / "gamma")
    code, lines, errors = predict(capsys, "--checkpoint", str(runs["nearest_neighbour"]), "--support",
                                  str(tmp_path / "support"), "--query", str(query))
    assert code == 0 and "of 2 classes" in lines[0], errors
    assert {label for _, label, _ in rows(lines)} <= {"alpha", "gamma"}


BAD_SUPPORT = {
    # case: (how to spoil a copy of the good folders, words the error must contain)
    "missing support folder": (lambda s, q: shutil.rmtree(s), ["support folder", "does not exist"]),
    "empty support folder": (lambda s, q: [shutil.rmtree(c) for c in s.iterdir()], ["0 class sub-folder(s)"]),
    "one class": (lambda s, q: [shutil.rmtree(s / c) for c in ("beta", "gamma")], ["1 class sub-folder(s)"]),
    "class without images": (lambda s, q: [f.unlink() for f in (s / "beta").iterdir()], ["beta has no images"]),
    "loose support image": (lambda s, q: shutil.copy(s / "beta" / "a.png", s / "loose.png"),
                            ["outside class sub-folders (loose.png"]),
    "empty query folder": (lambda s, q: [f.unlink() for f in q.iterdir()], ["query folder", "has no images"]),
    "query is a file": (lambda s, q: [shutil.rmtree(q), q.write_text("")], ["is not a folder"]),
    "unreadable support image": (lambda s, q: (s / "gamma" / "a.png").write_bytes(b"not a png"),
                                 ["cannot decode", "gamma/a.png"]),
    "unreadable query image": (lambda s, q: (q / "beta-2.png").write_text("not a png"), ["cannot decode", "beta-2.png"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SUPPORT))
def test_bad_folders_give_a_one_line_error(case, runs, folders, tmp_path, capsys):
    spoil, words = BAD_SUPPORT[case]
    support, query = tmp_path / "support", tmp_path / "query"
    shutil.copytree(folders[0], support)
    shutil.copytree(folders[1], query)
    spoil(support, query)
    error = one_line_error(capsys, "--checkpoint", str(runs["matching_net"]), "--support", str(support),
                           "--query", str(query))
    assert all(word in error for word in words), error


def fake_checkpoint(folder: Path, method: str, config: dict) -> Path:
    save_checkpoint(folder / "checkpoint.pt", {"method": method, "config": json.dumps(config), "step": 0})
    return folder


def test_runs_that_are_not_image_classifiers_are_refused(runs, folders, tmp_path, capsys):
    support, query = folders
    sinusoid = {"method": "maml", "family": "sinusoid", "task": {}, "model": {"name": "mlp", "sizes": [1, 40, 1]},
                "learner": asdict(MAMLConfig()), "train": asdict(TrainConfig())}
    refused = {
        "mann": fake_checkpoint(tmp_path / "mann", "mann", {}),
        "maml_trpo": fake_checkpoint(tmp_path / "rl", "maml_trpo", {}),
        "sinusoid": fake_checkpoint(tmp_path / "sinusoid", "maml", sinusoid),
    }
    for name, run in refused.items():
        error = one_line_error(capsys, "--checkpoint", str(run), "--support", str(support), "--query", str(query))
        assert "predict supports supervised image classifiers: maml, meta_lstm" in error, error
        assert ("'sinusoid'" if name == "sinusoid" else f"a {name!r} checkpoint") in error
    error = one_line_error(capsys, "--checkpoint", str(runs["nearest_neighbour"]), "--support", str(support),
                           "--query", str(query), "--steps", "3")
    assert "nearest_neighbour does not adapt by gradient steps" in error


def test_images_are_converted_like_the_training_data(omniglot_root, omniglot_cache, tmp_path):
    """An original Omniglot PNG gives exactly the training array; a transparent-background copy the same;
    a Mini-ImageNet model gets RGB channels first."""
    data = load_omniglot(omniglot_root, cache_dir=omniglot_cache)
    archive = omniglot_root / "images_evaluation.zip"
    if not archive.is_file():
        pytest.skip("the Omniglot data has no zips")
    row = 964  # the evaluation set's first character (the background set's 964 come first)
    prefix = f"images_evaluation/{data.characters[row]}/"
    with zipfile.ZipFile(archive) as members:
        first = min(m for m in members.namelist() if m.startswith(prefix) and m.endswith(".png"))
        (tmp_path / "original.png").write_bytes(members.read(first))
    with Image.open(tmp_path / "original.png") as original:
        ink = 255 - np.asarray(original.convert("L"))
    Image.fromarray(np.stack([np.zeros_like(ink)] * 3 + [ink], axis=-1), "RGBA").save(tmp_path / "transparent.png")
    decoded = load_images([tmp_path / "original.png", tmp_path / "transparent.png"], image_decoder("omniglot"), 28)
    assert decoded.shape == (2, 1, 28, 28) and decoded.dtype == torch.float32
    expected = torch.from_numpy(data.images[row, 0]).float() / 255
    assert torch.equal(decoded[0, 0], expected) and torch.equal(decoded[1, 0], expected)

    Image.new("RGB", (120, 50), (255, 0, 0)).save(tmp_path / "red.png")
    Image.new("L", (30, 90), 128).save(tmp_path / "grey.jpg")
    colour = load_images([tmp_path / "red.png", tmp_path / "grey.jpg"], image_decoder("miniimagenet"), 84)
    assert colour.shape == (2, 3, 84, 84)
    assert torch.equal(colour[0], torch.tensor([1.0, 0.0, 0.0])[:, None, None].expand(3, 84, 84))
    grey = torch.tensor(miniimagenet.decode_image(tmp_path / "grey.jpg", 84)).permute(2, 0, 1)
    assert torch.equal(colour[1] * 255, grey.float())


def test_nearest_neighbour_probabilities_rank_classes_as_1nn():
    """A softmax over classes of each class's best similarity: its argmax is the 1-NN label; values by hand."""
    support = torch.tensor([[[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]])  # unit vectors, classes 0, 1, 1
    query = torch.tensor([[[0.8, 0.6], [0.0, 2.0]]])
    labels = torch.tensor([[0, 1, 1]])
    probabilities = nearest_neighbour_log_probabilities(query, support, labels, 3).exp()
    best = torch.tensor([[0.8, 0.96], [0.0, 1.0]])  # cosines of each query's nearest support vector per class
    expected = torch.softmax(best, dim=-1)
    assert torch.allclose(probabilities[0, :, :2], expected) and torch.equal(probabilities[0, :, 2], torch.zeros(2))
    assert probabilities[0].argmax(-1).tolist() == [1, 1]
    euclidean = nearest_neighbour_log_probabilities(query, support, labels, 2, "euclidean").exp()
    nearest = -torch.tensor([[math.dist([0.8, 0.6], [1, 0]), math.dist([0.8, 0.6], [0.6, 0.8])],
                             [math.dist([0, 2], [1, 0]), 1.0]])
    assert torch.allclose(euclidean[0], torch.softmax(nearest, dim=-1))
