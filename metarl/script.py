"""The entry point of every training script: parse the flags with tyro, run, and report a user's mistake in
one line instead of a traceback.

A mistake is what the user can fix from the command line or the file system: a bad value (``ValueError``),
a missing, existing or unwritable file (``OSError``), an unusable checkpoint (``CheckpointError``) or a run
whose loss diverged (``TrainingDiverged``). Each ends the script with ``<script>: error: <message>`` on
stderr and exit code 2, as argparse does; Ctrl-C ends it with exit code 130 (after the trainer has saved a
checkpoint, see :class:`metarl.interrupt.StopRequest`). Any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import tyro

from metarl.cli import USER_ERRORS as CLI_ERRORS
from metarl.train import TrainingDiverged

USER_ERRORS = (*CLI_ERRORS, TrainingDiverged)
"""The ``metarl`` command's user errors, and a run whose loss diverged: reported in one line."""

INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells report it."""

T = TypeVar("T")


@contextlib.contextmanager
def _one_line_value_errors() -> Iterator[None]:
    """Let a ``ValueError`` from a dataclass's ``__post_init__`` (``--iterations 0``) reach our handler.

    tyro reports those in a box of its own; its parse-error hook, where this tyro has it, hands us the
    message instead. Its other parse errors (unknown flag, bad choice) keep tyro's report, which names the
    flag and lists the choices.
    """
    try:
        from tyro._errors import InstantiationFailure, on_parse_error
    except ImportError:  # a tyro without the hook: its own box, still exit code 2
        yield
        return

    def raise_value_error(event: Any) -> None:
        if isinstance(event, InstantiationFailure):
            raise ValueError(event.message)

    with on_parse_error(raise_value_error):
        yield


def run_script(main: Callable[[T], Any], args_type: type[T], *, default: T | None = None,
               description: str | None = None) -> NoReturn:
    """Parse the command line into ``args_type`` (nested dataclasses' flags without prefixes), call
    ``main`` with it and exit: 0 when it returns, 2 with a one-line message on a user's mistake, 130 on
    Ctrl-C."""
    prog = Path(sys.argv[0]).name
    try:
        with _one_line_value_errors():
            args = tyro.cli(tyro.conf.OmitArgPrefixes[args_type], default=default, description=description)
        main(args)
    except USER_ERRORS as error:
        print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as interrupt:
        print(f"{prog}: {_one_line(interrupt) or 'interrupted'}", file=sys.stderr)
        sys.exit(INTERRUPTED)
    sys.exit(0)


def _one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (some library messages span several)."""
    return " ".join(str(error).split())
