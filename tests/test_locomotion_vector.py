"""The vectorised MuJoCo task environments: what SyncVectorEnv over the single one gives, and errors."""

from __future__ import annotations

import os
import signal

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the metarl/* ids)
from envs.locomotion_vector import (
    AntDirVectorEnv,
    AntGoalVectorEnv,
    AntVelVectorEnv,
    AntWorkersVectorEnv,
    HalfCheetahDirVectorEnv,
    HalfCheetahRolloutVectorEnv,
    HalfCheetahVelVectorEnv,
    default_workers,
)
from metarl.functional import parameters_of
from metarl.models import GaussianMLPPolicy
from metarl.rl.parallel import WorkerDiedError
from metarl.rl.sampler import TrajectorySampler, stack_params
from metarl.tasks import Task

LANES = 5
SHORT = 12  # episodes end within the tests, so lanes autoreset


def _assert_info_equal(native: dict, sync: dict, atol: float = 0.0) -> None:
    assert native.keys() == sync.keys()
    for key, value in sync.items():
        if isinstance(value, dict):
            _assert_info_equal(native[key], value, atol)
        else:
            np.testing.assert_allclose(native[key], value, rtol=0, atol=atol)


CASES = [
    ("metarl/HalfCheetahVel-v0", HalfCheetahVelVectorEnv, {}),
    ("metarl/HalfCheetahDir-v0", HalfCheetahDirVectorEnv, {}),
    # a narrow healthy range, so that some Ant lanes terminate (and autoreset) within the test
    ("metarl/AntVel-v0", AntVelVectorEnv, {"healthy_z_range": (0.2, 0.8)}),
    ("metarl/AntDir-v0", AntDirVectorEnv, {"healthy_z_range": (0.2, 0.8)}),
    ("metarl/AntGoal-v0", AntGoalVectorEnv, {"healthy_z_range": (0.2, 0.8)}),
    ("metarl/AntDir-v1", AntDirVectorEnv, {"healthy_z_range": (0.2, 0.7)}),  # rllab's start pose and time step
]


@pytest.mark.parametrize("env_id, vector_class, kwargs", CASES, ids=[case[0] for case in CASES])
def test_vector_env_equals_sync_vector_env(env_id: str, vector_class: type, kwargs: dict) -> None:
    native = gym.make_vec(env_id, num_envs=LANES, max_episode_steps=SHORT, workers=2, **kwargs)
    sync = gym.make_vec(env_id, num_envs=LANES, vectorization_mode="sync", max_episode_steps=SHORT, **kwargs)
    assert isinstance(native, vector_class)  # the default of make_vec for these ids
    tasks = native.sample_tasks(LANES, np.random.default_rng(0))
    native.set_attr("task", tasks)
    sync.set_attr("task", tasks)
    assert native.get_attr("task") == sync.get_attr("task") == tuple(tasks)
    # HalfCheetah: mujoco.rollout's zero warm start, ~1e-9 in 40 steps; Ant: the single env's own physics, and
    # numpy's rounding in vectorised sums and norms
    atol = 1e-9 if issubclass(vector_class, HalfCheetahRolloutVectorEnv) else 1e-12
    observation, info = native.reset(seed=3)
    expected_observation, expected_info = sync.reset(seed=3)
    np.testing.assert_array_equal(observation, expected_observation)
    _assert_info_equal(info, expected_info, atol)
    rng = np.random.default_rng(1)
    ends = {"terminated": 0, "truncated": 0}
    action_size = native.single_action_space.shape[0]
    for _ in range(3 * SHORT + 3):  # every lane ends and restarts at least twice
        actions = rng.uniform(-1.5, 1.5, (LANES, action_size))  # some outside the box: clipped by MuJoCo and the cost
        step, expected = native.step(actions), sync.step(actions)
        for got, want in zip(step[:4], expected[:4]):
            assert got.dtype == want.dtype
            np.testing.assert_allclose(got, want, rtol=0, atol=atol)
        _assert_info_equal(step[4], expected[4], atol)
        ends["terminated"] += int(step[2].sum())
        ends["truncated"] += int(step[3].sum())
    assert ends["truncated"] >= LANES
    if issubclass(vector_class, AntWorkersVectorEnv):
        assert ends["terminated"] >= 1
    native.close()
    sync.close()


@pytest.mark.parametrize("env_id", ["metarl/HalfCheetahVel-v0", "metarl/AntVel-v0"])
def test_sampler_gives_the_same_trajectories_with_the_vector_env(env_id: str) -> None:
    probe = gym.make(env_id)
    tasks = probe.unwrapped.sample_tasks(3, np.random.default_rng(0))
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(probe.observation_space.shape[0], probe.action_space.shape[0], hidden=(8,))
    params = stack_params(parameters_of(policy), len(tasks))
    native, sync = (
        TrajectorySampler(make, policy, episodes_per_task=2, horizon=30).sample(params, tasks, seed=7)
        for make in (lambda n: gym.make_vec(env_id, num_envs=n, workers=2),
                     lambda n: gym.make_vec(env_id, num_envs=n, vectorization_mode="sync"))
    )
    for name in ("observations", "actions", "rewards", "mask"):
        torch.testing.assert_close(getattr(native, name), getattr(sync, name), rtol=0, atol=1e-6)


def test_vector_env_refuses_bad_input() -> None:
    vec = HalfCheetahVelVectorEnv(num_envs=3, workers=1)
    with pytest.raises(gym.error.ResetNeeded):
        vec.step(np.zeros((3, 6)))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        vec.step(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="expected 3 tasks"):
        vec.set_attr("task", vec.sample_tasks(2, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="halfcheetah-vel"):
        vec.set_attr("task", [Task("ant-vel", {"velocity": 1.0})] * 3)
    with pytest.raises(ValueError, match="velocity"):  # outside the distribution's range, as the single env says
        vec.set_attr("task", Task("halfcheetah-vel", {"velocity": 5.0}))
    with pytest.raises(AttributeError, match="'task' only"):
        vec.get_attr("velocity")
    with pytest.raises(ValueError, match="only the option 'task'"):
        vec.reset(options={"reset_mask": np.ones(3, dtype=bool)})
    for bad, name in (({"num_envs": 0}, "num_envs"), ({"num_envs": 2, "workers": 0}, "workers"),
                      ({"num_envs": 2, "max_episode_steps": 0}, "max_episode_steps")):
        with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
            AntVelVectorEnv(**bad)
    task = Task("halfcheetah-vel", {"velocity": 1.5})
    vec.reset(options={"task": task})
    assert vec.get_attr("task") == (task, task, task)
    vec.close()


def test_default_workers_share_the_cores_among_torchrun_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_workers() == 16
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    vec = HalfCheetahVelVectorEnv(num_envs=8)
    assert default_workers() == 4 and vec.workers == 4
    vec.close()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert default_workers() == 1


def test_ant_worker_errors_and_deaths_are_reported() -> None:
    vec = AntVelVectorEnv(num_envs=4, workers=2)
    try:
        vec.reset(seed=0)
        assert len(vec._pool) == 2 and all(p.is_alive() for p in vec._pool.processes)
        with pytest.raises(ValueError, match="could not broadcast") as raised:  # raised in a worker, then here
            vec._pool.ask_all("step", [(np.zeros((2, 3)), np.array([], dtype=int), np.zeros((0, 15)),
                                        np.zeros((0, 14)))] * 2)
        assert "in worker 0 of AntVelVectorEnv(num_envs=4, workers=2) (step)" in str(raised.value.__cause__)
        vec.step(np.zeros((4, 8)))  # the workers carry on after an error
        os.kill(vec._pool.processes[1].pid, signal.SIGKILL)
        with pytest.raises(WorkerDiedError, match=r"worker 1 \(pid \d+, lanes 2..3\) of AntVelVectorEnv.*died"):
            vec.step(np.zeros((4, 8)))
        assert vec._pool.closed and not any(p.is_alive() for p in vec._pool.processes)
    finally:
        vec.close()
