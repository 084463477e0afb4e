"""Registration of task environments with gymnasium: a checked helper, and the ``metarl/*`` ids.

Importing this module (``import envs`` does) registers the six ``metarl/<Name>-v0`` ids, and
``metarl/Ant{Vel,Dir,Goal}-v1`` (the same tasks with rllab's Ant dynamics, ``dynamics="rllab"``), with string
entry points, so the environment modules load only when an environment is made. gymnasium >= 1.0 has
no entry-point plugin discovery, hence ``gymnasium.make("metarl/...")`` needs ``envs`` imported first:
``import envs`` or the module prefix of ``gymnasium.make("envs:metarl/HalfCheetahVel-v0")``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
from gymnasium.vector import VectorEnv

from envs.base import TaskEnv

_ID_RE = re.compile(r"[A-Za-z_][\w-]*/[A-Za-z_][\w.-]*-v\d+")
_ENTRY_POINT_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def register_task_env(
    id: str,
    entry_point: str | type[TaskEnv] | Callable[..., gym.Env],
    max_episode_steps: int,
    *,
    vector_entry_point: str | type[VectorEnv] | Callable[..., VectorEnv] | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> None:
    """Register a task distribution with gymnasium, so that ``gymnasium.make(id)`` builds it.

    Args:
        id: a namespaced, versioned id, ``"namespace/Name-vN"`` (e.g. ``"myns/MyTask-v0"``); bump the
            version whenever rewards, observations or the task distribution change.
        entry_point: ``"package.module:Class"`` (imported only when the environment is made), a
            :class:`TaskEnv` subclass, or a factory function returning one (checked when made, e.g.
            by :func:`envs.check_task_env`).
        max_episode_steps: the horizon; ``gymnasium.make`` truncates episodes with ``TimeLimit``.
        vector_entry_point: optionally a natively vectorised version, what ``gymnasium.make_vec(id,
            num_envs=n)`` returns; it receives ``num_envs`` and ``max_episode_steps``.
        kwargs: default constructor arguments; those given to ``gymnasium.make`` override them.

    Raises:
        ValueError: for a malformed id, an id already registered, a non-positive horizon, or an entry
            point that is not a ``module:attribute`` string, a ``TaskEnv`` subclass or a callable.
    """
    if not isinstance(id, str) or not _ID_RE.fullmatch(id):
        raise ValueError(f"a task environment id looks like 'namespace/Name-v0', got {id!r}")
    if id in gym.registry:
        raise ValueError(f"{id!r} is already registered; register a new version (e.g. '-v1') instead")
    if not isinstance(max_episode_steps, int) or isinstance(max_episode_steps, bool) or max_episode_steps < 1:
        raise ValueError(f"max_episode_steps must be a positive integer, got {max_episode_steps!r}")
    _check_entry_point("entry_point", entry_point, TaskEnv)
    if vector_entry_point is not None:
        _check_entry_point("vector_entry_point", vector_entry_point, VectorEnv)
    gym.register(
        id=id,
        entry_point=entry_point,
        max_episode_steps=max_episode_steps,
        vector_entry_point=vector_entry_point,
        kwargs=dict(kwargs or {}),
    )


def _check_entry_point(name: str, entry_point: Any, base: type) -> None:
    if isinstance(entry_point, str):
        if not _ENTRY_POINT_RE.fullmatch(entry_point):
            raise ValueError(f"{name} must look like 'package.module:Class', got {entry_point!r}")
    elif isinstance(entry_point, type):
        if not issubclass(entry_point, base):
            raise ValueError(f"{name} {entry_point.__name__} is not a subclass of {base.__name__}")
    elif not callable(entry_point):
        raise ValueError(f"{name} must be a 'module:Class' string, a class or a callable, got {entry_point!r}")


METARL_ENVS: dict[str, tuple[str, int, str | None, dict[str, Any]]] = {
    "metarl/Navigation2D-v0": (
        "envs.navigation:Navigation2DEnv",
        100,
        "envs.navigation:Navigation2DVectorEnv",
        {},
    ),
    "metarl/HalfCheetahVel-v0": (
        "envs.locomotion:HalfCheetahVelEnv",
        200,
        "envs.locomotion_vector:HalfCheetahVelVectorEnv",
        {},
    ),
    "metarl/HalfCheetahDir-v0": (
        "envs.locomotion:HalfCheetahDirEnv",
        200,
        "envs.locomotion_vector:HalfCheetahDirVectorEnv",
        {},
    ),
    **{
        f"metarl/Ant{name}-v{version}": (
            f"envs.locomotion:Ant{name}Env",
            200,
            f"envs.locomotion_vector:Ant{name}VectorEnv",
            {"dynamics": dynamics},
        )
        for name in ("Vel", "Dir", "Goal")
        for version, dynamics in ((0, "gymnasium"), (1, "rllab"))
    },
}
"""id -> (entry point, max_episode_steps, vector entry point, constructor arguments) of the environments
that ``envs`` registers."""

for _id, (_entry_point, _steps, _vector_entry_point, _kwargs) in METARL_ENVS.items():
    register_task_env(_id, _entry_point, _steps, vector_entry_point=_vector_entry_point, kwargs=_kwargs)
