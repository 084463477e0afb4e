"""scripts/bench_maml.py runs end to end on a tiny setting and writes sane JSON."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(180)
def test_bench_maml_end_to_end(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    command = [
        sys.executable, str(ROOT / "scripts" / "bench_maml.py"),
        "--device", "cpu", "--repeats", "1", "--warmup", "1", "--meta-batch-size", "2",
        "--inner-steps", "1", "--orders", "second", "--out", str(out),
        "--hidden", "16", "--threads", "1",  # small and single-threaded: quick even on a busy machine
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=170,
                          check=False)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "gradients agree" in done.stdout

    report = json.loads(out.read_text())
    assert report["torch"] and report["device"] and report["date"]
    assert report["settings"]["meta_batch_size"] == 2 and report["torch_threads"] == 1
    assert report["gradient_check"]["config"] == "second-order, 1 inner step"
    rows = {row["implementation"]: row for row in report["results"]}
    expected = ["metarl-default", "metarl-other"]
    if importlib.util.find_spec("higher") is not None:
        expected.append("higher")
    for name in expected:
        row = rows[name]
        assert "error" not in row, row
        assert (row["order"], row["inner_steps"]) == ("second", 1)
        assert len(row["times_ms"]) == 1 and all(t > 0 for t in row["times_ms"])
        assert row["median_ms"] > 0
    assert {rows["metarl-default"]["path"], rows["metarl-other"]["path"]} == {"batched", "per_task"}
    assert rows["metarl-default"]["task_threads"] == 1  # one task thread per torch thread (--threads 1)
    assert set(report["ratios"]["second/1"]) >= set(expected) - {"metarl-default"}
    # torchopt is optional: it is either timed, recorded as failing, or skipped as not importable.
    if importlib.util.find_spec("torchopt") is not None:
        assert "torchopt" in rows and ("median_ms" in rows["torchopt"] or rows["torchopt"]["error"])
