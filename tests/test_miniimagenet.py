"""Mini-ImageNet loading, caching and errors, on a tiny stand-in built in the official layout.

Each test builds ``<tmp>/miniimagenet/{train,val,test}.csv`` and ``images/`` with 3 / 2 / 2 classes of
6 solid-colour JPEGs of varying sizes (one greyscale, one CMYK), so every decoded pixel is known.
"""

from __future__ import annotations

import os
import re
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metarl.tasks import SupervisedTaskDistribution
from supervised import miniimagenet
from supervised.miniimagenet import default_root, load_miniimagenet, make_miniimagenet

SPLIT = {
    "train": ["n01532829", "n01558993", "n01704323"],
    "val": ["n01855672", "n02091244"],
    "test": ["n01930112", "n01981276"],
}
PER_CLASS = 6
GREY = ("n01532829", 2)  # (class, image) saved as a greyscale JPEG
CMYK = ("n01558993", 3)  # saved as a CMYK JPEG


def file_name(wnid: str, j: int) -> str:
    return f"{wnid}{j + 1:08d}.jpg"  # Ravi & Larochelle's naming: wnid, then an 8-digit index


def colour(wnid: str, j: int) -> tuple[int, int, int]:
    """The solid colour of image ``j`` of class ``wnid``: distinct for every image."""
    c = [w for ws in SPLIT.values() for w in ws].index(wnid)
    if (wnid, j) == GREY:
        return (90, 90, 90)
    return (20 + 30 * c, 10 + 40 * j, 128)


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A complete tiny data set; the CSV rows are written in reverse order, so sorting is tested."""
    root = tmp_path / "miniimagenet"
    (root / "images").mkdir(parents=True)
    for part, wnids in SPLIT.items():
        rows = []
        for c, wnid in enumerate(wnids):
            for j in range(PER_CLASS):
                size = (40 + 23 * j, 100 - 13 * c)  # smaller and larger than 84, never square
                image = Image.new("RGB", size, colour(wnid, j))
                if (wnid, j) == GREY:
                    image = image.convert("L")
                elif (wnid, j) == CMYK:
                    image = image.convert("CMYK")
                image.save(root / "images" / file_name(wnid, j), quality=95)
                rows.append(f"{file_name(wnid, j)},{wnid}")
        (root / f"{part}.csv").write_text("filename,label\n" + "\n".join(reversed(rows)) + "\n")
    return root


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_shapes_dtype_classes_and_pixels(root: Path, cache: Path) -> None:
    for part, wnids in SPLIT.items():
        images, classes = load_miniimagenet(part, root, cache_dir=cache)
        assert images.shape == (len(wnids), PER_CLASS, 84, 84, 3) and images.dtype == np.uint8
        assert classes == sorted(wnids)
        expected = np.array([[colour(w, j) for j in range(PER_CLASS)] for w in classes], dtype=np.float64)
        # Solid colours survive JPEG and resizing within a few levels; rows follow wnids, then file names.
        assert np.abs(images.mean(axis=(2, 3)) - expected).max() < 4
        assert images.std(axis=(2, 3)).max() < 2
    small, _ = load_miniimagenet("train", root, image_size=20, cache_dir=cache)
    assert small.shape == (3, PER_CLASS, 20, 20, 3) and small.dtype == np.uint8


def test_greyscale_and_cmyk_become_rgb(root: Path, cache: Path) -> None:
    images, classes = load_miniimagenet("train", root, cache_dir=cache)
    for wnid, j in (GREY, CMYK):
        pixel = images[classes.index(wnid), j].reshape(-1, 3).mean(axis=0)
        assert np.abs(pixel - colour(wnid, j)).max() < 4, (wnid, j, pixel)


def test_resized_with_lanczos_stretching_the_whole_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.jpg"
    Image.fromarray(rng.integers(0, 256, (61, 130, 3), dtype=np.uint8)).save(path)
    with Image.open(path) as image:
        expected = np.asarray(image.convert("RGB").resize((84, 84), Image.LANCZOS))
    assert np.array_equal(miniimagenet._decode(path, 84), expected)


def test_make_miniimagenet_episode(root: Path, cache: Path) -> None:
    family = make_miniimagenet("train", ways=3, shots=2, queries=3, root=root, image_size=32, cache_dir=cache)
    assert isinstance(family, SupervisedTaskDistribution)
    rng = np.random.default_rng(0)
    tasks = family.sample_tasks(4, rng)
    assert all(task.family == "miniimagenet" for task in tasks)
    episode = family.episode(tasks, rng)
    assert episode.support_x.shape == (4, 3 * 2, 3, 32, 32) and episode.support_x.dtype == torch.float32
    assert episode.query_x.shape == (4, 3 * 3, 3, 32, 32)
    assert episode.support_y.shape == (4, 6) and episode.query_y.shape == (4, 9)
    assert 0.0 <= float(episode.support_x.min()) and float(episode.support_x.max()) <= 1.0


def test_ways_more_than_classes(root: Path, cache: Path) -> None:
    with pytest.raises(ValueError, match="ways=3 is more than the 2 classes"):
        make_miniimagenet("val", ways=3, shots=1, queries=2, root=root, cache_dir=cache)


def test_cache_is_outside_the_data_and_reused(root: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = listing(root)
    images, classes = load_miniimagenet("train", root, cache_dir=cache)
    assert listing(root) == before  # nothing written next to the data
    assert [p.suffix for p in cache.iterdir()] == [".npz"]  # one cache file, no temporary left

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded an image instead of reading the cache")

    monkeypatch.setattr(miniimagenet.Image, "open", no_decoding)
    again, again_classes = load_miniimagenet("train", root, cache_dir=cache)
    assert np.array_equal(again, images) and again_classes == classes
    # A changed image changes the key: it is decoded again (and the patched open now fails).
    image = root / "images" / file_name("n01704323", 0)
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded an image"):
        load_miniimagenet("train", root, cache_dir=cache)


def test_default_cache_folder_and_refusal_inside_the_data(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METARL_CACHE", str(tmp_path / "env-cache"))
    load_miniimagenet("val", root)
    assert [p.name.startswith("miniimagenet_val_84px_") for p in (tmp_path / "env-cache").iterdir()] == [True]
    with pytest.raises(ValueError, match="inside the data folder"):
        load_miniimagenet("val", root, cache_dir=root / "cache")


def test_missing_split_files_are_named(root: Path, cache: Path) -> None:
    (root / "val.csv").unlink()
    (root / "test.csv").unlink()
    with pytest.raises(FileNotFoundError) as error:
        load_miniimagenet("val", root, cache_dir=cache)
    message = str(error.value)
    assert str(root / "val.csv") in message and str(root / "test.csv") in message
    assert str(root / "train.csv") not in message
    assert "twitter/meta-learning-lstm" in message
    assert load_miniimagenet("train", root, cache_dir=cache)[0].shape[0] == 3  # the present part still loads


def test_missing_images_are_named(root: Path, cache: Path) -> None:
    gone = [file_name("n01855672", 1), file_name("n02091244", 4)]
    for name in gone:
        (root / "images" / name).unlink()
    with pytest.raises(FileNotFoundError) as error:
        load_miniimagenet("val", root, cache_dir=cache)
    message = str(error.value)
    assert f"2 of the 12 images listed in {root / 'val.csv'} are missing from {root / 'images'}" in message
    assert all(name in message for name in gone)
    for name in sorted((root / "images").iterdir())[:10]:
        name.unlink()
    with pytest.raises(FileNotFoundError, match=r"10 of the 18 images .*: n0153282900000001\.jpg, .* and 5 more\. "):
        load_miniimagenet("train", root, cache_dir=cache)


def test_missing_images_folder(root: Path, cache: Path) -> None:
    for path in (root / "images").iterdir():
        path.unlink()
    (root / "images").rmdir()
    with pytest.raises(FileNotFoundError, match=re.escape(f"{root / 'images'} does not exist")):
        load_miniimagenet("test", root, cache_dir=cache)


def test_missing_root_and_unset_metarl_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'nowhere'} does not exist")):
        load_miniimagenet("train", tmp_path / "nowhere")
    monkeypatch.delenv("METARL_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="METARL_DATA is not set"):
        load_miniimagenet("train")
    monkeypatch.setenv("METARL_DATA", str(tmp_path))
    assert default_root() == tmp_path / "miniimagenet"


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_jpeg_names_the_file(root: Path, cache: Path, damage: str) -> None:
    image = root / "images" / file_name("n01930112", 5)
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a jpeg")
    with pytest.raises(ValueError, match=re.escape(f"cannot decode Mini-ImageNet image {image}")):
        load_miniimagenet("test", root, cache_dir=cache)


def test_unequal_images_per_class(root: Path, cache: Path) -> None:
    csv = root / "train.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(line for line in lines if not line.startswith(file_name("n01558993", 0))) + "\n")
    with pytest.raises(ValueError, match=re.escape("2 classes have 6, these have other counts: {'n01558993': 5}")):
        load_miniimagenet("train", root, cache_dir=cache)


@pytest.mark.parametrize(
    ("row", "complaint"),
    [
        ("n0193011200000009.jpg,n01930112,extra", "expected 'filename,label'"),
        ("n0193011200000009.jpg,", "expected 'filename,label'"),
        ("../n0193011200000009.jpg,n01930112", "is not a file name inside images/"),
        (f"{file_name('n01981276', 5)},n01981276", "is listed twice (first on line 2)"),  # line 2: reversed rows
    ],
)
def test_malformed_row_names_file_and_line(root: Path, cache: Path, row: str, complaint: str) -> None:
    csv = root / "test.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([*lines[:3], row, *lines[3:]]) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{csv}:4: ") + ".*" + re.escape(complaint)):
        load_miniimagenet("test", root, cache_dir=cache)


def test_bad_header_and_unknown_part(root: Path, cache: Path) -> None:
    (root / "val.csv").write_text("file,class\na.jpg,n01855672\n")
    with pytest.raises(ValueError, match=re.escape(f"{root / 'val.csv'}:1: expected the header 'filename,label'")):
        load_miniimagenet("val", root, cache_dir=cache)
    with pytest.raises(ValueError, match="train, val, test"):
        load_miniimagenet("validation", root, cache_dir=cache)


def test_registered_as_a_task_family() -> None:
    families = {ep.name: ep.value for ep in entry_points(group="metarl.task_families")}
    assert families.get("miniimagenet") == "supervised.miniimagenet:make_miniimagenet", (
        "reinstall the project (pip install .) so that the entry point of pyproject.toml is registered"
    )
