"""Meta-reinforcement learning: lock-step trajectory sampling, advantages, TRPO and MAML-TRPO."""

from metarl.rl.maml_trpo import MAMLTRPO, MAMLTRPOConfig, RLBatch
from metarl.rl.parallel import ShardedVectorEnv
from metarl.rl.sampler import Trajectories, TrajectorySampler

__all__ = ["MAMLTRPO", "MAMLTRPOConfig", "RLBatch", "ShardedVectorEnv", "Trajectories", "TrajectorySampler"]
