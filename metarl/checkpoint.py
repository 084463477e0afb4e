"""Full-state checkpoints (and the run's other files), written atomically and read without unpickling
arbitrary objects."""

from __future__ import annotations

import glob
import json
import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, BinaryIO

import torch

FORMAT = "metarl-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, truncated, unsafe, or of another method."""


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` with ``write(handle)`` so that a crash at any moment (SIGKILL, power loss, a full
    disk) leaves either the previous file or the complete new one.

    The bytes go to a temporary file in the same folder, are flushed to disk, then renamed over ``path``
    (an atomic replace on POSIX and Windows). On an error the temporary file is removed and an
    ``OSError`` says which file could not be written; leftovers of a writer killed mid-write are removed
    by the next successful write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it a plain file's permissions
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno is not None:
            raise type(error)(error.errno, f"could not write {path} ({error.strerror}); its previous version, "
                                           "if any, is intact") from error
        raise
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)


def _umask() -> int:
    """The process's file-creation mask (read by setting it, so set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` with :func:`write_atomic`."""
    write_atomic(path, lambda handle: handle.write(text.encode()))


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` with :func:`write_atomic`, so the previous checkpoint survives any crash."""
    write_atomic(path, lambda handle: torch.save({"format": FORMAT, **state}, handle))


def load_checkpoint(path: str | Path, method: str | Collection[str] | None = None) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; refuse anything else, and a checkpoint of a
    method other than ``method`` (one name, or any of several)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        culprit = "".join(f" (it refers to {name})" for name in re.findall(r"GLOBAL ([\w.]+)", str(error))[:1])
        raise CheckpointError(f"{path} holds objects other than tensors and plain values{culprit}; refusing to "
                              "load it: metarl never writes such a checkpoint, so it is not one of ours or was "
                              "altered") from None
    except PermissionError:
        raise
    except (EOFError, OSError, RuntimeError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path} is truncated or corrupt ({str(error).split('. ')[0]}); restore a copy or "
                              "start a new run (metarl writes checkpoints atomically: an interrupted run does not "
                              "leave one like this)") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a metarl checkpoint (expected format {FORMAT})")
    expected = {method} if isinstance(method, str) else method
    if expected is not None and state.get("method") not in expected:
        wanted = " or ".join(repr(m) for m in sorted(expected))
        raise CheckpointError(f"{path} is a {state.get('method')!r} checkpoint, not {wanted}")
    return state


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint a user names by its run folder or by the file itself: ``RUN/checkpoint.pt`` or ``path``."""
    path = Path(path)
    return path / "checkpoint.pt" if path.is_dir() else path


def load_run(path: str | Path, method: str | Collection[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoint of a run (its folder or its ``checkpoint.pt``) and the run's configuration."""
    state = load_checkpoint(checkpoint_file(path), method=method)
    return state, json.loads(state["config"])
