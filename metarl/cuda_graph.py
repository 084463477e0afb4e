"""A training step recorded once as a CUDA graph and replayed: the host launches one graph instead of each kernel.

A second-order MAML meta-step over a meta-batch is hundreds of small kernels, each dispatched through
``torch.func``'s layers in Python, so on a fast GPU the host, not the device, sets the pace. A CUDA graph
records the kernels of one call and replays them with new inputs for the price of one launch
(https://pytorch.org/docs/stable/notes/cuda.html#cuda-graphs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch
from torch import Tensor

Step = Callable[..., tuple[Tensor, ...]]

GraphSetting = Literal["auto", "off"]
"""Whether a training step is recorded as a CUDA graph: ``auto`` wherever it can be (each learner's rule), or never."""
GRAPH_SETTINGS: tuple[str, ...] = get_args(GraphSetting)

WARMUP_CALLS = 3
"""Eager calls before the recording, as in PyTorch's whole-network capture example."""


class GraphedStep:
    """``step(*inputs) -> outputs`` recorded as a CUDA graph on its ``warmup + 1``-th call and replayed after that.

    ``step`` takes and returns CUDA tensors and must not synchronise with the host (no ``.item()``); an
    optimiser it steps must be built with ``capturable=True``. Every call is a real step on its own inputs:
    the first ``warmup`` calls run eagerly on a side stream (CUDA libraries and the optimiser's state are
    created lazily, and must exist before recording), the next one is recorded and then replayed, and later
    ones copy their inputs into the recorded ones and replay. The outputs of a replay are the recorded output
    tensors, overwritten by the next call: read them before calling again. The inputs' shapes and dtypes must
    stay those of the recorded call.
    """

    def __init__(self, step: Step, warmup: int = WARMUP_CALLS) -> None:
        if warmup < 1:
            raise ValueError(f"a CUDA graph needs at least one eager warm-up call before recording, got warmup={warmup}")
        self.step, self.warmup = step, warmup
        self.eager_calls = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._inputs: tuple[Tensor, ...] = ()
        self._outputs: tuple[Tensor, ...] = ()

    @property
    def recorded(self) -> bool:
        """Whether the graph has been recorded (later calls replay it)."""
        return self._graph is not None

    def __call__(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        if any(not t.is_cuda for t in inputs):
            raise ValueError("a CUDA graph's inputs must be CUDA tensors")
        if self.eager_calls < self.warmup:
            self.eager_calls += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                outputs = self.step(*inputs)
            torch.cuda.current_stream().wait_stream(side)
            return outputs
        if self._graph is None:  # kept only once recorded: a failed recording leaves nothing half-made behind
            recorded_inputs, graph = tuple(t.clone() for t in inputs), torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                outputs = self.step(*recorded_inputs)
            self._graph, self._inputs, self._outputs = graph, recorded_inputs, outputs
        else:
            pairs = list(zip(self._inputs, inputs, strict=True))
            for recorded, new in pairs:
                if new.shape != recorded.shape or new.dtype != recorded.dtype:
                    raise ValueError(f"a CUDA graph replays the recorded shapes: got an input of {tuple(new.shape)} "
                                     f"{new.dtype} where {tuple(recorded.shape)} {recorded.dtype} was recorded "
                                     "(for batches whose shapes change, turn the CUDA graph off)")
            for recorded, new in pairs:
                recorded.copy_(new, non_blocking=True)
        self._graph.replay()
        return self._outputs
