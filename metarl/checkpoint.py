"""Full-state checkpoints, written atomically and read without unpickling arbitrary objects."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch

FORMAT = "metarl-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, truncated, unsafe, or of another method."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` so that a crash at any moment leaves the previous file intact.

    The state goes to a temporary file in the same folder, is flushed to disk, then renamed over
    ``path`` (an atomic replace on POSIX and Windows).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save({"format": FORMAT, **state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, method: str | Collection[str] | None = None) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; refuse anything else, and a checkpoint of a
    method other than ``method`` (one name, or any of several)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{path} holds objects other than tensors and plain values; refusing to load it ({error})") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path} is truncated or corrupt: {error}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a metarl checkpoint (expected format {FORMAT})")
    expected = {method} if isinstance(method, str) else method
    if expected is not None and state.get("method") not in expected:
        wanted = " or ".join(repr(m) for m in sorted(expected))
        raise CheckpointError(f"{path} is a {state.get('method')!r} checkpoint, not {wanted}")
    return state


def load_run(path: str | Path, method: str | Collection[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoint of a run (its folder or its ``checkpoint.pt``) and the run's configuration."""
    path = Path(path)
    state = load_checkpoint(path / "checkpoint.pt" if path.is_dir() else path, method=method)
    return state, json.loads(state["config"])
