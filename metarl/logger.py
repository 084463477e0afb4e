"""Metrics to ``metrics.jsonl`` and TensorBoard, one record per logged step."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from metarl.checkpoint import write_text_atomic


class RunLogger:
    """Writes ``{"step", "time", **metrics}`` lines and the same scalars to TensorBoard.

    Metric names are TensorBoard tags grouped as ``train/``, ``eval/`` and ``perf/``. When a run
    resumes from ``start_step``, records after that step (left by the interrupted run) are dropped
    from both outputs so the resumed history is the uninterrupted one; the rewrite is atomic, so a run
    killed while resuming keeps its history too.
    """

    def __init__(self, out: Path, start_step: int = 0, elapsed: float = 0.0) -> None:
        self.path = out / "metrics.jsonl"
        if start_step > 0 and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if _step(line) <= start_step]
            write_text_atomic(self.path, "".join(line + "\n" for line in kept))
        elif start_step == 0:
            self.path.write_text("")
        self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=start_step + 1 if start_step else None)
        self.started = time.perf_counter() - elapsed

    @property
    def elapsed(self) -> float:
        """Seconds of training so far, interrupted runs included."""
        return time.perf_counter() - self.started

    def log(self, step: int, metrics: dict[str, float]) -> None:
        record = {"step": step, "time": round(self.elapsed, 3)}
        for name, value in metrics.items():
            record[name] = value
            if math.isfinite(value):
                self.writer.add_scalar(name, value, step)
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self.writer.close()


def _step(line: str) -> float:
    """The step of a ``metrics.jsonl`` line; infinite for a line cut short by a run killed mid-write."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf
