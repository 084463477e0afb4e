"""Running the training scripts and the metarl command, in a subprocess or in this process, and reading
their metrics.

A fresh interpreter costs 4-8 s on the 2-core machine (torch, gymnasium, tensorboard and matplotlib
imports), most of a tiny run. So a test starts one (``run``) where that is what it checks: the first run of
the sinusoid, Omniglot, MANN and Navigation2D scripts, Ctrl-C and SIGKILL, worker processes, torchrun, the
network guard; the other calls run in this process (``script``, ``metarl``): the same entry point, exit code
and output, without the start-up. tests/test_packaging.py imports every script in one fresh interpreter.
"""

import io
import json
import os
import runpy
import subprocess
import sys
import traceback
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import torch

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

    return _in_process(["metarl", *args], lambda: cli.main(list(args)), env, check)


def script(path: str, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``python path *args`` run in this process, as ``__main__`` with its own ``sys.argv``: the exit code and
    output that ``run`` would give."""

    def main() -> None:
        with mock.patch.object(sys, "argv", [path, *args]):
            runpy.run_path(str(ROOT / path), run_name="__main__")

    return _in_process(["python", path, *args], main, env, check)


def _in_process(command: list[str], main: Callable[[], int | None], env: dict | None,
                check: bool) -> subprocess.CompletedProcess:
    """``main()`` with ``env`` added to the environment, as the process ``command`` would end: the exit code it
    returns or exits with (``sys.exit(None)`` 0, ``sys.exit(message)`` 1 with the message), 1 and the traceback
    for an uncaught exception; stdout and stderr captured. The torch thread count, which the RL runs set, is
    restored. Raises with the output when the code is not 0 and ``check``."""
    stdout, stderr = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    with mock.patch.dict(os.environ, env or {}), redirect_stdout(stdout), redirect_stderr(stderr):
        try:
            code = main() or 0
        except SystemExit as exit_:  # run_script and argparse end with sys.exit
            if exit_.code is None:
                code = 0
            elif isinstance(exit_.code, int):
                code = exit_.code
            else:  # a message: Python prints it and exits with 1
                print(exit_.code, file=sys.stderr)
                code = 1
        except Exception:  # noqa: BLE001 - a bug: exit code 1 and the traceback, as Python gives them
            traceback.print_exc()
            code = 1
        finally:
            torch.set_num_threads(threads)
    result = subprocess.CompletedProcess(command, code, stdout.getvalue(), stderr.getvalue())
    if check and code != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def records(out: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock fields, which legitimately differ between runs."""
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "time" and not k.startswith("perf/")} for r in lines]
