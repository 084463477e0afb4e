"""Meta-reinforcement learning: lock-step trajectory sampling, advantages, TRPO, MAML-TRPO and the oracle's input."""

from metarl.rl.maml_trpo import MAMLTRPO, MAMLTRPOConfig, RLBatch
from metarl.rl.parallel import ShardedVectorEnv
from metarl.rl.sampler import Trajectories, TrajectorySampler
from metarl.rl.task_observation import TaskInObservation, task_features

__all__ = ["MAMLTRPO", "MAMLTRPOConfig", "RLBatch", "ShardedVectorEnv", "TaskInObservation", "Trajectories",
           "TrajectorySampler", "task_features"]
