"""Data-parallel meta-training over the processes that ``torchrun`` starts (one or several machines).

Every process (rank) draws the same meta-batch from the same seeded generator and keeps a contiguous share
of its tasks (:func:`task_shard`). What a rank computes on its share (a mean over its tasks) is weighted by
the share's fraction of the meta-batch, so that the sum over ranks (``all_reduce``) is the single-process
mean: every rank then holds the same meta-gradient and takes the same step.

Without torchrun (no ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in the environment) there is one rank
and every function here returns at once, so scripts run unchanged. Under torchrun the process group is
created on first use: gloo for tensors on the CPU and, when every process of a machine has a GPU of its own
(``cuda:LOCAL_RANK``), NCCL for CUDA tensors (``"cpu:gloo,cuda:nccl"``).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

T = TypeVar("T")

_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched() -> bool:
    """Whether torchrun (or a launcher setting the same variables) started this process."""
    return all(name in os.environ for name in _TORCHRUN_VARIABLES)


def world_size() -> int:
    """Processes taking part in training (1 without torchrun)."""
    return int(os.environ["WORLD_SIZE"]) if launched() else 1


def rank() -> int:
    """This process's index among all processes, 0 to ``world_size() - 1``."""
    return int(os.environ["RANK"]) if launched() else 0


def local_rank() -> int:
    """This process's index among the processes on its machine (its GPU's index)."""
    return int(os.environ["LOCAL_RANK"]) if launched() else 0


def is_main() -> bool:
    """Whether this is rank 0, the one that writes the run folder."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """Under torchrun, ``cuda`` without an index is this process's own GPU (``cuda:LOCAL_RANK``)."""
    if device.type != "cuda" or device.index is not None or not launched():
        return device
    if local_rank() >= torch.cuda.device_count():
        raise ValueError(f"torchrun started a process with LOCAL_RANK={local_rank()} but this machine has "
                         f"{torch.cuda.device_count()} GPU(s); use --nproc_per_node={torch.cuda.device_count()} "
                         "or fewer")
    _process_group()  # before any CUDA work, so NCCL binds this process to its own GPU
    return torch.device("cuda", local_rank())


def _process_group() -> None:
    """Join torchrun's process group (once; the launcher's environment gives the rendezvous)."""
    if dist.is_initialized():
        return
    # NCCL only when every process of this machine has a GPU of its own; otherwise (CPU training on a machine
    # with fewer GPUs than processes) all use gloo, and no process claims a GPU it does not have.
    processes_here = int(os.environ.get("LOCAL_WORLD_SIZE", world_size()))
    cuda = dist.is_nccl_available() and torch.cuda.is_available() and torch.cuda.device_count() >= processes_here
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo")
    atexit.register(dist.destroy_process_group)


@dataclass(frozen=True)
class Shard:
    """Tasks ``start`` to ``stop`` (excluded) of a meta-batch of ``total`` tasks: one rank's share."""

    start: int
    stop: int
    total: int

    @property
    def slice(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def weight(self) -> float:
        """The share's fraction of the meta-batch: a mean over the share times this, summed over the ranks,
        is the mean over the meta-batch."""
        return self.size / self.total


def task_shard(total: int, allow_empty: bool = False) -> Shard:
    """This rank's contiguous share of ``total`` tasks; shares differ in size by at most one task.

    A rank with no task has nothing to train on, so that is an error unless ``allow_empty`` (evaluation,
    whose last chunk of tasks may be smaller than the number of ranks).
    """
    size, index = world_size(), rank()
    if total < size and not allow_empty:
        raise ValueError(f"a meta-batch of {total} tasks cannot be split over {size} processes; use a "
                         f"--meta-batch-size of at least {size} or fewer processes")
    return Shard(index * total // size, (index + 1) * total // size, total)


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum ``tensor`` over the ranks, in place; returns it."""
    if world_size() > 1:
        _process_group()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_gradients(parameters: Iterable[Tensor], weight: float) -> None:
    """Make each parameter's ``.grad`` (a mean over this rank's tasks) the mean over the whole meta-batch:
    ``weight`` (the share's fraction, :attr:`Shard.weight`) times it, summed over the ranks.

    The gradients travel as one flat tensor (one collective per step). A parameter without a gradient
    counts as a zero gradient, so that every rank sends the same layout.
    """
    if world_size() == 1:
        return
    parameters = list(parameters)
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in parameters])
    all_reduce_sum(flat.mul_(weight))
    for p, chunk in zip(parameters, flat.split([p.numel() for p in parameters])):
        p.grad = chunk.view_as(p)


def mean_metrics(metrics: dict[str, float], weight: float) -> dict[str, float]:
    """The meta-batch's values of metrics measured on this rank's share (``weight`` its fraction): means over
    the share are combined into the mean over the meta-batch, and ``perf/`` rates (per second) are summed,
    giving the throughput of all processes together."""
    if world_size() == 1:
        return metrics
    names = list(metrics)
    values = torch.tensor([metrics[n] * (1.0 if n.startswith("perf/") else weight) for n in names],
                          dtype=torch.float64)
    return dict(zip(names, all_reduce_sum(values).tolist()))


def gather_over_tasks(compute: Callable[[slice], Tensor], total: int) -> Tensor:
    """``compute(part)`` (rows on the CPU, one per task of ``part``) on this rank's share of ``total`` tasks;
    the rows of every rank concatenated in task order, as one process gets them from
    ``compute(slice(0, total))``."""
    shard = task_shard(total, allow_empty=True)
    if world_size() == 1:
        return compute(shard.slice)
    _process_group()
    local = compute(shard.slice) if shard.size else None
    parts: list[Tensor | None] = [None] * world_size()
    dist.all_gather_object(parts, local)
    return torch.cat([part for part in parts if part is not None])


def from_main(make: Callable[[], T]) -> T:
    """``make()`` run on rank 0 only, its result sent to every rank (e.g. a checkpoint that only rank 0's
    machine holds). The result must be picklable; keep its tensors on the CPU."""
    if world_size() == 1:
        return make()
    _process_group()
    box = [make() if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on some rank (a Ctrl-C that reached only some processes, say), so that
    every rank takes the same branch."""
    if world_size() == 1:
        return flag
    return all_reduce_sum(torch.tensor([float(flag)])).item() > 0
