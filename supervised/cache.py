"""Where the image loaders find their data and cache decoded data sets, and how a cache file is written.

A data set's folder defaults to ``$METARL_DATA/<folder>`` (:func:`data_root`).

Decoding thousands of images takes seconds to minutes, so the loaders (Omniglot, Mini-ImageNet) keep
the decoded ``uint8`` arrays as an ``.npz`` in a cache folder: ``cache_dir`` when given, else
``$METARL_CACHE``, else ``~/.cache/metarl``. The data folder is read-only input and is never written to.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["cache_folder", "data_root", "save_npz_atomic"]


def data_root(folder: str, title: str, contents: str) -> Path:
    """``$METARL_DATA/<folder>``; FileNotFoundError naming ``title`` and what the folder holds (``contents``)
    when ``METARL_DATA`` is not set."""
    data = os.environ.get("METARL_DATA")
    if not data:
        raise FileNotFoundError(
            f"no {title} root given and METARL_DATA is not set: set METARL_DATA to the folder that "
            f"contains {folder}/ (with {contents}), or pass root="
        )
    return Path(data).expanduser() / folder


def cache_folder(cache_dir: str | Path | None, root: Path) -> Path:
    """The cache folder for data read from ``root``; ValueError if it is ``root`` or inside it."""
    if cache_dir is not None:
        path = Path(cache_dir).expanduser()
    elif os.environ.get("METARL_CACHE"):
        path = Path(os.environ["METARL_CACHE"]).expanduser()
    else:
        path = Path.home() / ".cache" / "metarl"
    resolved, data = path.resolve(), root.resolve()
    if resolved == data or data in resolved.parents:
        raise ValueError(
            f"cache folder {path} is inside the data folder {root}, which is read-only input; "
            "pass another cache_dir or set METARL_CACHE elsewhere"
        )
    return path


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Save ``arrays`` as an uncompressed ``.npz`` at ``path``, atomically.

    The file is written to a temporary name in the same folder, synced, then moved over ``path`` with
    ``os.replace``, so a reader (another process loading the same data) sees either no file or a
    complete one. On OSError the temporary file is removed and the error is raised.
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        with os.fdopen(fd, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache may be shared
        os.replace(tmp, path)
    except OSError:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise
