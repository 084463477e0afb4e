"""``check_task_env``: gymnasium's environment checker plus the checks of the task protocol.

Run it on every new task distribution (the tests run it on every ``metarl/*`` id). It catches what a
task environment typically gets wrong and gymnasium's checker cannot see: ``set_task`` that stores a
task without using it, rewards that ignore the task, and sampling that is not reproducible.
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

from envs.base import TaskEnv
from metarl.tasks import Task

_NUM_TASKS = 8


def check_task_env(env: gym.Env, *, seed: int = 0, steps: int = 5) -> None:
    """Check ``env`` (a :class:`TaskEnv`, possibly wrapped by ``gymnasium.make``) and restore its task.

    The checks, in order: ``gymnasium.utils.env_checker.check_env`` on ``env.unwrapped``;
    ``sample_tasks`` gives tasks of the environment's family, the same ones for the same seed, that
    survive ``Task.to_dict``/JSON/``Task.from_dict``; ``set_task`` (with a ``Task`` or its dict), the
    ``task`` attribute through the wrappers and ``reset(options={"task": ...})`` round-trip through
    ``get_task``; two different tasks give different rewards for the same actions from the same seed;
    the same task and seed give the same ``steps``-step rollout twice; and a task of another family is
    refused with ``ValueError``. The environment is reset and stepped along the way.

    Raises:
        ValueError: ``env`` is not a task environment.
        AssertionError: a check failed; the message names it (gymnasium's checker raises its own errors).
    """
    task_env = env.unwrapped
    if not isinstance(task_env, TaskEnv):
        raise ValueError(f"check_task_env needs a TaskEnv (or one wrapped by gymnasium.make), got {type(task_env)}")
    original = task_env.get_task()
    check_env(task_env, skip_render_check=True)
    tasks = _check_sampling(task_env, seed)
    for task in tasks:
        _check_round_trip(env, task_env, task, seed)
    first, second = _two_different(tasks)
    rollout = _rollout(env, first, seed, steps)
    _check(
        not np.array_equal(rollout[1], _rollout(env, second, seed, steps)[1]),
        "task changes rewards",
        f"tasks {first.to_dict()} and {second.to_dict()} gave the same rewards {rollout[1].tolist()} for the "
        "same actions from the same seed; does the reward (or set_task) use the task?",
    )
    again = _rollout(env, first, seed, steps)
    _check(
        all(np.array_equal(a, b) for a, b in zip(rollout, again)),
        "same seed, same rollout",
        f"two rollouts of task {first.to_dict()} from seed {seed} with the same actions differ",
    )
    _check_foreign_task_refused(task_env, first)
    task_env.set_task(original)


def _check(condition: bool, name: str, message: str) -> None:
    if not condition:
        raise AssertionError(f"check_task_env [{name}]: {message}")


def _check_sampling(task_env: TaskEnv, seed: int) -> list[Task]:
    tasks = task_env.sample_tasks(_NUM_TASKS, np.random.default_rng(seed))
    _check(
        isinstance(tasks, list) and len(tasks) == _NUM_TASKS and all(isinstance(t, Task) for t in tasks),
        "sample_tasks",
        f"sample_tasks({_NUM_TASKS}, rng) must return a list of {_NUM_TASKS} Task, got {tasks!r}",
    )
    _check(
        all(t.family == task_env.family for t in tasks),
        "sample_tasks",
        f"sampled tasks must have the family {task_env.family!r}: {[t.family for t in tasks]}",
    )
    _check(
        tasks == task_env.sample_tasks(_NUM_TASKS, np.random.default_rng(seed)),
        "same seed, same tasks",
        "two generators with the same seed gave different tasks; sample from the rng argument only",
    )
    for task in tasks:
        _check(
            Task.from_dict(json.loads(json.dumps(task.to_dict()))) == task,
            "JSON round-trip",
            f"{task} changes through to_dict/JSON/from_dict",
        )
    return tasks


def _check_round_trip(env: gym.Env, task_env: TaskEnv, task: Task, seed: int) -> None:
    task_env.set_task(task)
    _check(
        task_env.get_task() == task, "set_task/get_task", f"set_task({task}) then get_task() gave {task_env.get_task()}"
    )
    task_env.set_task(json.loads(json.dumps(task.to_dict())))
    _check(task_env.get_task() == task, "set_task(dict)", f"set_task of {task.to_dict()} gave {task_env.get_task()}")
    env.set_wrapper_attr("task", task)
    _check(env.get_wrapper_attr("task") == task, "task attribute", f"setting the attribute 'task' to {task} failed")
    task_env.set_default_task()
    env.reset(seed=seed, options={"task": task})
    _check(task_env.get_task() == task, "reset option", f"reset(options={{'task': {task}}}) left {task_env.get_task()}")


def _check_foreign_task_refused(task_env: TaskEnv, task: Task) -> None:
    foreign = Task(f"not-{task_env.family}", task.to_dict()["params"])
    try:
        task_env.set_task(foreign)
    except ValueError:
        return
    raise AssertionError(f"check_task_env [foreign task]: set_task accepted {foreign} instead of raising ValueError")


def _two_different(tasks: list[Task]) -> tuple[Task, Task]:
    others = [t for t in tasks if t != tasks[0]]
    _check(bool(others), "sample_tasks", f"{len(tasks)} sampled tasks are all equal to {tasks[0]}")
    return tasks[0], others[0]


def _rollout(env: gym.Env, task: Task, seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Observations and rewards of up to ``steps`` steps of ``task`` from ``seed``, with seeded actions."""
    env.unwrapped.set_task(task)
    observation, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    observations, rewards = [observation], []
    for _ in range(steps):
        observation, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        observations.append(observation)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards)
