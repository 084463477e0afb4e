"""ShardedVectorEnv: the same results as one SyncVectorEnv, errors raised from the workers, clean shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch

from metarl.functional import parameters_of
from metarl.models import GaussianMLPPolicy
from metarl.rl.parallel import ShardedVectorEnv, WorkerDiedError
from metarl.rl.sampler import TrajectorySampler, stack_params

REPO = Path(__file__).resolve().parents[1]
LANES, WORKERS = 5, 2  # an uneven split: 3 + 2 lanes
SHORT = {"max_episode_steps": 15}  # episodes end within the test, so lanes autoreset


def _equal(a: Any, b: Any) -> bool:
    """Equal values, types and dtypes, through the nested dicts of vector ``info``."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def _processes_stopped(env: ShardedVectorEnv) -> bool:
    return all(not process.is_alive() for process in env._processes)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("env_id", ["envs:metarl/HalfCheetahVel-v0", "envs:metarl/AntVel-v0"])
def test_same_results_as_sync_vector_env(env_id):
    sync = gymnasium.make_vec(env_id, num_envs=LANES, vectorization_mode="sync", **SHORT)
    sharded = ShardedVectorEnv(env_id, LANES, WORKERS, **SHORT)
    try:
        assert sharded.single_observation_space == sync.single_observation_space
        assert sharded.action_space == sync.action_space and sharded.observation_space == sync.observation_space
        assert sharded.metadata["autoreset_mode"] == sync.metadata["autoreset_mode"]
        tasks = sync.envs[0].unwrapped.sample_tasks(LANES, np.random.default_rng(0))
        for env in (sync, sharded):
            env.set_attr("task", tasks)
        assert sharded.get_attr("task") == sync.get_attr("task") == tuple(tasks)
        assert _equal(sharded.reset(seed=11), sync.reset(seed=11))
        rng = np.random.default_rng(1)
        ended = 0
        for step in range(40):
            # float64 and float32 actions: each lane's environment must see the same values and dtype
            actions = rng.uniform(-1.5, 1.5, (LANES, sync.single_action_space.shape[0]))
            actions = actions.astype(np.float32) if step % 2 else actions
            expected = sync.step(actions)
            assert _equal(sharded.step(actions), expected), f"step {step}"
            ended += int(np.sum(expected[2] | expected[3]))
        assert ended >= 2 * LANES  # every lane ended and was reset at least twice on the way
        seeds = [3, None, 5, 6, 7]
        mask = np.array([False, True, False, False, True])
        assert _equal(sharded.reset(seed=seeds, options={"reset_mask": mask}),
                      sync.reset(seed=seeds, options={"reset_mask": mask.copy()}))
        actions = np.zeros((LANES, sync.single_action_space.shape[0]))
        assert _equal(sharded.step(actions), sync.step(actions))
        sharded.set_attr("task", tasks[0])  # one value for every lane, as SyncVectorEnv.set_attr takes
        assert sharded.get_attr("task") == (tasks[0],) * LANES
    finally:
        sharded.close()
    assert sharded.closed and _processes_stopped(sharded)
    assert [process.exitcode for process in sharded._processes] == [0] * WORKERS


@pytest.mark.timeout(120)
def test_sampler_gives_the_same_trajectories_with_sharded_and_sync_envs():
    env_id = "envs:metarl/AntVel-v0"
    probe = gymnasium.make(env_id)
    tasks = probe.unwrapped.sample_tasks(2, np.random.default_rng(0))
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(probe.observation_space.shape[0], probe.action_space.shape[0], hidden=(8,))
    params = stack_params(parameters_of(policy), len(tasks))
    samplers = [
        TrajectorySampler(make, policy, episodes_per_task=2, horizon=25)
        for make in (
            lambda n: gymnasium.make_vec(env_id, num_envs=n, vectorization_mode="sync"),
            lambda n: ShardedVectorEnv(env_id, n, WORKERS),
        )
    ]
    try:
        sync, sharded = (sampler.sample(params, tasks, seed=7) for sampler in samplers)
    finally:
        for sampler in samplers:
            sampler.close()
    for name in ("observations", "actions", "rewards", "mask"):
        torch.testing.assert_close(getattr(sharded, name), getattr(sync, name), rtol=0, atol=0)


@pytest.mark.timeout(120)
def test_errors_in_a_worker_are_raised_and_the_env_stays_usable():
    env = ShardedVectorEnv("envs:metarl/HalfCheetahVel-v0", 3, WORKERS)
    try:
        tasks = env.call("sample_tasks", 3, np.random.default_rng(0))[0]
        with pytest.raises(ValueError, match="one value per lane: 3, got 2"):
            env.set_attr("task", tasks[:2])
        bad = [tasks[0], tasks[1], {"family": "halfcheetah-vel", "params": {"velocity": 9.0}}]
        with pytest.raises(ValueError, match=r"in \[0.0, 2.0\]") as raised:
            env.set_attr("task", bad)  # the third lane's environment, in the second worker, refuses it
        assert "worker 1" in str(raised.value.__cause__)
        with pytest.raises(ValueError, match="actions for 3 lanes"):
            env.reset(seed=0)
            env.step(np.zeros((2, 6)))
        with pytest.raises(ValueError, match="seed"):
            env.reset(seed=[1, 2])
        with pytest.raises(ValueError, match="reset_mask"):
            env.reset(options={"reset_mask": np.zeros(3, dtype=bool)})
        env.set_attr("task", tasks)
        assert env.get_attr("task") == tuple(tasks)
        assert env.step(np.zeros((3, 6)))[0].shape == (3, 17)
    finally:
        env.close()
    with pytest.raises(RuntimeError, match="is closed"):
        env.step(np.zeros((3, 6)))


@pytest.mark.timeout(120)
def test_a_dead_worker_raises_and_closes_the_env():
    env = ShardedVectorEnv("envs:metarl/HalfCheetahDir-v0", 4, WORKERS)
    env.reset(seed=0)
    os.kill(env._processes[1].pid, signal.SIGKILL)
    with pytest.raises(WorkerDiedError, match=r"worker 1 \(pid \d+, lanes 2..3\).*died \(exit code -9\)"):
        env.step(np.zeros((4, 6)))
    assert env.closed and _processes_stopped(env)


@pytest.mark.timeout(120)
def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="workers must be"):
        ShardedVectorEnv("envs:metarl/AntVel-v0", 2, 3)
    with pytest.raises(ValueError, match="num_envs"):
        ShardedVectorEnv("envs:metarl/AntVel-v0", 0, 1)
    with pytest.raises(ValueError, match="start_method"):
        ShardedVectorEnv("envs:metarl/AntVel-v0", 2, 1, start_method="fork")
    with pytest.raises(ValueError, match="vectorization_mode"):
        ShardedVectorEnv("envs:metarl/AntVel-v0", 2, 1, vectorization_mode="async")
    with pytest.raises(gymnasium.error.NameNotFound):  # raised in the worker, then here
        ShardedVectorEnv("envs:metarl/NoSuchTask-v0", 2, 1)


def test_the_module_does_not_import_envs(tmp_path):
    code = "import sys, metarl.rl.parallel; print(sorted(m for m in sys.modules if m.split('.')[0] == 'envs'))"
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
