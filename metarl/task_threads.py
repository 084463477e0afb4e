"""Run a per-task loop on several CPU threads, each task on one thread from start to end.

MAML's tasks are independent until their meta-gradients are summed. On a CPU, torch's intra-op threads
share each small convolution of one task between the cores and wait on each other at every operation; giving
each core a whole task instead (each thread with one intra-op thread) was 17-27% faster on the 2-core machine
for the Omniglot meta-step (``scripts/bench_maml.py``). The results come back in task order, so whatever is
summed from them is summed in the same order as by the plain loop.

``functional_call`` swaps a module's parameters while it runs, which two threads must not do to one module: each
thread calls its own structural copy of the module, made afresh for each :meth:`TaskThreads.map` (so it has the
module's current attributes) and holding the module's own parameter and buffer tensors, not copies.
"""

from __future__ import annotations

import copy
import itertools
import queue
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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


def default_task_threads(device: torch.device) -> int:
    """Threads for a per-task loop: torch's intra-op thread count on a CPU (one task per thread), else 1."""
    if device.type != "cpu" or not threads_are_per_thread():
        return 1
    return torch.get_num_threads()


class TaskThreads:
    """Maps a function of ``(module, task index)`` over tasks, on ``threads`` threads (1: in the calling thread)."""

    def __init__(self, module: nn.Module, threads: int) -> None:
        if threads < 1:
            raise ValueError(f"need at least one task thread, got {threads}")
        if threads > 1 and not threads_are_per_thread():
            raise ValueError("task threads need torch's OpenMP backend, where each thread sets its own thread count; "
                             f"this torch has: {torch.__config__.parallel_info()}")
        self.module = module
        self.threads = threads
        self._pool = (ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,),
                                         thread_name_prefix="metarl-task") if threads > 1 else None)

    def map(self, fn: Callable[[nn.Module, int], Result], count: int) -> Iterator[Result]:
        """``fn(module, 0), ..., fn(module, count - 1)`` in that order, each as soon as it and those before it are
        done; ``module`` may be a copy sharing the tensors. With one thread each runs when the next is asked for."""
        if self._pool is None:
            return (fn(self.module, task) for task in range(count))
        copies: queue.SimpleQueue[nn.Module] = queue.SimpleQueue()
        for _ in range(min(self.threads, count)):
            copies.put(self._structural_copy())

        def run(task: int) -> Result:
            module = copies.get()
            try:
                return fn(module, task)
            finally:
                copies.put(module)

        return self._pool.map(run, range(count))

    def _structural_copy(self) -> nn.Module:
        tensors = itertools.chain(self.module.parameters(), self.module.buffers())
        return copy.deepcopy(self.module, memo={id(tensor): tensor for tensor in tensors})
