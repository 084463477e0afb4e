"""A MAML-TRPO run on a task-distribution environment: build it from JSON, train it, evaluate it.

Environments are named by gymnasium id. ``metarl`` never imports ``envs``; gymnasium's
``"module:namespace/Name-v0"`` form imports the module that registers the id, so the scripts pass
``"envs:metarl/HalfCheetahVel-v0"`` and a user's own ``"mypackage:mine/MyTask-v0"`` works the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import gymnasium
import numpy as np
import torch
from matplotlib.figure import Figure

from metarl import distributed
from metarl.evaluate import EvalResult
from metarl.models import GaussianMLPPolicy
from metarl.paper_results import run_key
from metarl.plots import FigureHook, navigation_figure
from metarl.rl.maml_trpo import MAMLTRPO, MAMLTRPOConfig, RLBatch
from metarl.rl.parallel import ShardedVectorEnv
from metarl.rl.rollouts import trajectory_stages
from metarl.rl.sampler import Sampling, TrajectorySampler
from metarl.rl.task_observation import TaskInObservation, task_features
from metarl.script import run_script
from metarl.tasks import TaskDistribution
from metarl.train import TrainConfig, Trainer, reload_run, resolve_device, train_and_evaluate

NAVIGATION_GOALS, NAVIGATION_EPISODES = 4, 2
"""Goals and paths per stage in the Navigation2D trajectory figure."""


@dataclass
class RLConfig:
    """Everything that defines a MAML-TRPO run; saved as the run's ``config.json``."""

    env_id: str
    """gymnasium id of the task-distribution environment, e.g. ``envs:metarl/Navigation2D-v0``."""
    horizon: int
    """Steps per episode (the paper: 100 for navigation, 200 for the MuJoCo tasks)."""
    maml: MAMLTRPOConfig = field(default_factory=MAMLTRPOConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    vectorization_mode: str | None = None
    """gymnasium.make_vec's mode: None (the env's own vector class if it has one, else sync), sync or async."""
    workers: int = 1
    """Processes that step the lanes (metarl.rl.ShardedVectorEnv, each with gymnasium's SyncVectorEnv) when > 1;
    the MuJoCo tasks' own vector classes (the default, on all cores) are faster."""
    oracle: bool = False
    """Show the policy each task's parameters, appended to every observation (metarl.rl.TaskInObservation). With
    ``--inner-steps 0`` this is the paper's oracle baseline: one policy told the task, trained on all tasks."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.workers > 1 and self.vectorization_mode is not None:
            raise ValueError("--workers > 1 steps sync vector envs in worker processes; leave vectorization_mode unset")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RLConfig:
        """The run's configuration; settings added since a run began take the values it ran with (no oracle,
        ``nn.Linear``'s default initial weights)."""
        return cls(env_id=data["env_id"], horizon=data["horizon"],
                   maml=MAMLTRPOConfig(**{"policy_init": "torch", **data["maml"]}),
                   train=TrainConfig(**data["train"]), vectorization_mode=data["vectorization_mode"],
                   workers=data["workers"], oracle=data.get("oracle", False))


def _make_env(env_id: str) -> gymnasium.Env:
    """``gymnasium.make(env_id)``; an unknown id is a ``ValueError`` that lists the ``metarl/`` ids registered."""
    try:
        return gymnasium.make(env_id)
    except (gymnasium.error.UnregisteredEnv, ModuleNotFoundError) as error:
        known = sorted(name for name in gymnasium.registry if name.startswith("metarl/"))
        listed = f"the registered task environments are envs:{', envs:'.join(known)}" if known else \
            "write the id with the module that registers it, e.g. envs:metarl/Navigation2D-v0"
        raise ValueError(f"unknown environment id {env_id!r} ({' '.join(str(error).split())}); {listed}") from None


class RLExperiment:
    """The policy, the sampler, the learner and the evaluation protocol of one configuration."""

    def __init__(self, config: RLConfig) -> None:
        if config.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {config.horizon}")
        self.config = config
        self.device = resolve_device(config.train.device)
        if self.device.type == "cuda":
            # The policy and the learner run on the GPU: torch's CPU threads would only compete with the
            # environment's workers for the cores (bench_sampler, AntVel, 16 cores of an H200 machine: 35,040
            # env steps/s with 16 torch threads, 56,130 with OMP_NUM_THREADS=1).
            torch.set_num_threads(1)
        probe = _make_env(config.env_id)
        self.tasks = probe.unwrapped
        if not isinstance(self.tasks, TaskDistribution):
            raise ValueError(f"{config.env_id} is not a task distribution: its env has no sample_tasks(n, rng)")
        observation_size, action_size = probe.observation_space.shape[0], probe.action_space.shape[0]
        if config.oracle:
            observation_size += task_features(self.tasks.get_task()).size
        probe.close()
        torch.manual_seed(config.train.seed)
        policy = GaussianMLPPolicy(observation_size, action_size, config.maml.hidden, activation=config.maml.activation,
                                   init=config.maml.policy_init)
        sampler = TrajectorySampler(self._make_vector_env, policy, config.maml.episodes_per_task, config.horizon,
                                    self.device, config.maml.sampling)
        self.learner = MAMLTRPO(policy, sampler, config.maml, self.device)

    def _make_vector_env(self, lanes: int) -> gymnasium.vector.VectorEnv:
        if self.config.workers > 1:
            env = ShardedVectorEnv(self.config.env_id, lanes, workers=self.config.workers)
        else:
            env = gymnasium.make_vec(self.config.env_id, num_envs=lanes,
                                     vectorization_mode=self.config.vectorization_mode)
        return TaskInObservation(env) if self.config.oracle else env

    def sample_batch(self, rng: np.random.Generator) -> RLBatch:
        return RLBatch(self.tasks.sample_tasks(self.config.train.meta_batch_size, rng), int(rng.integers(2**31)))

    def evaluate(self, tasks: int, steps: int | None = None, seed: int | None = None,
                 step_sizes: Sequence[float] | None = None) -> EvalResult:
        """Mean episode return on ``tasks`` test tasks after 0..steps adaptation steps, from a fixed seed.

        The run's own seed draws its test tasks; another seed draws other tasks (tuning tasks, for choosing
        ``step_sizes``, which replace the run's evaluation schedule: see :meth:`MAMLTRPO.evaluate`)."""
        if tasks < 1:
            raise ValueError(f"tasks must be >= 1, got {tasks}")
        step_sizes = self.learner.evaluation_step_sizes(steps, step_sizes)
        seed = self.config.train.seed if seed is None else seed
        rng = np.random.default_rng([seed, 2])
        size = self.config.train.meta_batch_size
        values = [self.learner.evaluate(RLBatch(self.tasks.sample_tasks(min(size, tasks - start), rng),
                                                int(rng.integers(2**31))), step_sizes=step_sizes)
                  for start in range(0, tasks, size)]
        protocol = {"env_id": self.config.env_id, "horizon": self.config.horizon, "seed": seed,
                    "episodes_per_task": self.config.maml.eval_episodes_per_task,
                    "sampling": self.config.maml.sampling, "step_sizes": step_sizes}
        return EvalResult.from_values("return", torch.cat(values).numpy().astype(np.float64), protocol)

    def trajectories_figure(self) -> Figure:
        """Navigation2D: the paths of the policy before and after adaptation for four fixed test goals."""
        tasks = self.tasks.sample_tasks(NAVIGATION_GOALS, np.random.default_rng([self.config.train.seed, 3]))
        stages = trajectory_stages(self.learner, tasks, self.config.maml.eval_inner_steps)
        return navigation_figure(stages, NAVIGATION_EPISODES)

    def _figures(self) -> FigureHook | None:
        """For Navigation2D, :meth:`trajectories_figure` in TensorBoard at every evaluation (``eval/trajectories``).

        Not under torchrun: only rank 0 draws figures, and adapting samples with every rank.
        """
        if run_key(self.config.to_json())["task"] != "Navigation2D" or distributed.world_size() > 1:
            return None
        return lambda step, result: {"eval/trajectories": self.trajectories_figure()}

    def trainer(self) -> Trainer:
        return Trainer(self.learner, sample_batch=self.sample_batch,
                       evaluate=lambda tasks: self.evaluate(tasks, seed=self.config.train.seed + 1),
                       train=self.config.train, run_config=self.config.to_json(), figures=self._figures(),
                       read_config=lambda saved: RLConfig.from_json(saved).to_json())


def run_maml_trpo(config: RLConfig) -> tuple[RLExperiment, EvalResult | None, EvalResult]:
    """Train, then evaluate on ``final_eval_tasks`` test tasks; write ``eval.json``.

    Returns the experiment and the (untrained, trained) evaluations on the same tasks; the
    untrained one is ``None`` when a run is resumed.
    """
    experiment = RLExperiment(config)
    trainer = experiment.trainer()
    print(f"MAML-TRPO on {config.env_id}: {config.train.iterations} iterations on {experiment.device}, "
          f"{'batched (vmap)' if experiment.learner.batched else 'per-task'} path; run folder {config.train.out}")
    untrained, trained = train_and_evaluate(trainer, lambda: experiment.evaluate(config.train.final_eval_tasks))
    return experiment, untrained, trained


def load_rl_experiment(path: str | Path, device: str | None = None,
                       sampling: Sampling | None = None) -> tuple[RLExperiment, int]:
    """Rebuild a MAML-TRPO run from its folder (or its ``checkpoint.pt``) with the trained policy; ``sampling``
    replaces the run's own (to evaluate under the other protocol)."""
    def build(config: RLConfig) -> RLExperiment:
        if sampling is not None:
            config.maml = replace(config.maml, sampling=sampling)
        return RLExperiment(config)

    return reload_run(path, MAMLTRPO.method, RLConfig.from_json, build, device)


def locomotion_config(env_id: str, out: str) -> RLConfig:
    """The paper's settings for the MuJoCo locomotion tasks (cbfinn/maml_rl cluster_maml_trpo_cheetah.py):
    horizon 200, meta-batch 40, 20 episodes per task, 1000 iterations; a short periodic evaluation
    (10 tasks) because each costs a lot of simulation, and the final one on 40 tasks."""
    return RLConfig(env_id=env_id, horizon=200, train=TrainConfig(
        out=out, iterations=1000, meta_batch_size=40, log_every=1, eval_every=50, eval_tasks=10,
        final_eval_tasks=40, checkpoint_every=5))


def train_from_command_line(defaults: RLConfig, description: str | None = None) -> NoReturn:
    """The body of every ``scripts/train_<env>.py``: parse flags over ``defaults``, train, report; a user's
    mistake ends it with a one-line error (:func:`metarl.script.run_script`)."""
    run_script(_train_and_report, RLConfig, default=defaults, description=description)


def _train_and_report(config: RLConfig) -> None:
    experiment, untrained, trained = run_maml_trpo(config)
    experiment.learner.sampler.close()  # stops --workers processes
    print(f"{config.env_id}, {trained.tasks} test tasks, mean return +- standard error:")
    for label, result in (("untrained", untrained), ("trained", trained)):
        if result is not None:
            steps = ", ".join(f"{m:.1f} +- {s:.1f}" for m, s in zip(result.mean, result.stderr))
            print(f"  {label:9s} after 0..{result.steps[-1]} steps: {steps}")
    print(f"evaluation written to {config.train.out}/eval.json; TensorBoard: tensorboard --logdir {config.train.out}")
