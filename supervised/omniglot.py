"""Omniglot (Lake et al., 2015) as few-shot classification tasks, read from the official layout.

The data root (by default ``$METARL_DATA/omniglot``) holds ``images_background`` (30 alphabets, 964
characters) and ``images_evaluation`` (20 alphabets, 659 characters), each either as the official
zip (``images_background.zip``, read in place and never extracted) or as the extracted folder; the
zip wins when both are present. Inside: ``<set>/<Alphabet>/characterNN/<id>_<drawer>.png``, 20
drawings of 105x105 black-and-white pixels per character.

Decoding all 32,460 PNGs takes seconds, so the decoded ``uint8`` array is cached as an ``.npz`` in a
cache folder (``cache_dir``, else ``$METARL_CACHE``, else ``~/.cache/metarl``), never inside the
data folder. The cache file name is keyed by the image size and by the size and modification time
of the zips (or of every file of an extracted folder), so a changed data set is decoded again.

Classes are characters rotated by 0, 90, 180 and 270 degrees (Santoro et al., 2016; Vinyals et al.,
2016): each character gives four classes. Two class splits are provided:

- ``"maml"``: the split of Finn et al. (2017): 1200 characters, drawn from all 1623 by a permutation
  with a fixed seed, for training (4800 classes); the other 423 (1692 classes) for testing. This
  split has no separate validation set: ``"val"`` and ``"test"`` are the same 423 characters.
  (Finn et al. shuffled with Python's ``random``; the characters drawn here differ but the sizes
  and the protocol are the same.)
- ``"vinyals"``: the split of Vinyals et al. (2016), read from ``splits/vinyals/{train,val,test}.txt``
  under the data root (1028 / 172 / 423 characters, 4112 / 688 / 1692 classes).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from supervised.cache import cache_folder, data_root, save_npz_atomic
from supervised.episodes import FewShotClassification
from supervised.sequences import Augmentation, ClassSequences

__all__ = [
    "CLASS_SPLITS",
    "PARTS",
    "OmniglotData",
    "decode_image",
    "default_root",
    "load_omniglot",
    "make_omniglot",
    "make_omniglot_sequences",
    "split_class_names",
    "split_classes",
]

FAMILY = "omniglot"
SEQUENCE_FAMILY = "omniglot-sequences"
SETS = ("images_background", "images_evaluation")
CHARACTERS = {"images_background": 964, "images_evaluation": 659}
DRAWINGS = 20
CLASS_SPLITS = ("maml", "vinyals")
PARTS = ("train", "val", "test")
MAML_TRAIN_CHARACTERS = 1200
MAML_SEED = 1
_CACHE_FORMAT = 1  # bump when decoding changes, so old cache files are not reused
_GET_DATA = (
    "Get images_background.zip and images_evaluation.zip from "
    "https://github.com/brendenlake/omniglot/tree/master/python and put them (or their extracted "
    "folders) in that folder, or set METARL_DATA to the folder that contains omniglot/."
)


@dataclass
class OmniglotData:
    """All 1623 Omniglot characters, decoded.

    ``images`` is ``uint8 [characters, 20, S, S]`` with ink 255 and background 0; ``characters``
    names each row ``"Alphabet/characterNN"`` (background set first, each set sorted by name);
    ``background`` is True for the characters of ``images_background``.
    """

    images: np.ndarray
    characters: list[str]
    background: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.characters)
        if self.images.ndim != 4 or self.images.shape[0] != n or self.background.shape != (n,):
            raise ValueError(
                f"OmniglotData: images {self.images.shape}, {n} characters and background "
                f"{self.background.shape} disagree; expected [characters, drawings, S, S], n, (n,)"
            )

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])


# ----------------------------------------------------------------------------------------------
# Locating and reading the data


def default_root() -> Path:
    """``$METARL_DATA/omniglot``; raises FileNotFoundError when ``METARL_DATA`` is not set."""
    return data_root("omniglot", "Omniglot", "images_background.zip and images_evaluation.zip")


def _resolve_root(root: str | Path | None) -> Path:
    path = default_root() if root is None else Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"Omniglot data folder not found: {path} does not exist. {_GET_DATA}")
    return path


def _locate_set(root: Path, name: str) -> Path:
    """The zip of set ``name`` if present, else its extracted folder."""
    zip_path, folder = root / f"{name}.zip", root / name
    if zip_path.is_file():
        return zip_path
    if folder.is_dir():
        return folder
    raise FileNotFoundError(f"Omniglot set {name!r} not found: expected {zip_path} or the folder {folder}. {_GET_DATA}")


def _safe_parts(name: str, container: Path) -> tuple[str, ...]:
    """The path components of zip member ``name``; ValueError if it is absolute or has ``..``."""
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix) or ".." in parts:
        raise ValueError(
            f"{container}: member {name!r} escapes its folder (absolute path or '..'); refusing to read it"
        )
    return parts


def _is_image(file_name: str) -> bool:
    return file_name.lower().endswith(".png") and not file_name.startswith(".")


def _members(source: Path, name: str) -> Iterator[tuple[str, str, bytes]]:
    """``(character, label, png bytes)`` for every drawing of set ``name`` in ``source``.

    ``character`` is ``"Alphabet/characterNN"`` and ``label`` names the file in error messages.
    Other files (directories, non-PNG, hidden, outside the set's folder) are ignored.
    """
    if source.suffix == ".zip":
        with zipfile.ZipFile(source) as archive:
            for info in archive.infolist():
                parts = _safe_parts(info.filename, source)
                if info.is_dir() or not parts or parts[0] != name or not _is_image(parts[-1]):
                    continue
                label = f"{source}:{info.filename}"
                if len(parts) != 4:
                    raise ValueError(f"{label}: expected {name}/<Alphabet>/<characterNN>/<drawing>.png")
                yield f"{parts[1]}/{parts[2]}", label, archive.read(info)
    else:
        for alphabet in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for character in sorted(p for p in alphabet.iterdir() if p.is_dir() and not p.name.startswith(".")):
                for drawing in sorted(character.iterdir()):
                    if drawing.is_file() and _is_image(drawing.name):
                        yield f"{alphabet.name}/{character.name}", str(drawing), drawing.read_bytes()


def _on_white(image: Image.Image) -> Image.Image:
    """``image`` with any transparency flattened onto white paper (a drawing saved with a transparent
    background would otherwise turn black, i.e. all ink); images without transparency, like every
    Omniglot PNG, are returned unchanged."""
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        return image
    return Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))


def _decode(data: bytes, image_size: int, label: str) -> np.ndarray:
    """One drawing as ``uint8 [S, S]``: ink 255, background 0, LANCZOS-resized; ValueError if corrupt."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            grey = ImageOps.invert(_on_white(image).convert("L"))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot decode Omniglot image {label}: {error}") from None
    if grey.size != (image_size, image_size):
        grey = grey.resize((image_size, image_size), Image.LANCZOS)
    return np.asarray(grey, dtype=np.uint8)


def decode_image(path: str | Path, image_size: int = 28) -> np.ndarray:
    """An image file (any size, colour or greyscale) decoded the way Omniglot's drawings are, ``uint8 [S, S]``.

    Greyscale, inverted (ink 255 on background 0: draw dark on light, as Omniglot does), transparency on
    white, LANCZOS-resized to ``image_size`` square; what ``metarl predict`` feeds an Omniglot model.
    Raises ValueError naming the file if it cannot be read or decoded.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read image {path}: {error}") from None
    return _decode(data, image_size, str(path))


def _read_set(source: Path, name: str, image_size: int) -> tuple[list[str], np.ndarray]:
    """The sorted character names of one set and their drawings, ``uint8 [characters, 20, S, S]``."""
    drawings: dict[str, list[tuple[str, bytes]]] = {}
    for character, label, data in _members(source, name):
        drawings.setdefault(character, []).append((label, data))
    if len(drawings) != CHARACTERS[name]:
        raise ValueError(
            f"{source}: found {len(drawings)} characters, expected {CHARACTERS[name]}; the set is "
            f"incomplete or modified. {_GET_DATA}"
        )
    wrong = {c: len(d) for c, d in drawings.items() if len(d) != DRAWINGS}
    if wrong:
        raise ValueError(
            f"{source}: every character needs {DRAWINGS} drawings; these differ: {dict(sorted(wrong.items()))}"
        )
    characters = sorted(drawings)
    images = np.empty((len(characters), DRAWINGS, image_size, image_size), dtype=np.uint8)
    for i, character in enumerate(characters):
        for j, (label, data) in enumerate(sorted(drawings[character])):
            images[i, j] = _decode(data, image_size, label)
    return characters, images


def _decode_all(root: Path, image_size: int) -> OmniglotData:
    characters: list[str] = []
    parts, background = [], []
    for name in SETS:
        names, images = _read_set(_locate_set(root, name), name, image_size)
        characters += names
        parts.append(images)
        background.append(np.full(len(names), name == "images_background"))
    if len(set(characters)) != len(characters):
        raise ValueError(
            f"{root}: the same Alphabet/characterNN appears in both sets; the data is not Omniglot's layout"
        )
    return OmniglotData(np.concatenate(parts), characters, np.concatenate(background))


# ----------------------------------------------------------------------------------------------
# Cache


def _fingerprint(source: Path) -> list[int | str]:
    """Size and mtime of a zip; for a folder, its file count and a hash of every file's path, size and mtime."""
    if source.is_file():
        stat = source.stat()
        return [stat.st_size, stat.st_mtime_ns]
    entries = []
    for directory, _, files in os.walk(source):
        for file_name in files:
            path = os.path.join(directory, file_name)
            stat = os.stat(path)
            entries.append(f"{os.path.relpath(path, source)}\0{stat.st_size}\0{stat.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()
    return [len(entries), digest]


def _cache_path(root: Path, image_size: int, cache_dir: str | Path | None) -> Path:
    """Where the decoded array for ``root`` at ``image_size`` is cached."""
    sources = {name: _locate_set(root, name) for name in SETS}
    key = {
        "format": _CACHE_FORMAT,
        "image_size": image_size,
        "sets": {name: [source.name, *_fingerprint(source)] for name, source in sources.items()},
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_folder(cache_dir, root) / f"omniglot_{image_size}px_{digest}.npz"


def _read_cache(path: Path, image_size: int) -> OmniglotData | None:
    """The cached data, or None (with a warning) if the file is unreadable or of the wrong shape."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = OmniglotData(archive["images"], archive["characters"].tolist(), archive["background"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        warnings.warn(f"ignoring unreadable Omniglot cache {path}: {error}", stacklevel=3)
        return None
    expected = (sum(CHARACTERS.values()), DRAWINGS, image_size, image_size)
    if data.images.shape != expected or data.images.dtype != np.uint8:
        warnings.warn(f"ignoring Omniglot cache {path}: images {data.images.shape}, expected {expected}", stacklevel=3)
        return None
    return data


def _write_cache(path: Path, data: OmniglotData) -> None:
    """Write atomically (:func:`~supervised.cache.save_npz_atomic`); warn instead of failing on OSError."""
    try:
        save_npz_atomic(path, images=data.images, characters=np.array(data.characters), background=data.background)
    except OSError as error:
        warnings.warn(f"could not write the Omniglot cache {path}: {error}", stacklevel=3)


def load_omniglot(
    root: str | Path | None = None, *, image_size: int = 28, cache_dir: str | Path | None = None
) -> OmniglotData:
    """All 1623 characters x 20 drawings, ``image_size`` pixels square, from the cache or decoded.

    ``root`` defaults to :func:`default_root`. Missing data raises FileNotFoundError naming the
    expected path; a corrupt image or an incomplete set raises ValueError naming the file.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer (pixels per side), got {image_size!r}")
    root = _resolve_root(root)
    path = _cache_path(root, image_size, cache_dir)
    if path.is_file() and (cached := _read_cache(path, image_size)) is not None:
        return cached
    data = _decode_all(root, image_size)
    _write_cache(path, data)
    return data


# ----------------------------------------------------------------------------------------------
# Class splits


def _check_split(class_split: str, part: str) -> None:
    if class_split not in CLASS_SPLITS:
        raise ValueError(f"unknown Omniglot class_split {class_split!r}; valid values: {', '.join(CLASS_SPLITS)}")
    if part not in PARTS:
        raise ValueError(f"unknown Omniglot part {part!r}; valid values: {', '.join(PARTS)}")


def _maml_entries(data: OmniglotData, part: str) -> list[tuple[int, int]]:
    total = sum(CHARACTERS.values())
    if len(data.characters) != total:
        raise ValueError(f"the 'maml' split needs all {total} Omniglot characters, got {len(data.characters)}")
    order = np.random.default_rng(MAML_SEED).permutation(total)
    chosen = order[:MAML_TRAIN_CHARACTERS] if part == "train" else order[MAML_TRAIN_CHARACTERS:]
    return [(int(c), k) for c in np.sort(chosen) for k in range(4)]


def _vinyals_entries(data: OmniglotData, part: str, root: str | Path | None) -> list[tuple[int, int]]:
    folder = (default_root() if root is None else Path(root).expanduser()) / "splits" / "vinyals"
    path = folder / f"{part}.txt"
    if not path.is_file():
        needed = ", ".join(str(folder / f"{p}.txt") for p in PARTS)
        raise FileNotFoundError(
            f"Vinyals split file not found: {path} (the split needs {needed}). "
            "They are data/omniglot/splits/vinyals/*.txt of https://github.com/jakesnell/prototypical-networks"
        )
    index = {name: i for i, name in enumerate(data.characters)}
    entries: list[tuple[int, int]] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        character, _, rotation = line.rpartition("/")
        angle = rotation[3:] if rotation.startswith("rot") else ""
        if character not in index or angle not in ("000", "090", "180", "270"):
            raise ValueError(
                f"{path}:{number}: {line!r} is not 'Alphabet/characterNN/rot{{000,090,180,270}}' of a known character"
            )
        entries.append((index[character], int(angle) // 90))
    if len(set(entries)) != len(entries):
        raise ValueError(f"{path}: a class is listed twice")
    return entries


def _entries(data: OmniglotData, class_split: str, part: str, root: str | Path | None) -> list[tuple[int, int]]:
    """``(character index, quarter turns)`` of every class of the split's part, in class order."""
    _check_split(class_split, part)
    return _maml_entries(data, part) if class_split == "maml" else _vinyals_entries(data, part, root)


def split_classes(data: OmniglotData, class_split: str, part: str, root: str | Path | None = None) -> np.ndarray:
    """The classes of one part of a split, ``uint8 [classes, 20, S, S]``, rotations included.

    Class ``i`` is character ``c`` turned ``k`` quarter turns counter-clockwise (``np.rot90``) for
    the ``i``-th ``(c, k)`` of the split; :func:`split_class_names` names them. ``root`` (default
    :func:`default_root`) is only read for the ``"vinyals"`` split files.
    """
    entries = np.array(_entries(data, class_split, part, root), dtype=np.int64).reshape(-1, 2)
    out = np.empty((len(entries), *data.images.shape[1:]), dtype=np.uint8)
    for k in range(4):
        rows = entries[:, 1] == k
        out[rows] = np.rot90(data.images[entries[rows, 0]], k, axes=(-2, -1))
    return out


def split_class_names(data: OmniglotData, class_split: str, part: str, root: str | Path | None = None) -> list[str]:
    """``"Alphabet/characterNN/rotNNN"`` for each class of :func:`split_classes`, in the same order."""
    return [f"{data.characters[c]}/rot{90 * k:03d}" for c, k in _entries(data, class_split, part, root)]


def make_omniglot(
    part: str = "train",
    *,
    ways: int = 5,
    shots: int = 1,
    queries: int = 15,
    class_split: str = "maml",
    root: str | Path | None = None,
    image_size: int = 28,
    cache_dir: str | Path | None = None,
) -> FewShotClassification:
    """N-way K-shot Omniglot tasks (family ``"omniglot"``) over one part of a class split."""
    _check_split(class_split, part)
    data = load_omniglot(root, image_size=image_size, cache_dir=cache_dir)
    images = split_classes(data, class_split, part, root)
    return FewShotClassification(images, family=FAMILY, ways=ways, shots=shots, queries=queries)


def make_omniglot_sequences(
    part: str = "train",
    *,
    ways: int = 5,
    samples: int = 10,
    labels: str = "one_hot",
    class_split: str = "maml",
    root: str | Path | None = None,
    image_size: int = 20,
    cache_dir: str | Path | None = None,
    class_rotation: float = Augmentation.class_rotation,
    class_shift: float = Augmentation.class_shift,
    sample_rotation: float = Augmentation.sample_rotation,
    sample_shift: float = Augmentation.sample_shift,
) -> ClassSequences:
    """Omniglot online-classification episodes (family ``"omniglot-sequences"``, MANN's task, Santoro et al.
    2016) over one part of a class split, 20x20 images by default as in the paper."""
    _check_split(class_split, part)
    augmentation = Augmentation(class_rotation, class_shift, sample_rotation, sample_shift)
    data = load_omniglot(root, image_size=image_size, cache_dir=cache_dir)
    return ClassSequences(split_classes(data, class_split, part, root), family=SEQUENCE_FAMILY, ways=ways,
                          samples=samples, labels=labels, augmentation=augmentation)
