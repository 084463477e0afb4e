"""Training on a task distribution with stable-baselines3: a callback that draws new tasks for the sub-envs.

The ``metarl/*`` environments train with SB3 as they are (``make_vec_env("envs:metarl/AntVel-v0")``),
on the task each sub-environment holds: a fresh environment has the distribution's default task, and
``vec_env.env_method("set_task", task, indices=[i])`` changes it. :class:`TaskResamplingCallback` does
the latter at the start of every ``every``-th rollout, drawing each sub-environment's next task from that
environment's own ``sample_tasks`` with a generator seeded by ``(seed, model.num_timesteps, i)``: the
same seed gives the same tasks at the same point of training, in this or a resumed run.

    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from envs.sb3 import TaskResamplingCallback

    vec_env = make_vec_env("envs:metarl/HalfCheetahVel-v0", n_envs=8, seed=0)
    PPO("MlpPolicy", vec_env, seed=0).learn(1_000_000, callback=TaskResamplingCallback(seed=0))

The policy does not see the task (the observations are the environment's), so this trains one policy
for the whole distribution, MAML's "pretrained" baseline, not a task-conditioned one.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from metarl.tasks import Task


class TaskResamplingCallback(BaseCallback):
    """At the start of rollouts 0, ``every``, 2 ``every``, ... of a ``learn`` call, give each sub-environment
    ``i`` the task ``env.sample_tasks(1, np.random.default_rng([seed, t, i]))[0]`` of its own distribution,
    where ``t`` is ``model.num_timesteps`` at that rollout's start, through ``env_method("set_task", ...)``.

    With ``reset=True`` (the default) the sub-environments are then reset and the model continues from
    their new first observations, so that no episode mixes two tasks (the episodes in progress are cut at
    the rollout boundary, after which the previous rollout was already bootstrapped); with ``reset=False``
    the new tasks take effect from the next step, inside the episodes in progress.

    ``tasks`` holds the tasks last applied, one per sub-environment. Off-policy algorithms start a
    "rollout" every ``train_freq`` steps (every step by default): choose ``every`` accordingly.
    """

    def __init__(self, seed: int, every: int = 1, reset: bool = True, verbose: int = 0) -> None:
        super().__init__(verbose)
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if not isinstance(every, (int, np.integer)) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be a positive integer (resample every that many rollouts), got {every!r}")
        self.seed, self.every, self.reset = int(seed), int(every), reset
        self.tasks: list[Task] = []
        self._rollouts = 0

    def _init_callback(self) -> None:
        for method in ("sample_tasks", "set_task"):
            if not self.training_env.has_attr(method):
                raise ValueError(
                    f"TaskResamplingCallback needs task environments (envs.TaskEnv: sample_tasks and set_task); "
                    f"the sub-environments of {type(self.training_env).__name__} have no {method!r}"
                )
        self._rollouts = 0

    def _on_rollout_start(self) -> None:
        rollout, self._rollouts = self._rollouts, self._rollouts + 1
        if rollout % self.every:
            return
        env, timestep = self.training_env, self.model.num_timesteps
        self.tasks = []
        for i in range(env.num_envs):
            rng = np.random.default_rng([self.seed, timestep, i])
            (task,) = env.env_method("sample_tasks", 1, rng, indices=[i])[0]
            env.env_method("set_task", task, indices=[i])
            self.tasks.append(task)
        if self.reset:
            # what BaseAlgorithm._setup_learn does before the first rollout
            self.model._last_obs = env.reset()
            self.model._last_episode_starts = np.ones((env.num_envs,), dtype=bool)
            if self.model._vec_normalize_env is not None:
                self.model._last_original_obs = self.model._vec_normalize_env.get_original_obs()
        if self.verbose >= 1:
            print(f"TaskResamplingCallback at step {timestep}: {[task.to_dict()['params'] for task in self.tasks]}")

    def _on_step(self) -> bool:
        return True
