"""The task-distribution environments of ``envs``: gymnasium and SB3 checkers, the task protocol, rewards
against hand computations, vectorisation, registration and bad input."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs import (
    AntDirEnv,
    AntGoalEnv,
    AntVelEnv,
    HalfCheetahDirEnv,
    HalfCheetahVelEnv,
    Navigation2DEnv,
    Navigation2DVectorEnv,
    TaskEnv,
    check_task_env,
    register_task_env,
)
from metarl.tasks import Task

REPO = Path(__file__).resolve().parents[1]
IDS = sorted(envs.METARL_ENVS)
SHAPES = {  # id -> (observation size, action size, horizon)
    "metarl/Navigation2D-v0": (2, 2, 100),
    "metarl/HalfCheetahVel-v0": (17, 6, 200),
    "metarl/HalfCheetahDir-v0": (17, 6, 200),
    "metarl/AntVel-v0": (105, 8, 200),
    "metarl/AntDir-v0": (105, 8, 200),
    "metarl/AntGoal-v0": (107, 8, 200),
    "metarl/AntVel-v1": (105, 8, 200),
    "metarl/AntDir-v1": (105, 8, 200),
    "metarl/AntGoal-v1": (107, 8, 200),
}


@pytest.fixture(autouse=True)
def _quiet_checkers():
    """gymnasium's and SB3's checkers warn about unbounded observation boxes, which are intended."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _rollout(env: gym.Env, task: Task, seed: int, steps: int) -> list[tuple[Any, ...]]:
    observation, _ = env.reset(seed=seed, options={"task": task})
    env.action_space.seed(seed)
    transitions = [(observation,)]
    for _ in range(steps):
        transitions.append(env.step(env.action_space.sample())[:4])
    return transitions


# --- every registered id -----------------------------------------------------------------------------


def test_the_six_ids_are_registered_with_their_horizons():
    assert set(IDS) == set(SHAPES)
    for env_id, (_, _, horizon) in SHAPES.items():
        assert gym.spec(env_id).max_episode_steps == horizon
    assert gym.spec("metarl/Navigation2D-v0").vector_entry_point == "envs.navigation:Navigation2DVectorEnv"


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_and_sb3_checkers_pass(env_id):
    env = gym.make(env_id)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env)
    observation_size, action_size, _ = SHAPES[env_id]
    assert env.observation_space.shape == (observation_size,)
    assert env.action_space.shape == (action_size,)


@pytest.mark.parametrize("env_id", IDS)
def test_check_task_env_passes(env_id):
    env = gym.make(env_id)
    before = env.unwrapped.get_task()
    check_task_env(env)
    assert env.unwrapped.get_task() == before


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_rollout_in_two_environments(env_id):
    first, second = gym.make(env_id), gym.make(env_id)
    task = first.unwrapped.sample_tasks(1, np.random.default_rng(7))[0]
    for a, b in zip(_rollout(first, task, 3, 10), _rollout(second, task, 3, 10)):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("env_id", IDS)
def test_fresh_environment_has_the_documented_default_task(env_id):
    env = gym.make(env_id)
    expected = env.unwrapped.sample_tasks(1, np.random.default_rng(envs.DEFAULT_TASK_SEED))[0]
    assert env.unwrapped.get_task() == expected
    assert env.get_wrapper_attr("task") == expected


def test_reset_info_and_step_info_carry_the_task():
    env = gym.make("metarl/AntGoal-v0")
    task = Task("ant-goal", {"goal": [1.0, -2.0]})
    _, info = env.reset(seed=0, options={"task": task})
    np.testing.assert_array_equal(info["task"]["goal"], [1.0, -2.0])
    info = env.step(env.action_space.sample())[4]
    np.testing.assert_array_equal(info["task"]["goal"], [1.0, -2.0])
    assert {"x_velocity", "reward_goal", "reward_ctrl", "reward_contact", "reward_survive"} <= set(info)


# --- check_task_env catches broken environments ------------------------------------------------------


class _IgnoresSetTask(Navigation2DEnv):
    def set_task(self, task):
        if not hasattr(self, "_task"):  # keeps its first (default) task forever
            super().set_task(task)


class _StoresButDoesNotApplyTask(Navigation2DEnv):
    def set_task(self, task):
        if not hasattr(self, "_task"):
            super().set_task(task)
        self._task = Task.from_dict(task) if isinstance(task, dict) else task


class _RewardIgnoresTask(Navigation2DEnv):
    def step(self, action):
        observation, _, terminated, truncated, info = super().step(action)
        return observation, -float(np.linalg.norm(self._position)), terminated, truncated, info


class _GlobalRandomSampling(Navigation2DEnv):
    def sample_tasks(self, n, rng):
        return [Task("navigation2d", {"goal": [float(x), float(y)]}) for x, y in np.random.uniform(-0.5, 0.5, (n, 2))]


class _AcceptsAnyFamily(Navigation2DEnv):
    def set_task(self, task):
        self._task = Task.from_dict(task) if isinstance(task, dict) else task
        self._goal = np.array(self._task["goal"])


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        (_IgnoresSetTask, "set_task/get_task"),
        (_StoresButDoesNotApplyTask, "task changes rewards"),
        (_RewardIgnoresTask, "task changes rewards"),
        (_GlobalRandomSampling, "same seed, same tasks"),
        (_AcceptsAnyFamily, "foreign task"),
    ],
)
def test_check_task_env_names_the_failed_check(broken, check):
    with pytest.raises(AssertionError, match=rf"\[{check}\]"):
        check_task_env(broken())


def test_check_task_env_refuses_an_environment_without_tasks():
    with pytest.raises(ValueError, match="needs a TaskEnv"):
        check_task_env(gym.make("CartPole-v1"))


# --- Navigation2D ------------------------------------------------------------------------------------


def test_navigation_step_follows_the_original():
    env = Navigation2DEnv()
    observation, _ = env.reset(seed=0, options={"task": Task("navigation2d", {"goal": [0.15, -0.1]})})
    assert observation.dtype == np.float32 and np.array_equal(observation, [0.0, 0.0])
    observation, reward, terminated, truncated, _ = env.step(np.array([1.0, -1.0]))  # clipped to 0.1
    np.testing.assert_allclose(observation, [0.1, -0.1])
    assert reward == pytest.approx(-0.05) and not terminated and not truncated
    observation, reward, terminated, _, _ = env.step(np.array([0.045, 0.005]))  # within 0.01 on both axes
    assert terminated and reward == pytest.approx(-np.hypot(0.005, 0.005))


def test_navigation_truncates_after_100_steps():
    env = gym.make("metarl/Navigation2D-v0")
    env.reset(seed=0)
    truncated = [env.step(np.zeros(2, dtype=np.float32))[3] for _ in range(100)]
    assert truncated == [False] * 99 + [True]


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return np.array_equal(a, b)


def test_vector_navigation_equals_single_environments():
    native = gym.make_vec("metarl/Navigation2D-v0", num_envs=4)
    sync = gym.make_vec("metarl/Navigation2D-v0", num_envs=4, vectorization_mode="sync")
    assert isinstance(native.unwrapped, Navigation2DVectorEnv)
    tasks = native.unwrapped.sample_tasks(4, np.random.default_rng(0))
    assert tasks == Navigation2DEnv().sample_tasks(4, np.random.default_rng(0))
    native.set_attr("task", tasks)
    sync.set_attr("task", tasks)
    assert native.get_attr("task") == sync.get_attr("task") == tuple(tasks)
    goals = np.array([t["goal"] for t in tasks])
    rng = np.random.default_rng(1)
    observation, info = native.reset(seed=0)
    expected = sync.reset(seed=0)
    assert _equal((observation, info), expected)
    done = {"terminated": 0, "truncated": 0}
    for _ in range(250):
        # lanes 0 and 1 head for their goals (and terminate), lanes 2 and 3 wander (and are truncated)
        actions = np.concatenate([goals[:2] - observation[:2], rng.uniform(-0.1, 0.1, (2, 2))]) * 0.7
        step = native.step(actions)
        assert _equal(step, sync.step(actions))
        observation = step[0]
        done["terminated"] += int(step[2].sum())
        done["truncated"] += int(step[3].sum())
    assert done["terminated"] >= 2 and done["truncated"] >= 4


def test_vector_navigation_refuses_bad_input():
    vec = Navigation2DVectorEnv(num_envs=3)
    with pytest.raises(gym.error.ResetNeeded):
        vec.step(np.zeros((3, 2)))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        vec.step(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="expected 3 tasks"):
        vec.set_attr("task", vec.sample_tasks(2, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="navigation2d"):
        vec.set_attr("task", [Task("ant-goal", {"goal": [0.0, 0.0]})] * 3)
    with pytest.raises(AttributeError, match="'task' only"):
        vec.get_attr("goal")
    with pytest.raises(ValueError, match="only the option 'task'"):
        vec.reset(options={"reset_mask": np.ones(3, dtype=bool)})
    with pytest.raises(ValueError, match="num_envs"):
        Navigation2DVectorEnv(num_envs=0)
    task = Task("navigation2d", {"goal": [0.2, 0.3]})
    vec.reset(options={"task": task})
    assert vec.get_attr("task") == (task, task, task)


# --- MuJoCo: rewards against a hand computation -------------------------------------------------------

ACTION_OUTSIDE_BOX = np.array([1.5, -0.3, 0.2, -2.0, 0.7, 0.1, -0.6, 0.4])


def _step_by_hand(env: TaskEnv, action: np.ndarray) -> tuple[float, dict[str, Any], float, np.ndarray]:
    """One step from reset(seed=0): reward, info, x velocity of the torso, clipped action."""
    env.reset(seed=0)
    # v5 differentiates HalfCheetah's rootx joint and Ant's torso body position
    x = (lambda: env.data.qpos[0]) if isinstance(env, HalfCheetahEnv) else (lambda: env.data.body("torso").xpos[0])
    x_before = x()
    _, reward, _, _, info = env.step(action)
    return reward, info, (x() - x_before) / env.dt, np.clip(action, -1.0, 1.0)


@pytest.mark.parametrize(
    ("cls", "task", "forward"),
    [
        (HalfCheetahVelEnv, {"velocity": 1.3}, lambda v: -abs(v - 1.3)),
        (HalfCheetahDirEnv, {"direction": -1}, lambda v: -v),
    ],
)
def test_half_cheetah_rewards(cls, task, forward):
    env = cls()
    env.set_task(Task(env.family, task))
    reward, info, x_velocity, action = _step_by_hand(env, ACTION_OUTSIDE_BOX[:6])
    assert info["x_velocity"] == pytest.approx(x_velocity)
    assert reward == pytest.approx(forward(x_velocity) - 0.05 * np.sum(action**2))
    assert reward == pytest.approx(info["reward_forward"] + info["reward_ctrl"])


@pytest.mark.parametrize(
    ("cls", "task", "task_term"),
    [
        (AntVelEnv, {"velocity": 2.0}, lambda v, xy: -abs(v - 2.0) + 1.0),
        (AntDirEnv, {"direction": 1}, lambda v, xy: v),
        (AntGoalEnv, {"goal": [1.0, -2.0]}, lambda v, xy: -abs(xy[0] - 1.0) - abs(xy[1] + 2.0) + 4.0),
    ],
)
def test_ant_rewards(cls, task, task_term):
    env = cls()
    env.set_task(Task(env.family, task))
    reward, info, x_velocity, action = _step_by_hand(env, ACTION_OUTSIDE_BOX)
    contact = 0.0005 * np.sum(np.clip(env.data.cfrc_ext, -1.0, 1.0) ** 2)
    expected = task_term(x_velocity, env.data.qpos[:2]) - 0.005 * np.sum(action**2) - contact + 0.05
    assert info["x_velocity"] == pytest.approx(x_velocity)
    assert reward == pytest.approx(expected)
    terms = [v for k, v in info.items() if k.startswith("reward_")]
    assert len(terms) == 4 and reward == pytest.approx(sum(terms))


RLLAB_DT = {  # class -> rllab's time step: frame_skip 1 of half_cheetah.xml's 0.01 s, of ant.xml's 0.02 s
    HalfCheetahVelEnv: 0.01,
    HalfCheetahDirEnv: 0.01,
    AntVelEnv: 0.02,
    AntDirEnv: 0.02,
    AntGoalEnv: 0.02,
}


@pytest.mark.parametrize("cls", list(RLLAB_DT))
def test_default_time_step_is_rllabs_and_frame_skip_changes_it(cls):
    env = cls()
    assert env.model.opt.timestep == pytest.approx(0.01)  # gymnasium's models, both robots
    assert env.dt == pytest.approx(RLLAB_DT[cls]) and env.frame_skip == round(RLLAB_DT[cls] / 0.01)
    assert env.metadata["render_fps"] == round(1 / RLLAB_DT[cls])
    v5 = cls(frame_skip=5)
    assert v5.dt == pytest.approx(0.05) and pickle.loads(pickle.dumps(v5)).dt == pytest.approx(0.05)


def test_registered_ids_take_frame_skip():
    assert gym.make("metarl/AntDir-v0").unwrapped.dt == pytest.approx(0.02)
    assert gym.make("metarl/HalfCheetahVel-v0", frame_skip=5).unwrapped.dt == pytest.approx(0.05)


@pytest.mark.parametrize("cls", [AntVelEnv, AntDirEnv, AntGoalEnv])
def test_rllab_dynamics_take_rllabs_start_pose_timestep_and_contacts(cls):
    env = cls(dynamics="rllab")
    assert env.model.opt.timestep == pytest.approx(0.02) and env.frame_skip == 1 and env.dt == pytest.approx(0.02)
    np.testing.assert_array_equal(env.init_qpos, env.model.numeric("init_qpos").data)
    assert env.init_qpos[2] == pytest.approx(0.55) and cls().init_qpos[2] == pytest.approx(0.75)
    np.testing.assert_allclose(env.model.geom_solimp[:, :3], np.tile([0.8, 0.8, 0.01], (env.model.ngeom, 1)))
    assert pickle.loads(pickle.dumps(env)).dt == pytest.approx(0.02)
    assert cls(dynamics="rllab", frame_skip=2).dt == pytest.approx(0.04)


def test_rllab_dynamics_settle_at_rest_where_gymnasiums_bounce():
    """Zero torque from the start state: rllab's pose and 0.02 s steps let the torso settle (it stays under
    0.7 m); gymnasium's qpos0 (ankles outside their joint ranges) and 0.01 s steps throw it above 0.7 m."""
    heights = {}
    for env_id in ("metarl/AntDir-v0", "metarl/AntDir-v1"):
        env = gym.make(env_id).unwrapped
        heights[env_id] = []
        for seed in range(3):
            env.reset(seed=seed)
            for _ in range(200):
                assert not env.step(np.zeros(8))[2]
                heights[env_id].append(env.data.qpos[2])
    assert max(heights["metarl/AntDir-v1"]) < 0.7 < max(heights["metarl/AntDir-v0"])


def test_unknown_ant_dynamics_is_refused():
    with pytest.raises(ValueError, match="dynamics"):
        AntDirEnv(dynamics="mujoco-py")


@pytest.mark.parametrize("frame_skip", [0, -1, 1.5, True])
def test_bad_frame_skip_is_refused(frame_skip):
    with pytest.raises(ValueError, match="frame_skip"):
        HalfCheetahDirEnv(frame_skip=frame_skip)
    with pytest.raises(ValueError, match="frame_skip"):
        AntGoalEnv(frame_skip=frame_skip)


def _model_fields(model: mujoco.MjModel) -> dict[str, Any]:
    """Every array of an ``MjModel`` and its ``opt`` and ``stat`` numbers, by name."""
    fields = {name: getattr(model, name) for name in dir(model) if isinstance(getattr(model, name), np.ndarray)}
    for group in ("opt", "stat"):
        for name in dir(getattr(model, group)):
            value = getattr(getattr(model, group), name)
            if not name.startswith("_") and isinstance(value, (int, float, np.ndarray)):
                fields[f"{group}.{name}"] = np.asarray(value)
    return fields


@pytest.mark.parametrize(("env_id", "frame_skip"), [("metarl/HalfCheetahVel-v0", 1), ("metarl/HalfCheetahDir-v0", 5)])
def test_half_cheetah_is_v5s_model_without_the_settotalmass_warning(env_id, frame_skip, capfd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo appends its warnings to MUJOCO_LOG.TXT in the working directory
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make(env_id, frame_skip=frame_skip).unwrapped
    out, err = capfd.readouterr()  # file-descriptor level: MuJoCo's C code prints there
    assert "settotalmass" not in out + err
    assert not [w for w in caught if "settotalmass" in str(w.message)]
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()

    v5 = HalfCheetahEnv(frame_skip=frame_skip)  # gymnasium's own, compiled with settotalmass="14"
    # the check above can see the warning, and building ours left MuJoCo's warning handling as it was
    assert mujoco.MjSpec.from_file(v5.fullpath).compiler.settotalmass == 14
    assert "settotalmass" in "".join(capfd.readouterr())

    np.testing.assert_array_equal(env.model.body_mass, v5.model.body_mass)
    np.testing.assert_array_equal(env.model.body_inertia, v5.model.body_inertia)
    assert env.model.body_mass[1:].sum() == pytest.approx(14.0)
    ours, theirs = _model_fields(env.model), _model_fields(v5.model)
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)

    actions = np.random.default_rng(0).uniform(-1.0, 1.0, (50, 6)).astype(np.float32)

    def rollout(sim: HalfCheetahEnv) -> np.ndarray:
        observation, _ = sim.reset(seed=3)
        observations = [observation] + [sim.step(action)[0] for action in actions]
        return np.concatenate([*observations, sim.data.qpos, sim.data.qvel, sim.data.qacc])

    np.testing.assert_array_equal(rollout(env), rollout(v5))


def test_models_without_settotalmass_load_as_mujoco_compiles_them():
    env = AntDirEnv()
    reference = mujoco.MjModel.from_xml_path(env.fullpath)
    ours, theirs = _model_fields(env.model), _model_fields(reference)
    for name in theirs:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def test_ant_terminates_when_the_torso_leaves_the_healthy_range():
    env = AntVelEnv()
    env.reset(seed=0)
    assert not env.step(np.zeros(8))[2]
    qpos = env.data.qpos.copy()
    qpos[2] = 1.5  # above healthy_z_range's 1.0 after the step's 0.02 s of fall
    env.set_state(qpos, env.data.qvel)
    assert env.step(np.zeros(8))[2]


def test_ant_goal_observation_starts_with_the_torso_xy():
    env = AntGoalEnv()
    observation, _ = env.reset(seed=0)
    np.testing.assert_array_equal(observation[:2], env.data.qpos[:2])


def test_pickle_and_deepcopy_keep_the_task():
    env = AntGoalEnv(goal_range=(-4.0, 4.0))
    task = Task("ant-goal", {"goal": [3.5, -0.5]})
    env.set_task(task)
    for clone in (pickle.loads(pickle.dumps(env)), copy.deepcopy(env)):
        assert clone.get_task() == task and clone.observation_space.shape == (107,)


# --- vector environments of gymnasium with one task per lane ----------------------------------------


def test_sync_vector_env_assigns_one_task_per_lane_through_the_wrappers():
    vec = gym.make_vec("metarl/HalfCheetahVel-v0", num_envs=3, vectorization_mode="sync")
    tasks = [Task("halfcheetah-vel", {"velocity": v}) for v in (0.0, 1.0, 2.0)]
    assert all(str(lane).startswith("<TimeLimit<OrderEnforcing<PassiveEnvChecker<") for lane in vec.envs)
    vec.set_attr("task", tasks)
    assert vec.get_attr("task") == tuple(tasks)
    assert [lane.unwrapped.get_task() for lane in vec.envs] == tasks
    assert not any("task" in vars(lane) for lane in vec.envs)  # set on the environment, not on a wrapper
    vec.reset(seed=0)
    actions = np.full((3, 6), 0.5, dtype=np.float32)
    _, rewards, _, _, info = vec.step(actions)
    np.testing.assert_array_equal(info["task"]["velocity"], [0.0, 1.0, 2.0])
    expected = -np.abs(info["x_velocity"] - np.array([0.0, 1.0, 2.0])) - 0.05 * np.sum(actions**2, axis=1)
    np.testing.assert_allclose(rewards, expected)


def test_async_vector_env_takes_task_dicts():
    vec = gym.make_vec("metarl/HalfCheetahDir-v0", num_envs=2, vectorization_mode="async")
    try:
        vec.set_attr("task", [{"family": "halfcheetah-dir", "params": {"direction": d}} for d in (-1, 1)])
        _, info = vec.reset(seed=0)
        np.testing.assert_array_equal(info["task"]["direction"], [-1, 1])
    finally:
        vec.close()


def test_async_vector_env_takes_task_objects():
    tasks = [Task("halfcheetah-dir", {"direction": d}) for d in (-1, 1)]
    vec = gym.make_vec("metarl/HalfCheetahDir-v0", num_envs=2, vectorization_mode="async")
    try:
        vec.set_attr("task", tasks)
        assert list(vec.get_attr("task")) == tasks
    finally:
        vec.close()


# --- registration --------------------------------------------------------------------------------------


def test_make_with_the_module_prefix_in_a_fresh_interpreter(tmp_path):
    code = (
        "import sys, gymnasium as gym\n"
        "try:\n"
        "    gym.make('metarl/AntDir-v0')\n"
        "except gym.error.Error as error:\n"
        "    print('without envs:', type(error).__name__)\n"
        "assert 'envs' not in sys.modules\n"
        "env = gym.make('envs:metarl/HalfCheetahVel-v0')\n"
        "print(type(env.unwrapped).__name__, env.spec.max_episode_steps)\n"
        "vec = gym.make_vec('envs:metarl/Navigation2D-v0', num_envs=2)\n"
        "print(type(vec).__name__)\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == [
        "without envs: NamespaceNotFound",
        "HalfCheetahVelEnv 200",
        "Navigation2DVectorEnv",
    ]


class _UserNavigation(Navigation2DEnv):
    """A user's task distribution: the same navigation with goals on a wider square."""

    def __init__(self) -> None:
        super().__init__(goal_range=(-2.0, 2.0))


@pytest.fixture
def user_id():
    env_id = "mytasks/WideNavigation-v0"
    yield env_id
    gym.registry.pop(env_id, None)


def test_register_task_env_for_a_user_distribution(user_id):
    register_task_env(user_id, _UserNavigation, max_episode_steps=50)
    env = gym.make(user_id)
    assert isinstance(env.unwrapped, _UserNavigation) and env.spec.max_episode_steps == 50
    check_task_env(env)
    with pytest.raises(ValueError, match="already registered"):
        register_task_env(user_id, _UserNavigation, max_episode_steps=50)


@pytest.mark.parametrize(
    ("env_id", "entry_point", "steps", "match"),
    [
        ("WideNavigation-v0", _UserNavigation, 50, "namespace/Name-v0"),
        ("mytasks/WideNavigation", _UserNavigation, 50, "namespace/Name-v0"),
        ("mytasks/WideNavigation-v0", gym.Env, 50, "not a subclass of TaskEnv"),
        ("mytasks/WideNavigation-v0", "mymodule.WideNavigation", 50, "package.module:Class"),
        ("mytasks/WideNavigation-v0", 42, 50, "callable"),
        ("mytasks/WideNavigation-v0", _UserNavigation, 0, "max_episode_steps"),
    ],
)
def test_register_task_env_refuses_bad_input(user_id, env_id, entry_point, steps, match):
    with pytest.raises(ValueError, match=match):
        register_task_env(env_id, entry_point, steps)
    assert user_id not in gym.registry


# --- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "task", "match"),
    [
        (Navigation2DEnv, Task("navigation-3d", {"goal": [0.0, 0.0]}), "expected a 'navigation2d' task"),
        (Navigation2DEnv, Task("navigation2d", {"goal": [0.0, 0.0], "speed": 1}), "exactly the parameters"),
        (Navigation2DEnv, Task("navigation2d", {"target": [0.0, 0.0]}), "exactly the parameters"),
        (Navigation2DEnv, Task("navigation2d", {"goal": [0.0, 0.9]}), r"in \[-0.5, 0.5\]"),
        (Navigation2DEnv, Task("navigation2d", {"goal": [0.0]}), "list of 2 numbers"),
        (Navigation2DEnv, Task("navigation2d", {"goal": ["a", "b"]}), "list of 2 numbers"),
        (Navigation2DEnv, {"family": "navigation2d", "goal": [0.0, 0.0]}, "exactly the keys"),
        (Navigation2DEnv, 42, "expected a Task"),
        (HalfCheetahVelEnv, Task("halfcheetah-vel", {"velocity": 2.5}), r"in \[0.0, 2.0\]"),
        (HalfCheetahVelEnv, Task("halfcheetah-vel", {"velocity": "fast"}), "must be a number"),
        (HalfCheetahVelEnv, Task("halfcheetah-vel", {"velocity": True}), "must be a number"),
        (HalfCheetahDirEnv, Task("halfcheetah-dir", {"direction": 0}), "-1 or 1"),
        (AntDirEnv, Task("ant-vel", {"velocity": 1.0}), "expected a 'ant-dir' task"),
        (AntVelEnv, Task("ant-vel", {"velocity": -0.5}), r"in \[0.0, 3.0\]"),
        (AntGoalEnv, Task("ant-goal", {"goal": [3.5, 0.0]}), r"in \[-3.0, 3.0\]"),
    ],
)
def test_set_task_refuses_bad_tasks(cls, task, match):
    env = cls()
    before = env.get_task()
    with pytest.raises(ValueError, match=match):
        env.set_task(task)
    assert env.get_task() == before


def test_bad_constructor_arguments_and_sampling_arguments():
    with pytest.raises(ValueError, match="velocity_range"):
        HalfCheetahVelEnv(velocity_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="forward_reward_weight"):
        HalfCheetahDirEnv(forward_reward_weight=2.0)
    with pytest.raises(ValueError, match="healthy_reward"):
        AntVelEnv(healthy_reward=0.0)
    with pytest.raises(ValueError, match="exclude_current_positions_from_observation"):
        AntGoalEnv(exclude_current_positions_from_observation=True)
    env = Navigation2DEnv()
    with pytest.raises(ValueError, match="non-negative integer"):
        env.sample_tasks(-1, np.random.default_rng(0))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        env.sample_tasks(2, 0)
    with pytest.raises(ValueError, match="shape"):
        env.reset(seed=0)
        env.step(np.zeros(3))


def test_a_wider_range_admits_out_of_distribution_tasks():
    env = HalfCheetahVelEnv(velocity_range=(0.0, 3.0))
    env.set_task(Task("halfcheetah-vel", {"velocity": 2.5}))
    assert env.get_task()["velocity"] == 2.5
