"""Task-distribution gymnasium environments for meta-reinforcement learning (MAML, Finn et al. 2017, 5.3).

Importing ``envs`` registers ``metarl/Navigation2D-v0``, ``metarl/HalfCheetahVel-v0``,
``metarl/HalfCheetahDir-v0``, ``metarl/AntVel-v0``, ``metarl/AntDir-v0`` and ``metarl/AntGoal-v0``, and the
Ant tasks with rllab's Ant dynamics as ``-v1`` (:func:`envs.locomotion.use_rllab_ant_dynamics`), with
gymnasium; ``gymnasium.make("envs:metarl/AntVel-v0")`` imports it on the way. Every environment is a
:class:`TaskEnv`: ``sample_tasks(n, rng)``, ``set_task(task)``, ``get_task()`` and a ``task`` attribute.
"""

from envs.base import DEFAULT_TASK_SEED, TaskEnv
from envs.checks import check_task_env
from envs.locomotion import AntDirEnv, AntGoalEnv, AntVelEnv, HalfCheetahDirEnv, HalfCheetahVelEnv
from envs.navigation import Navigation2DEnv, Navigation2DVectorEnv
from envs.registration import METARL_ENVS, register_task_env

__all__ = [
    "DEFAULT_TASK_SEED",
    "METARL_ENVS",
    "AntDirEnv",
    "AntGoalEnv",
    "AntVelEnv",
    "HalfCheetahDirEnv",
    "HalfCheetahVelEnv",
    "Navigation2DEnv",
    "Navigation2DVectorEnv",
    "TaskEnv",
    "check_task_env",
    "register_task_env",
]
