"""Running the training scripts in a subprocess, the metarl command in this process, and reading their metrics."""

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict | None = None, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python *args`` from the repository root; raises with the output when it fails and ``check``."""
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed:\n{result.stdout}\n{result.stderr}")
    return result


def metarl(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``metarl *args`` called in this process, as the console script calls it: the same exit code and output
    as ``run("-m", "metarl.cli", ...)`` without an interpreter start-up (3-4 s each on the 2-core machine)."""
    from metarl import cli

    stdout, stderr = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env or {}), redirect_stdout(stdout), redirect_stderr(stderr):
        try:
            code = cli.main(list(args))
        except SystemExit as exit_:  # argparse's own refusals
            code = exit_.code
    result = subprocess.CompletedProcess(["metarl", *args], code, stdout.getvalue(), stderr.getvalue())
    if check and code != 0:
        raise AssertionError(f"metarl {args} failed:\n{result.stdout}\n{result.stderr}")
    return result


def records(out: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock fields, which legitimately differ between runs."""
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "time" and not k.startswith("perf/")} for r in lines]
