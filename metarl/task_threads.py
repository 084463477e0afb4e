"""Run a per-task loop on several CPU threads, each task on one thread from start to end.

Meta-learning's tasks are independent until their gradients are summed. On a CPU, torch's intra-op threads
share each small operation of one task between the cores and wait on each other at every one; giving each core
a whole task instead (each thread with one intra-op thread) took MAML's Omniglot meta-step (second order, one
inner step, 32 tasks) from 2.53 to 2.10 s on the 2-core machine, alternating the two in one process. The results
come back in task order, so whatever is summed from them is summed in the same order as by the plain loop.

``functional_call`` swaps a module's parameters while it runs, which two threads must not do to one module: work
that runs a module (:meth:`TaskThreads.map_with_copies`) gets, on each thread, a structural copy of it made afresh
for the call (so it has the module's current attributes) and holding the module's own parameter and buffer
tensors, not copies. Work that only differentiates graphs built beforehand (:meth:`TaskThreads.map`) needs none.
"""

from __future__ import annotations

import copy
import itertools
import queue
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

import torch
from torch import nn

Result = TypeVar("Result")


def threads_are_per_thread() -> bool:
    """Whether ``torch.set_num_threads`` in one thread leaves the others' thread counts alone.

    True for torch's OpenMP backend (the Linux and Windows builds), where the count is OpenMP's per-thread
    setting; a build with another backend has one process-wide count, which a worker must not lower.
    """
    return "ATen parallel backend: OpenMP" in torch.__config__.parallel_info()


def check_task_threads(value: int) -> None:
    """Refuse a ``task_threads`` setting below 0 (0 picks, see :func:`task_threads_for`)."""
    if value < 0:
        raise ValueError(f"task_threads must be >= 0 (0 picks), got {value}")


def task_threads_for(requested: int, per_task: bool, device: torch.device) -> int:
    """The threads a learner's per-task loop gets: ``requested``, or for 0 torch's intra-op thread count on a
    CPU (one task per thread) and 1 elsewhere; more than one only for the per-task path on a CPU."""
    if requested > 1 and not (per_task and device.type == "cpu"):
        raise ValueError(f"task_threads={requested} needs the per-task path on a CPU; this learner has the "
                         f"{'per-task' if per_task else 'batched'} path on {device}")
    if requested > 0:
        return requested
    if not per_task or device.type != "cpu" or not threads_are_per_thread():
        return 1
    return torch.get_num_threads()


class TaskThreads:
    """Maps a function over task indices on ``threads`` threads (1: in the calling thread)."""

    def __init__(self, threads: int) -> None:
        if threads < 1:
            raise ValueError(f"need at least one task thread, got {threads}")
        if threads > 1 and not threads_are_per_thread():
            raise ValueError("task threads need torch's OpenMP backend, where each thread sets its own thread count; "
                             f"this torch has: {torch.__config__.parallel_info()}")
        self.threads = threads
        self._pool = (ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,),
                                         thread_name_prefix="metarl-task") if threads > 1 else None)

    def map(self, fn: Callable[[int], Result], count: int) -> Iterator[Result]:
        """``fn(0), ..., fn(count - 1)`` in that order, each as soon as it and those before it are done; with one
        thread each runs when the next is asked for."""
        if self._pool is None:
            return (fn(task) for task in range(count))
        return self._pool.map(fn, range(count))

    def map_with_copies(self, module: nn.Module, fn: Callable[[nn.Module, int], Result],
                        count: int) -> Iterator[Result]:
        """:meth:`map` of ``fn(module, task)`` for work that runs ``module``: each thread gets its own structural
        copy, sharing the module's tensors (one thread: the module itself)."""
        if self._pool is None:
            return self.map(partial(fn, module), count)
        copies: queue.SimpleQueue[nn.Module] = queue.SimpleQueue()
        tensors = {id(tensor): tensor for tensor in itertools.chain(module.parameters(), module.buffers())}
        for _ in range(min(self.threads, count)):
            copies.put(copy.deepcopy(module, memo=dict(tensors)))

        def run(task: int) -> Result:
            copied = copies.get()
            try:
                return fn(copied, task)
            finally:
                copies.put(copied)

        return self.map(run, count)
