"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


def pytest_report_header(config: pytest.Config) -> str:
    """The cores and torch threads this run had, for reading a slow or stalled CI log."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"metarl: {os.cpu_count()} CPUs, {usable} usable, torch {torch.__version__} with "
            f"{torch.get_num_threads()} threads (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")


@pytest.fixture(scope="session")
def omniglot_root() -> Path:
    """``$METARL_DATA/omniglot``; skips the test when it is absent, fails instead when ``CI=true``."""
    data = os.environ.get("METARL_DATA")
    root = Path(data) / "omniglot" if data else None
    if root is None or not root.is_dir():
        reason = (
            f"Omniglot data not found: {root} does not exist" if root is not None else "METARL_DATA is not set"
        ) + "; set METARL_DATA to a folder containing omniglot/images_background.zip and images_evaluation.zip"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return root


@pytest.fixture(scope="session")
def omniglot_cache(omniglot_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder where Omniglot is already decoded, shared by the session's tests and subprocesses."""
    from supervised.omniglot import load_omniglot

    cache = tmp_path_factory.mktemp("omniglot-cache")
    load_omniglot(omniglot_root, cache_dir=cache)
    return cache


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: tiny networks run faster so, and much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
