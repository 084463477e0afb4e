"""stable-baselines3 on the task environments: PPO trains on every id, TaskResamplingCallback changes tasks
reproducibly from its seed."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import envs
from envs.sb3 import TaskResamplingCallback

IDS = sorted(envs.METARL_ENVS)
N_ENVS, N_STEPS = 2, 32  # a rollout is 64 steps


@pytest.fixture(autouse=True)
def _quiet():
    """SB3 warns that a batch size of 64 does not divide small rollouts evenly, which is intended here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _ppo(vec_env) -> PPO:
    return PPO("MlpPolicy", vec_env, n_steps=N_STEPS, batch_size=N_ENVS * N_STEPS, n_epochs=1, seed=0, device="cpu")


def _expected_tasks(vec_env, seed: int, timestep: int) -> list:
    """The documented convention: sub-env i samples with np.random.default_rng([seed, timestep, i])."""
    distribution = vec_env.envs[0].unwrapped
    return [distribution.sample_tasks(1, np.random.default_rng([seed, timestep, i]))[0] for i in range(N_ENVS)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("env_id", IDS)
def test_ppo_trains_on_every_id_and_the_callback_changes_the_tasks(env_id):
    vec_env = make_vec_env(env_id, n_envs=N_ENVS, seed=0)
    defaults = vec_env.env_method("get_task")
    callback = TaskResamplingCallback(seed=1)
    model = _ppo(vec_env).learn(3 * N_ENVS * N_STEPS, callback=callback)  # three rollouts
    assert model.num_timesteps == 3 * N_ENVS * N_STEPS
    tasks = vec_env.env_method("get_task")
    assert tasks == callback.tasks == _expected_tasks(vec_env, seed=1, timestep=2 * N_ENVS * N_STEPS)
    assert tasks != defaults and tasks[0] != tasks[1]  # (seed 1 draws directions +1 and -1 for the Dir ids)


def test_the_same_seed_gives_the_same_tasks_and_every_spaces_the_draws():
    runs = {}
    for name, seed, every in (("a", 5, 2), ("b", 5, 2), ("other seed", 6, 2)):
        vec_env = make_vec_env("envs:metarl/HalfCheetahVel-v0", n_envs=N_ENVS, seed=0)
        _ppo(vec_env).learn(3 * N_ENVS * N_STEPS, callback=TaskResamplingCallback(seed=seed, every=every))
        runs[name] = vec_env.env_method("get_task")
        # rollouts 0 and 2 resample; the tasks are those drawn at rollout 2's first step
        assert runs[name] == _expected_tasks(vec_env, seed=seed, timestep=2 * N_ENVS * N_STEPS)
    assert runs["a"] == runs["b"] != runs["other seed"]


def test_reset_starts_fresh_episodes_on_the_new_tasks():
    vec_env = make_vec_env("envs:metarl/Navigation2D-v0", n_envs=N_ENVS, seed=0)
    model = _ppo(vec_env)
    model.learn(N_ENVS * N_STEPS)
    assert np.any(model._last_obs != 0)  # mid-episode: the points have moved from the origin
    callback = TaskResamplingCallback(seed=0)
    callback.init_callback(model)
    callback.on_rollout_start()
    np.testing.assert_array_equal(model._last_obs, np.zeros((N_ENVS, 2)))  # Navigation2D starts at the origin
    assert model._last_episode_starts.all()


def test_bad_arguments_and_environments_without_tasks_are_refused():
    with pytest.raises(ValueError, match="every"):
        TaskResamplingCallback(seed=0, every=0)
    with pytest.raises(ValueError, match="seed"):
        TaskResamplingCallback(seed=-1)
    model = PPO("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=1), n_steps=N_STEPS, batch_size=N_STEPS, device="cpu")
    with pytest.raises(ValueError, match="needs task environments"):
        model.learn(N_STEPS, callback=TaskResamplingCallback(seed=0))
    assert gym.spec("Pendulum-v1")  # a plain gymnasium environment, with no task
