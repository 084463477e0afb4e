"""scripts/bench_sampler.py runs end to end on a tiny setting and writes sane JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(180)
def test_bench_sampler_end_to_end(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    command = [
        sys.executable, str(ROOT / "scripts" / "bench_sampler.py"),
        "--env-ids", "envs:metarl/AntVel-v0", "--tasks", "2", "--episodes-per-task", "2", "--horizon", "5",
        "--max-workers", "2", "--repeats", "1", "--warmup", "0", "--mj-steps", "200", "--hidden", "8",
        "--out", str(out),
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=170, check=False)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "env steps/s" in done.stdout and "mj_step" in done.stdout

    report = json.loads(out.read_text())
    assert report["versions"]["mujoco"] and report["cpu_count"] >= 1 and report["torch_threads"] == 1
    assert report["settings"]["tasks"] == 2 and report["settings"]["hidden"] == [8]
    (result,) = report["results"]
    assert result["env_id"] == "envs:metarl/AntVel-v0" and result["lanes"] == 4
    assert result["frame_skip"] == 2 and result["dt"] == pytest.approx(0.02)
    assert result["mj_step_per_s"] > 0
    assert result["env_steps_per_s_bound_one_core"] == pytest.approx(result["mj_step_per_s"] / 2)
    assert [(run["vectorization"], run["workers"]) for run in result["runs"]] == [
        ("sync", None), ("native", 2), ("sharded", 1), ("sharded", 2)
    ]
    ceiling = result["ceiling"]
    assert ceiling["threads"] == 2 and ceiling["policy_device"] == "cpu"
    assert ceiling["closed_loop_env_steps_per_s"] > 0 and ceiling["open_loop_env_steps_per_s"] > 0
    for run in result["runs"]:
        assert run["fraction_of_ceiling"] == pytest.approx(run["env_steps_per_s"] / ceiling["closed_loop_env_steps_per_s"])
        assert run["env_steps_per_s"] > 0 and run["lane_steps_per_s"] >= run["env_steps_per_s"]
        assert len(run["seconds"]) == 1 and 0 < run["env_steps"][0] <= 4 * 5
        assert run["fraction_of_ceiling_by_round"] == pytest.approx(
            [run["env_steps"][0] / run["seconds"][0] / ceiling["closed_loop_rounds"][0]])
        assert run["fraction_of_one_core_bound"] == pytest.approx(
            run["env_steps_per_s"] / result["env_steps_per_s_bound_one_core"]
        )
