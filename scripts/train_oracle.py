"""Oracle baseline: stable-baselines3 PPO trained from scratch on each test task, one run per task.

The test tasks are those of metarl's evaluation: ``env.sample_tasks(tasks, np.random.default_rng([seed, 2]))``
(a MAML-TRPO run with ``--seed S`` evaluates its final policy on these tasks when ``--tasks`` is at most
its meta-batch size, 40 for the locomotion scripts). For each task, PPO trains on that task only for
``--timesteps`` steps, then ``--eval-episodes`` episodes of the trained policy give the task's mean
return; the script reports the mean over tasks and its standard error, and writes JSON (after every
task, so an interrupted run keeps the tasks done). PPO acts in [-1, 1], mapped onto the environment's
action bounds, as metarl's policies do.

This is a per-task expert. MAML's paper (Finn et al. 2017, section 5.3) calls "oracle" one policy that
receives the task parameters as input (cbfinn/maml_rl ``*_oracle.py`` environments append the goal to
the observation), trained with TRPO over the distribution: ``--oracle --inner-steps 0`` of the MAML-TRPO
scripts. The two are not the same baseline.

    PYTHONPATH=. python scripts/train_oracle.py --env-id envs:metarl/HalfCheetahVel-v0 --tasks 40 --out runs/oracle_hcv.json

Seeds: task ``k`` trains with PPO seed ``t_k`` and evaluates episode ``e`` from ``reset(seed=v_k + e)``,
where ``t_k, v_k = np.random.default_rng([seed, 3, k]).integers(2**31, size=2)``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from gymnasium.wrappers import RescaleAction
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from metarl.script import run_script
from metarl.tasks import Task

TEST_TASK_STREAM = 2
"""``np.random.default_rng([seed, 2])`` draws metarl's evaluation tasks (``metarl.rl.experiment``)."""
RUN_SEED_STREAM = 3
"""``np.random.default_rng([seed, 3, k])`` draws the training and evaluation seeds of task ``k``."""


@dataclass
class Args:
    """Train SB3 PPO on each of N test tasks of a task distribution and report the mean return over tasks."""

    env_id: str = "envs:metarl/HalfCheetahVel-v0"
    """gymnasium id of the task-distribution environment, with the module prefix that registers it."""
    tasks: int = 40
    """N: test tasks, each trained on from scratch (40 as in the paper's locomotion evaluation)."""
    timesteps: int = 1_000_000
    """PPO environment steps per task."""
    seed: int = 0
    """Seeds the test tasks (as metarl's evaluation does) and every run's training and evaluation."""
    eval_episodes: int = 10
    """Episodes of the trained policy per task; their mean return is the task's score."""
    deterministic: bool = False
    """Evaluate with the policy's mean action; by default actions are sampled, as in metarl's evaluation."""
    n_envs: int = 1
    """Sub-environments of PPO's DummyVecEnv."""
    n_steps: int = 2048
    """PPO steps per sub-environment and rollout (SB3's default)."""
    batch_size: int = 64
    """PPO minibatch size (SB3's default)."""
    out: Path = Path("runs/oracle.json")
    """Where the JSON results go."""

    def __post_init__(self) -> None:
        for name in ("tasks", "timesteps", "eval_episodes", "n_envs", "n_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"--seed must be a non-negative integer, got {self.seed}")


def evaluation_tasks(env_id: str, n: int, seed: int) -> list[Task]:
    """metarl's evaluation tasks: ``n`` tasks of the environment's distribution from ``default_rng([seed, 2])``."""
    probe = gymnasium.make(env_id)
    distribution = probe.unwrapped
    if not hasattr(distribution, "sample_tasks"):
        raise SystemExit(f"train_oracle: {env_id} is not a task distribution (its env has no sample_tasks)")
    tasks = distribution.sample_tasks(n, np.random.default_rng([seed, TEST_TASK_STREAM]))
    probe.close()
    return tasks


def acting_in_unit_box(env: gymnasium.Env) -> gymnasium.Env:
    """``env`` with actions in [-1, 1] mapped linearly onto its action bounds, as metarl's policies act (the
    paper's rllab ``normalize``). A no-op for the MuJoCo tasks; Navigation2D's velocities are in [-0.1, 0.1],
    where PPO's initial standard deviation of 1 would saturate every action."""
    ones = np.ones(env.action_space.shape, dtype=env.action_space.dtype)
    return RescaleAction(env, min_action=-ones, max_action=ones)


def train(args: Args, task: Task, seed: int) -> PPO:
    """PPO trained on ``task`` alone (every sub-environment holds it for the whole run)."""
    vec_env = make_vec_env(args.env_id, n_envs=args.n_envs, seed=seed, wrapper_class=acting_in_unit_box)
    vec_env.env_method("set_task", task)
    model = PPO("MlpPolicy", vec_env, n_steps=args.n_steps, batch_size=args.batch_size, seed=seed, device="cpu")
    return model.learn(args.timesteps)


def evaluate(model: PPO, env_id: str, task: Task, episodes: int, seed: int, deterministic: bool) -> list[float]:
    """Undiscounted returns of ``episodes`` episodes on ``task``; episode ``e`` resets with ``seed + e``."""
    env = acting_in_unit_box(gymnasium.make(env_id))
    env.unwrapped.set_task(task)
    model.set_random_seed(seed)  # the action noise, when actions are sampled
    returns = []
    for episode in range(episodes):
        observation, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(observation, deterministic=deterministic)
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def report(args: Args, rows: list[dict[str, Any]], complete: bool, started: float) -> dict[str, Any]:
    means = np.array([row["mean_return"] for row in rows])
    return {
        "env_id": args.env_id,
        "method": "oracle: SB3 PPO trained on each test task",
        "complete": complete,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {name: version(name) for name in ("stable_baselines3", "gymnasium", "mujoco", "torch")},
        "task_seed": [args.seed, TEST_TASK_STREAM],
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(args).items()},
        "wall_s": time.perf_counter() - started,
        "mean_return": float(means.mean()) if len(means) else None,
        "stderr": float(means.std(ddof=1) / np.sqrt(len(means))) if len(means) > 1 else None,
        "tasks": rows,
    }


def main(args: Args) -> None:
    started = time.perf_counter()
    tasks = evaluation_tasks(args.env_id, args.tasks, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for k, task in enumerate(tasks):
        train_seed, eval_seed = (int(s) for s in np.random.default_rng([args.seed, RUN_SEED_STREAM, k]).integers(
            2**31, size=2))
        task_started = time.perf_counter()
        model = train(args, task, train_seed)
        train_seconds = time.perf_counter() - task_started
        returns = evaluate(model, args.env_id, task, args.eval_episodes, eval_seed, args.deterministic)
        rows.append({"task": task.to_dict(), "returns": returns, "mean_return": float(np.mean(returns)),
                     "train_seed": train_seed, "eval_seed": eval_seed, "train_seconds": train_seconds})
        print(f"task {k + 1}/{len(tasks)} {dict(task.params)}: mean return {rows[-1]['mean_return']:.1f} "
              f"over {args.eval_episodes} episodes ({train_seconds:.0f} s of training)", flush=True)
        args.out.write_text(json.dumps(report(args, rows, complete=False, started=started), indent=2) + "\n")
    result = report(args, rows, complete=True, started=started)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    stderr = "n/a (one task)" if result["stderr"] is None else f"{result['stderr']:.1f}"
    print(f"{args.env_id}, oracle over {len(rows)} tasks: mean return {result['mean_return']:.1f} +- {stderr} "
          f"(standard error); results: {args.out}")


if __name__ == "__main__":
    run_script(main, Args)
