"""Mini-ImageNet (Vinyals et al., 2016) with the class split of Ravi & Larochelle (2017), as few-shot tasks.

The data root (by default ``$METARL_DATA/miniimagenet``) holds the split files and the images::

    <root>/train.csv, val.csv, test.csv   header "filename,label", rows like "n0153282900000005.jpg,n01532829"
    <root>/images/<filename>              one JPEG (any size, any colour mode) per row of the CSVs

The official split has 64 / 16 / 20 classes (ImageNet synsets, named by their wnid) of 600 images each;
a part's classes are sorted by wnid and the images of a class by file name. Every image is converted to
RGB and resized to ``image_size`` x ``image_size`` (84 by default, as in the literature).

Decoding the 38,400 training images takes minutes, so each part's decoded ``uint8`` array is cached as
an ``.npz`` in a cache folder (``cache_dir``, else ``$METARL_CACHE``, else ``~/.cache/metarl``), never
inside the data folder. The cache file name is keyed by the part, the image size, the CSV's rows and the
size and modification time of every listed image, so a changed data set is decoded again.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import warnings
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from supervised.cache import cache_folder, data_root, save_npz_atomic
from supervised.episodes import FewShotClassification

__all__ = ["PARTS", "decode_image", "default_root", "load_miniimagenet", "make_miniimagenet"]

FAMILY = "miniimagenet"
PARTS = ("train", "val", "test")
_CACHE_FORMAT = 1  # bump when decoding changes, so old cache files are not reused
_SHOWN_MISSING = 5  # how many missing image names an error lists
_GET_DATA = (
    "Mini-ImageNet is not downloaded automatically. The split files are data/miniImagenet/{train,val,test}.csv "
    "of https://github.com/twitter/meta-learning-lstm (Ravi & Larochelle, 2017; its README says how to get the "
    "images); the 60,000 images are ILSVRC-2012 (ImageNet) training images, available under ImageNet's terms "
    "from https://image-net.org. Lay them out as <root>/train.csv, <root>/val.csv, <root>/test.csv and "
    "<root>/images/<filename> for every filename in the CSVs, or set METARL_DATA to the folder that contains "
    "miniimagenet/."
)


# ----------------------------------------------------------------------------------------------
# Locating and reading the data


def default_root() -> Path:
    """``$METARL_DATA/miniimagenet``; raises FileNotFoundError when ``METARL_DATA`` is not set."""
    return data_root("miniimagenet", "Mini-ImageNet", "train.csv, val.csv, test.csv and images/")


def _check_part(part: str) -> None:
    if part not in PARTS:
        raise ValueError(f"unknown Mini-ImageNet part {part!r}; valid values: {', '.join(PARTS)}")


def _resolve_root(root: str | Path | None) -> Path:
    path = default_root() if root is None else Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"Mini-ImageNet data folder not found: {path} does not exist. {_GET_DATA}")
    return path


def _split_file(root: Path, part: str) -> Path:
    """``<root>/<part>.csv``; FileNotFoundError listing every split file missing from ``root`` if it is absent."""
    path = root / f"{part}.csv"
    if not path.is_file():
        missing = [str(root / f"{p}.csv") for p in PARTS if not (root / f"{p}.csv").is_file()]
        raise FileNotFoundError(f"Mini-ImageNet split file(s) missing: {', '.join(missing)}. {_GET_DATA}")
    return path


def _read_split(path: Path) -> dict[str, list[str]]:
    """The image file names of every class in a split CSV, ``{wnid: sorted file names}``, wnids sorted.

    Raises ValueError naming the file and line of a malformed row (not two non-empty fields, a file
    name with a path separator, a file listed twice) and ValueError if the classes have different
    numbers of images, naming the classes that differ.
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a UTF-8 text file ({error})") from None
    reader = csv.reader(lines)
    header = next(reader, None)
    if header != ["filename", "label"]:
        raise ValueError(f"{path}:1: expected the header 'filename,label', got {','.join(header or [])!r}")
    classes: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not row:  # a blank line
                continue
            if len(row) != 2 or not all(field.strip() for field in row):
                raise ValueError(f"{path}:{line}: expected 'filename,label', got {','.join(row)!r}")
            filename, wnid = (field.strip() for field in row)
            if "/" in filename or "\\" in filename or filename in (".", ".."):
                raise ValueError(f"{path}:{line}: {filename!r} is not a file name inside images/")
            if filename in first_line:
                raise ValueError(f"{path}:{line}: {filename} is listed twice (first on line {first_line[filename]})")
            first_line[filename] = line
            classes.setdefault(wnid, []).append(filename)
    except csv.Error as error:
        raise ValueError(f"{path}:{reader.line_num}: {error}") from None
    if not classes:
        raise ValueError(f"{path}: lists no images")
    counts = {wnid: len(files) for wnid, files in classes.items()}
    usual, classes_with_usual = Counter(counts.values()).most_common(1)[0]
    differ = {wnid: n for wnid, n in sorted(counts.items()) if n != usual}
    if differ:
        raise ValueError(
            f"{path}: every class needs the same number of images, but while {classes_with_usual} classes have "
            f"{usual}, these have other counts: {differ}"
        )
    return {wnid: sorted(classes[wnid]) for wnid in sorted(classes)}


def _image_fingerprint(root: Path, split: Path, classes: dict[str, list[str]]) -> str:
    """A hash of every listed image's name, size and modification time; FileNotFoundError naming the
    missing ones (how many, and the first few) if any is absent."""
    folder = root / "images"
    total = sum(len(files) for files in classes.values())
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Mini-ImageNet images folder not found: {folder} does not exist ({split.name} lists {total} "
            f"images expected there). {_GET_DATA}"
        )
    entries, missing = [], []
    for files in classes.values():
        for filename in files:
            try:
                stat = os.stat(folder / filename)
            except FileNotFoundError:
                missing.append(filename)
                continue
            entries.append(f"{filename}\0{stat.st_size}\0{stat.st_mtime_ns}")
    if missing:
        more = len(missing) - _SHOWN_MISSING
        shown = ", ".join(missing[:_SHOWN_MISSING]) + (f" and {more} more" if more > 0 else "")
        raise FileNotFoundError(
            f"{len(missing)} of the {total} images listed in {split} are missing from {folder}: {shown}. {_GET_DATA}"
        )
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def _decode(path: Path, image_size: int) -> np.ndarray:
    """One image as ``uint8 [S, S, 3]``; ValueError naming the file if it is corrupt or truncated.

    Any colour mode (greyscale and CMYK JPEGs occur in ImageNet) is converted to RGB. The image is
    stretched to a square, aspect ratio not kept, with LANCZOS resampling: that is how the Mini-ImageNet
    images most published results use were made (84x84 with PIL's LANCZOS, e.g. the preprocessing
    script of Finn et al.'s MAML), and LANCZOS is also PIL's sharpest downsampling filter.
    """
    try:
        with Image.open(path) as image:
            image.load()
            rgb = image.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot decode Mini-ImageNet image {path}: {error}") from None
    if rgb.size != (image_size, image_size):
        rgb = rgb.resize((image_size, image_size), Image.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8)


def decode_image(path: str | Path, image_size: int = 84) -> np.ndarray:
    """An image file (any size, any colour mode) decoded the way Mini-ImageNet's images are, ``uint8 [S, S, 3]``:
    RGB, stretched to ``image_size`` square with LANCZOS; what ``metarl predict`` feeds a Mini-ImageNet model.
    Raises ValueError naming the file if it cannot be read or decoded."""
    return _decode(Path(path), image_size)


def _decode_all(folder: Path, classes: dict[str, list[str]], image_size: int) -> np.ndarray:
    """Every image of ``classes``, ``uint8 [classes, per_class, S, S, 3]``, decoded on a few threads
    (PIL releases the GIL while it decodes and resizes)."""
    paths = [folder / filename for files in classes.values() for filename in files]
    images = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for i, image in enumerate(pool.map(lambda path: _decode(path, image_size), paths)):
            images[i] = image
    return images.reshape(len(classes), -1, image_size, image_size, 3)


# ----------------------------------------------------------------------------------------------
# Cache


def _read_cache(path: Path, wnids: list[str], shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached images, or None (with a warning) if the file is unreadable or does not match the split."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            images, cached_wnids = archive["images"], archive["classes"].tolist()
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        warnings.warn(f"ignoring unreadable Mini-ImageNet cache {path}: {error}", stacklevel=3)
        return None
    if images.shape != shape or images.dtype != np.uint8 or cached_wnids != wnids:
        warnings.warn(
            f"ignoring Mini-ImageNet cache {path}: images {images.shape} {images.dtype} and {len(cached_wnids)} "
            f"classes do not match the expected {shape} uint8 and {len(wnids)} classes",
            stacklevel=3,
        )
        return None
    return images


def load_miniimagenet(
    part: str = "train",
    root: str | Path | None = None,
    *,
    image_size: int = 84,
    cache_dir: str | Path | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The images of one part of the split, ``uint8 [classes, per_class, S, S, 3]``, and the classes' wnids.

    ``root`` defaults to :func:`default_root`. Rows of the images follow the sorted wnids; the images
    come from the cache when it matches the data, else they are decoded and cached. A missing split
    file or image raises FileNotFoundError naming it; a malformed CSV row, classes of unequal sizes or
    a corrupt image raise ValueError naming the file.
    """
    _check_part(part)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer (pixels per side), got {image_size!r}")
    root = _resolve_root(root)
    split = _split_file(root, part)
    classes = _read_split(split)
    key = {
        "format": _CACHE_FORMAT,
        "part": part,
        "image_size": image_size,
        "classes": classes,
        "images": _image_fingerprint(root, split, classes),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_folder(cache_dir, root) / f"miniimagenet_{part}_{image_size}px_{digest}.npz"
    wnids = list(classes)
    shape = (len(wnids), len(classes[wnids[0]]), image_size, image_size, 3)
    if path.is_file() and (cached := _read_cache(path, wnids, shape)) is not None:
        return cached, wnids
    images = _decode_all(root / "images", classes, image_size)
    try:
        save_npz_atomic(path, images=images, classes=np.array(wnids))
    except OSError as error:
        warnings.warn(f"could not write the Mini-ImageNet cache {path}: {error}", stacklevel=2)
    return images, wnids


def make_miniimagenet(
    part: str = "train",
    *,
    ways: int = 5,
    shots: int = 1,
    queries: int = 15,
    root: str | Path | None = None,
    image_size: int = 84,
    cache_dir: str | Path | None = None,
) -> FewShotClassification:
    """N-way K-shot Mini-ImageNet tasks (family ``"miniimagenet"``) over the classes of one part of the
    Ravi & Larochelle split: 64 classes for ``"train"``, 16 for ``"val"``, 20 for ``"test"``."""
    images, _ = load_miniimagenet(part, root, image_size=image_size, cache_dir=cache_dir)
    return FewShotClassification(images, family=FAMILY, ways=ways, shots=shots, queries=queries)
