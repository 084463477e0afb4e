"""Ctrl-C that waits for the end of the current training step, so that the loop can save a checkpoint."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C after saving a checkpoint; the message says where and how to continue."""


class StopRequest:
    """Between :meth:`install` and :meth:`restore`, a first Ctrl-C (SIGINT) only sets ``requested`` (and
    prints ``notice``), for the caller to honour at a safe point; a second one raises ``KeyboardInterrupt``
    at once.

    The handler is installed only in the main thread and only over Python's default one, so a program that
    handles SIGINT itself (or ignores it, as a background job does) keeps its behaviour.
    """

    def __init__(self, notice: str) -> None:
        self.notice = notice
        self.requested = False
        self._previous: object = None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\n{self.notice}", file=sys.stderr, flush=True)

    def restore(self) -> None:
        """Put back the handler that :meth:`install` replaced."""
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
