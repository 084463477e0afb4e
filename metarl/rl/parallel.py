"""A gymnasium vector environment whose lanes are stepped by worker processes, a share each.

:class:`ShardedVectorEnv` splits ``num_envs`` lanes into ``workers`` contiguous shards; each worker process
holds ``gymnasium.make_vec(env_id, num_envs=share, vectorization_mode="sync")`` and steps its shard, so one
batched step costs the slowest shard instead of all lanes. Each worker's ``SyncVectorEnv`` does the
resetting (next-step autoreset), seeding and ``info`` batching, and the shards' results are concatenated
in lane order: for the same seeds, tasks and actions the results equal those of one
``gymnasium.make_vec(env_id, num_envs, vectorization_mode="sync")``.

Unlike gymnasium's ``AsyncVectorEnv`` (one process per lane), a worker carries many lanes, which keeps the
inter-process traffic to one message per worker and step. Workers are started with ``spawn`` or
``forkserver``, never ``fork`` (the parent may hold torch threads), so they import the environment by its
id: pass ``"module:namespace/Name-v0"`` (e.g. ``"envs:metarl/HalfCheetahVel-v0"``) when the id is
registered by a module that the workers would not otherwise import, and guard a script's entry point with
``if __name__ == "__main__":``.
"""

from __future__ import annotations

import itertools
import multiprocessing
import signal
import traceback
from collections.abc import Sequence
from copy import deepcopy
from multiprocessing.connection import Connection
from typing import Any, NoReturn

import gymnasium
import numpy as np
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

START_METHODS = ("spawn", "forkserver")
_CLOSE_TIMEOUT_S = 10.0


class WorkerDiedError(RuntimeError):
    """A worker process of a :class:`ShardedVectorEnv` exited; the vector environment is closed."""


class ShardedVectorEnv(VectorEnv):
    """``num_envs`` lanes of ``env_id`` stepped by ``workers`` processes, each running a ``SyncVectorEnv`` of
    its share of the lanes (the first ``num_envs % workers`` workers take one lane more).

    ``make_kwargs`` go to every worker's ``gymnasium.make_vec`` (environment arguments such as
    ``frame_skip=5``, or ``vector_kwargs``). ``reset(seed=s)`` seeds lane ``i`` with ``s + i``, as
    ``SyncVectorEnv`` does; ``set_attr(name, values)`` takes one value per lane (or one value for all) and
    hands each worker its own. An exception raised in a worker is raised again here with the worker's
    traceback as its cause; a worker that dies raises :class:`WorkerDiedError` and closes the environment.
    Call :meth:`close` (or use the environment as a context manager) to stop the workers.
    """

    def __init__(
        self, env_id: str, num_envs: int, workers: int, *, start_method: str = "spawn", **make_kwargs: Any
    ) -> None:
        if not isinstance(env_id, str):
            raise ValueError(f"env_id must be a gymnasium id string (workers make it themselves), got {env_id!r}")
        if not _is_positive_int(num_envs):
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if not _is_positive_int(workers) or workers > num_envs:
            raise ValueError(f"workers must be an integer in [1, num_envs={num_envs}], got {workers!r}")
        if start_method not in START_METHODS:
            raise ValueError(f"start_method must be one of {START_METHODS}, got {start_method!r}")
        reserved = sorted({"num_envs", "vectorization_mode"} & set(make_kwargs))
        if reserved:
            raise ValueError(f"ShardedVectorEnv sets {reserved} of each worker's make_vec itself; do not pass them")
        self.env_id, self.num_envs, self.workers = env_id, num_envs, workers
        bounds = np.cumsum([0] + [len(s) for s in np.array_split(np.arange(num_envs), workers)])
        self._shards = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._connections: list[Connection] = []
        context = multiprocessing.get_context(start_method)
        for index, shard in enumerate(self._shards):
            parent, child = context.Pipe()
            process = context.Process(
                target=_work,
                args=(child, env_id, shard.stop - shard.start, make_kwargs),
                name=f"ShardedVectorEnv-{index}",
                daemon=True,
            )
            process.start()
            child.close()  # only the worker holds its end now, so the parent sees EOF when the worker dies
            self._processes.append(process)
            self._connections.append(parent)
        try:
            spaces = self._receive_all("start")
        except BaseException:
            self.close()
            raise
        self.single_observation_space, self.single_action_space, metadata = spaces[0]
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = dict(metadata)
        self._shard_observation_spaces = [
            batch_space(self.single_observation_space, s.stop - s.start) for s in self._shards
        ]
        self._observations = create_empty_array(self.single_observation_space, n=num_envs, fn=np.zeros)

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every lane (or those of ``options["reset_mask"]``); seeds as in ``SyncVectorEnv.reset``."""
        seeds = self._lane_seeds(seed)
        options = dict(options) if options is not None else None
        mask = self._reset_mask(options.pop("reset_mask")) if options and "reset_mask" in options else None
        active = [k for k, shard in enumerate(self._shards) if mask is None or mask[shard].any()]
        for k in active:
            shard_options = options if mask is None else {**options, "reset_mask": mask[self._shards[k]]}
            self._send(k, "reset", (seeds[self._shards[k]], shard_options))
        results = dict(zip(active, self._receive_all("reset", active)))
        # lanes outside the mask keep their observation, as in SyncVectorEnv
        lanes = list(iterate(self.observation_space, deepcopy(self._observations)))
        for k, (observations, _) in results.items():
            lanes[self._shards[k]] = iterate(self._shard_observation_spaces[k], observations)
        self._observations = concatenate(self.single_observation_space, lanes, self._observations)
        infos = _merge_infos([(self._shards[k], info) for k, (_, info) in results.items()], self.num_envs)
        return deepcopy(self._observations), infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every lane with its action; lanes that ended on the previous step are reset instead."""
        given = sum(1 for _ in iterate(self.action_space, actions))
        if given != self.num_envs:
            raise ValueError(f"expected actions for {self.num_envs} lanes, got {given}")
        for k, shard in enumerate(self._shards):
            # a slice keeps the actions' own dtype, which the lanes' environments see as with SyncVectorEnv
            self._send(k, "step", (_lane_slice(self.single_action_space, actions, shard),))
        results = self._receive_all("step")
        lanes = [
            lane
            for space, (observations, *_) in zip(self._shard_observation_spaces, results)
            for lane in iterate(space, observations)
        ]
        self._observations = concatenate(self.single_observation_space, lanes, self._observations)
        rewards, terminations, truncations = (np.concatenate([r[i] for r in results]) for i in (1, 2, 3))
        infos = _merge_infos([(shard, r[4]) for shard, r in zip(self._shards, results)], self.num_envs)
        return deepcopy(self._observations), rewards, terminations, truncations, infos

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call the method ``name`` of every lane's environment (or read the attribute), in lane order."""
        for k in range(self.workers):
            self._send(k, "call", (name, args, kwargs))
        return tuple(value for values in self._receive_all("call") for value in values)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """The attribute ``name`` of every lane's environment, in lane order (through gymnasium's wrappers)."""
        return self.call(name)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        """Set the attribute ``name`` of every lane: ``values`` holds one value per lane, in lane order, or
        is a single value (neither list nor tuple) for all lanes, as in ``SyncVectorEnv.set_attr``."""
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"set_attr({name!r}) needs one value per lane: {self.num_envs}, got {len(values)}")
        for k, shard in enumerate(self._shards):
            self._send(k, "set_attr", (name, list(values[shard])))
        self._receive_all("set_attr")

    def close_extras(self, **kwargs: Any) -> None:
        """Ask every live worker to close its environments, then stop it (terminate it after a timeout)."""
        for connection, process in zip(self._connections, self._processes):
            if process.is_alive():
                try:
                    connection.send(("close", ()))
                    if connection.poll(_CLOSE_TIMEOUT_S):
                        connection.recv()
                except (BrokenPipeError, ConnectionResetError, EOFError):
                    pass  # the worker is already gone: nothing left to close
        for connection, process in zip(self._connections, self._processes):
            process.join(_CLOSE_TIMEOUT_S)
            if process.is_alive():
                process.terminate()
                process.join()
            connection.close()

    def __enter__(self) -> ShardedVectorEnv:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "closed", True) and hasattr(self, "_processes"):
            self.close()

    def __repr__(self) -> str:
        return f"ShardedVectorEnv({self.env_id}, num_envs={self.num_envs}, workers={self.workers})"

    def _lane_seeds(self, seed: int | Sequence[int | None] | None) -> np.ndarray:
        if seed is None:
            seeds: Sequence[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        elif isinstance(seed, Sequence) and len(seed) == self.num_envs:
            seeds = seed
        else:
            raise ValueError(f"seed must be None, an int or a list of {self.num_envs} seeds, got {seed!r}")
        return np.array(seeds, dtype=object)

    def _reset_mask(self, mask: Any) -> np.ndarray:
        if not isinstance(mask, np.ndarray) or mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
            raise ValueError(f"options['reset_mask'] must be a numpy bool array of shape ({self.num_envs},)")
        if not mask.any():
            raise ValueError("options['reset_mask'] must select at least one lane")
        return mask

    def _send(self, worker: int, command: str, payload: tuple[Any, ...]) -> None:
        if self.closed:
            raise RuntimeError(f"{self!r} is closed")
        try:
            self._connections[worker].send((command, payload))
        except (BrokenPipeError, ConnectionResetError) as error:
            self._worker_died(worker, command, error)

    def _receive(self, worker: int, command: str) -> Any:
        try:
            status, result = self._connections[worker].recv()
        except (EOFError, ConnectionResetError) as error:
            self._worker_died(worker, command, error)
        if status == "error":
            error, trace = result
            raise error from RuntimeError(f"in worker {worker} of {self!r} ({command}):\n{trace}")
        return result

    def _receive_all(self, command: str, workers: Sequence[int] | None = None) -> list[Any]:
        """The answers of ``workers`` (default: all); the first error is raised after all of them have
        answered, so that no answer is left in a pipe for the next command."""
        results, first_error = [], None
        for k in range(self.workers) if workers is None else workers:
            try:
                results.append(self._receive(k, command))
            except WorkerDiedError:
                raise
            except Exception as error:  # re-raised below, once every pipe is drained
                first_error = first_error or error
        if first_error is not None:
            raise first_error
        return results

    def _worker_died(self, worker: int, command: str, cause: BaseException) -> NoReturn:
        process = self._processes[worker]
        process.join(1.0)
        shard = self._shards[worker]
        message = (
            f"worker {worker} (pid {process.pid}, lanes {shard.start}..{shard.stop - 1}) of {self!r} died "
            f"(exit code {process.exitcode}) during {command!r}; the vector environment is closed"
        )
        self.close()
        raise WorkerDiedError(message) from cause


def _work(connection: Connection, env_id: str, num_envs: int, make_kwargs: dict[str, Any]) -> None:
    """A worker's loop: make its ``SyncVectorEnv``, then answer commands until ``close`` or the parent's exit.

    Ctrl-C reaches every process of the terminal's group; the workers ignore it and let the parent decide
    (it finishes the step, saves a checkpoint, then closes them).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        env = gymnasium.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync", **make_kwargs)
    except Exception as error:  # reported to the parent, which raises it
        _send_error(connection, error)
        connection.close()
        return
    try:
        connection.send(("ok", (env.single_observation_space, env.single_action_space, env.metadata)))
        while (message := connection.recv())[0] != "close":
            command, payload = message
            try:
                result = _COMMANDS[command](env, *payload)
            except Exception as error:  # reported to the parent, which raises it; the worker carries on
                _send_error(connection, error)
            else:
                connection.send(("ok", result))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return  # the parent is gone or interrupted: exit quietly, it reports what happened
    finally:
        env.close()
    connection.send(("ok", None))


def _send_error(connection: Connection, error: Exception) -> None:
    trace = traceback.format_exc()
    try:
        connection.send(("error", (error, trace)))
    except Exception:  # the exception does not pickle: send its type and message instead
        connection.send(("error", (RuntimeError(f"{type(error).__name__}: {error}"), trace)))


_COMMANDS = {
    "reset": lambda env, seeds, options: env.reset(seed=list(seeds), options=options),
    "step": lambda env, actions: env.step(actions),
    "call": lambda env, name, args, kwargs: env.call(name, *args, **kwargs),
    "set_attr": lambda env, name, values: env.set_attr(name, values),
}


def _lane_slice(space: gymnasium.Space, batch: Any, lanes: slice) -> Any:
    """The lanes ``lanes`` of a batch of ``space`` values (arrays, or the dicts and tuples of arrays of
    ``Dict`` and ``Tuple`` spaces)."""
    if isinstance(space, gymnasium.spaces.Dict):
        return {key: _lane_slice(subspace, batch[key], lanes) for key, subspace in space.spaces.items()}
    if isinstance(space, gymnasium.spaces.Tuple):
        return tuple(_lane_slice(subspace, part, lanes) for subspace, part in zip(space.spaces, batch))
    return batch[lanes]


def _merge_infos(parts: list[tuple[slice, dict[str, Any]]], num_envs: int) -> dict[str, Any]:
    """The shards' batched ``info`` dicts as one over all lanes, laid out as ``VectorEnv._add_info`` does."""
    merged: dict[str, Any] = {}
    for lanes, infos in parts:
        _merge_into(merged, infos, lanes, num_envs)
    return merged


def _merge_into(merged: dict[str, Any], infos: dict[str, Any], lanes: slice, num_envs: int) -> None:
    for key, value in infos.items():
        if isinstance(value, dict):
            _merge_into(merged.setdefault(key, {}), value, lanes, num_envs)
            continue
        if key not in merged:
            shape = (num_envs, *value.shape[1:])
            merged[key] = np.full(shape, None, dtype=object) if value.dtype == object else np.zeros(shape, value.dtype)
        merged[key][lanes] = value


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1
