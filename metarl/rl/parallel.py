"""Worker processes that step shares of a vector environment's lanes.

:class:`WorkerPool` is the mechanism: processes that each build one object and run its methods on request,
with errors and deaths reported to the parent. :class:`ShardedVectorEnv` is a gymnasium vector environment
built on it (the Ant tasks' own vector class, :mod:`envs.locomotion_vector`, uses the pool for its physics).

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
from collections.abc import Callable, Sequence
from copy import deepcopy
from multiprocessing.connection import Connection
from typing import Any, NoReturn, Protocol

import gymnasium
import numpy as np
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

from metarl.choices import check_choice

START_METHODS = ("spawn", "forkserver")
_CLOSE_TIMEOUT_S = 10.0


class WorkerDiedError(RuntimeError):
    """A worker process exited; its pool (and the vector environment that owns it) is closed."""


class Served(Protocol):
    """What a :class:`WorkerPool` worker builds: its public methods answer the parent's requests."""

    def close(self) -> None: ...


class WorkerPool:
    """``len(args)`` processes, worker ``k`` holding ``factory(*args[k])``: :meth:`ask_all` calls a method of
    each worker's object with that worker's arguments and returns the results in worker order.

    ``factory`` (a class or a module-level function, so that ``spawn`` can pickle it) runs in the worker.
    An exception raised there is raised again here with the worker's traceback as its cause, and the worker
    carries on; a worker that dies raises :class:`WorkerDiedError` and closes the pool. ``labels[k]`` names
    what worker ``k`` holds (e.g. ``"lanes 0..9"``) in those messages, and ``owner`` the object the pool
    serves. Workers ignore Ctrl-C: the parent decides when they stop (:meth:`close`).
    """

    def __init__(self, factory: Callable[..., Served], args: Sequence[tuple[Any, ...]], *, owner: str,
                 labels: Sequence[str], start_method: str = "spawn") -> None:
        check_choice("start_method", start_method, START_METHODS)
        self.owner, self.labels, self.closed = owner, list(labels), False
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self._connections: list[Connection] = []
        context = multiprocessing.get_context(start_method)
        for index, worker_args in enumerate(args):
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child, factory, worker_args),
                                      name=f"{owner}-{index}", daemon=True)
            process.start()
            child.close()  # only the worker holds its end now, so the parent sees EOF when the worker dies
            self.processes.append(process)
            self._connections.append(parent)
        try:
            self._answers("start", range(len(self.processes)))
        except BaseException:
            self.close()
            raise

    def __len__(self) -> int:
        return len(self.processes)

    def ask_all(self, method: str, args: Sequence[tuple[Any, ...]] | None = None,
                workers: Sequence[int] | None = None) -> list[Any]:
        """``method(*args[i])`` on each of ``workers`` (default: all; ``args`` default: none), their results in
        order; the first error is raised after all of them have answered, so no answer is left in a pipe."""
        workers = list(range(len(self))) if workers is None else list(workers)
        for i, k in enumerate(workers):
            self._send(k, method, () if args is None else args[i])
        return self._answers(method, workers)

    def close(self) -> None:
        """Ask every live worker to close its object, then stop it (terminate it after a timeout)."""
        if self.closed:
            return
        self.closed = True
        for connection, process in zip(self._connections, self.processes):
            if process.is_alive():
                try:
                    connection.send(("close", ()))
                    if connection.poll(_CLOSE_TIMEOUT_S):
                        connection.recv()
                except (BrokenPipeError, ConnectionResetError, EOFError):
                    pass  # the worker is already gone: nothing left to close
        for connection, process in zip(self._connections, self.processes):
            process.join(_CLOSE_TIMEOUT_S)
            if process.is_alive():
                process.terminate()
                process.join()
            connection.close()

    def _send(self, worker: int, method: str, args: tuple[Any, ...]) -> None:
        if self.closed:
            raise RuntimeError(f"{self.owner} is closed")
        try:
            self._connections[worker].send((method, args))
        except (BrokenPipeError, ConnectionResetError) as error:
            self._died(worker, method, error)

    def _answers(self, method: str, workers: Sequence[int]) -> list[Any]:
        results, first_error = [], None
        for k in workers:
            try:
                status, result = self._connections[k].recv()
            except (EOFError, ConnectionResetError) as error:
                self._died(k, method, error)
            if status == "error":
                error, trace = result
                error.__cause__ = RuntimeError(f"in worker {k} of {self.owner} ({method}):\n{trace}")
                error.__suppress_context__ = True
                first_error = first_error or error  # raised below, once every pipe is drained
            results.append(result)
        if first_error is not None:
            raise first_error
        return results

    def _died(self, worker: int, method: str, cause: BaseException) -> NoReturn:
        process = self.processes[worker]
        process.join(1.0)
        message = (f"worker {worker} (pid {process.pid}, {self.labels[worker]}) of {self.owner} died "
                   f"(exit code {process.exitcode}) during {method!r}; it is closed")
        self.close()
        raise WorkerDiedError(message) from cause


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
        reserved = sorted({"num_envs", "vectorization_mode"} & set(make_kwargs))
        if reserved:
            raise ValueError(f"ShardedVectorEnv sets {reserved} of each worker's make_vec itself; do not pass them")
        self.env_id, self.num_envs, self.workers = env_id, num_envs, workers
        self._shards = lane_shards(num_envs, workers)
        self._pool = WorkerPool(_SyncShard, [(env_id, s.stop - s.start, make_kwargs) for s in self._shards],
                                owner=repr(self), labels=[f"lanes {s.start}..{s.stop - 1}" for s in self._shards],
                                start_method=start_method)
        try:
            self.single_observation_space, self.single_action_space, metadata = self._ask("spaces")[0]
        except BaseException:
            self.close()
            raise
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = dict(metadata)
        self._shard_observation_spaces = [
            batch_space(self.single_observation_space, s.stop - s.start) for s in self._shards
        ]
        self._observations = create_empty_array(self.single_observation_space, n=num_envs, fn=np.zeros)

    @property
    def _processes(self) -> list[multiprocessing.process.BaseProcess]:
        return self._pool.processes

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every lane (or those of ``options["reset_mask"]``); seeds as in ``SyncVectorEnv.reset``."""
        seeds = self._lane_seeds(seed)
        options = dict(options) if options is not None else None
        mask = self._reset_mask(options.pop("reset_mask")) if options and "reset_mask" in options else None
        active = [k for k, shard in enumerate(self._shards) if mask is None or mask[shard].any()]
        args = [(seeds[self._shards[k]], options if mask is None else {**options, "reset_mask": mask[self._shards[k]]})
                for k in active]
        results = dict(zip(active, self._ask("reset", args, active)))
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
        # a slice keeps the actions' own dtype, which the lanes' environments see as with SyncVectorEnv
        results = self._ask("step", [(_lane_slice(self.single_action_space, actions, s),) for s in self._shards])
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
        return tuple(value for values in self._ask("call", [(name, args, kwargs)] * self.workers) for value in values)

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
        self._ask("set_attr", [(name, list(values[shard])) for shard in self._shards])

    def close_extras(self, **kwargs: Any) -> None:
        """Ask every live worker to close its environments, then stop it (terminate it after a timeout)."""
        self._pool.close()

    def __enter__(self) -> ShardedVectorEnv:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "closed", True) and hasattr(self, "_pool"):
            self.close()

    def __repr__(self) -> str:
        return f"ShardedVectorEnv({self.env_id}, num_envs={self.num_envs}, workers={self.workers})"

    def _ask(self, method: str, args: Sequence[tuple[Any, ...]] | None = None,
             workers: Sequence[int] | None = None) -> list[Any]:
        if self.closed:
            raise RuntimeError(f"{self!r} is closed")
        try:
            return self._pool.ask_all(method, args, workers)
        except WorkerDiedError:
            self.close()
            raise

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


def lane_shards(num_envs: int, workers: int) -> list[slice]:
    """Contiguous slices of ``num_envs`` lanes, one per worker; the first ``num_envs % workers`` one lane longer."""
    bounds = np.cumsum([0] + [len(s) for s in np.array_split(np.arange(num_envs), workers)])
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def _serve(connection: Connection, factory: Callable[..., Served], args: tuple[Any, ...]) -> None:
    """A worker's loop: build ``factory(*args)``, then run the methods the parent asks for until ``close``
    or the parent's exit.

    Ctrl-C reaches every process of the terminal's group; the workers ignore it and let the parent decide
    (it finishes the step, saves a checkpoint, then closes them).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        served = factory(*args)
    except Exception as error:  # noqa: BLE001 - reported to the parent, which raises it
        _send_error(connection, error)
        connection.close()
        return
    try:
        connection.send(("ok", None))
        while (message := connection.recv())[0] != "close":
            method, method_args = message
            try:
                result = getattr(served, method)(*method_args)
            except Exception as error:  # noqa: BLE001 - reported to the parent, which raises it; the worker carries on
                _send_error(connection, error)
            else:
                connection.send(("ok", result))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return  # the parent is gone or interrupted: exit quietly, it reports what happened
    finally:
        served.close()
    connection.send(("ok", None))


def _send_error(connection: Connection, error: Exception) -> None:
    trace = traceback.format_exc()
    try:
        connection.send(("error", (error, trace)))
    except Exception:  # noqa: BLE001 - the exception does not pickle: send its type and message instead
        connection.send(("error", (RuntimeError(f"{type(error).__name__}: {error}"), trace)))


class _SyncShard:
    """A :class:`ShardedVectorEnv` worker's share: ``gymnasium.make_vec(env_id, num_envs, "sync")``."""

    def __init__(self, env_id: str, num_envs: int, make_kwargs: dict[str, Any]) -> None:
        self.env = gymnasium.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync", **make_kwargs)

    def spaces(self) -> tuple[Any, Any, dict[str, Any]]:
        return self.env.single_observation_space, self.env.single_action_space, self.env.metadata

    def reset(self, seeds: np.ndarray, options: dict[str, Any] | None) -> Any:
        return self.env.reset(seed=list(seeds), options=options)

    def step(self, actions: Any) -> Any:
        return self.env.step(actions)

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.env.call(name, *args, **kwargs)

    def set_attr(self, name: str, values: list[Any]) -> None:
        self.env.set_attr(name, values)

    def close(self) -> None:
        self.env.close()


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
