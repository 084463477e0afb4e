"""scripts/train_oracle.py runs end to end on a tiny setting, on metarl's evaluation tasks, reproducibly."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids used below)

ROOT = Path(__file__).resolve().parents[1]


def _run(out: Path, cwd: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    command = [
        sys.executable, str(ROOT / "scripts" / "train_oracle.py"), "--env-id", "envs:metarl/AntVel-v0",
        "--tasks", "2", "--timesteps", "64", "--n-steps", "64", "--batch-size", "64", "--eval-episodes", "2",
        "--seed", "3", "--out", str(out),
    ]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=170, check=False)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "oracle over 2 tasks: mean return" in done.stdout
    return json.loads(out.read_text())


@pytest.mark.timeout(180)
def test_train_oracle_end_to_end(tmp_path):
    report = _run(tmp_path / "oracle.json", tmp_path)
    expected = gym.make("metarl/AntVel-v0").unwrapped.sample_tasks(2, np.random.default_rng([3, 2]))
    assert [row["task"] for row in report["tasks"]] == [task.to_dict() for task in expected]
    assert report["complete"] and report["task_seed"] == [3, 2] and report["settings"]["timesteps"] == 64
    for row in report["tasks"]:
        assert len(row["returns"]) == 2 and row["mean_return"] == pytest.approx(np.mean(row["returns"]))
    means = [row["mean_return"] for row in report["tasks"]]
    assert report["mean_return"] == pytest.approx(np.mean(means))
    assert report["stderr"] == pytest.approx(np.std(means, ddof=1) / np.sqrt(2))
    again = _run(tmp_path / "again.json", tmp_path)
    assert [row["returns"] for row in again["tasks"]] == [row["returns"] for row in report["tasks"]]


def test_ppo_acts_in_the_unit_box_mapped_onto_the_action_bounds(monkeypatch):
    spec = importlib.util.spec_from_file_location("train_oracle", ROOT / "scripts" / "train_oracle.py")
    train_oracle = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "train_oracle", train_oracle)  # its dataclass looks its module up there
    spec.loader.exec_module(train_oracle)
    env = train_oracle.acting_in_unit_box(gym.make("metarl/Navigation2D-v0"))
    assert env.action_space.low.tolist() == [-1, -1] and env.action_space.high.tolist() == [1, 1]
    start, _ = env.reset(seed=0)
    moved, *_ = env.step(np.array([1.0, -0.5], dtype=np.float32))
    np.testing.assert_allclose(moved - start, [0.1, -0.05], atol=1e-6)  # Navigation2D's velocities are in [-0.1, 0.1]
