"""Parameters as dicts and the differentiable inner loop that every MAML variant shares.

A model's parameters travel as a ``dict[str, Tensor]`` and the model is run with
``torch.func.functional_call``, so an adapted set of parameters is just another dict. The inner loop
(:func:`adapt`) uses ``torch.func.grad``, which composes both with ``vmap`` (the batched path over a
meta-batch of tasks) and with ordinary autograd (second-order meta-gradients).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn
from torch.func import functional_call, grad

Params = dict[str, Tensor]
LearningRate = float | Mapping[str, Tensor]
LossFn = Callable[[Params, Any], Tensor]

MetaBatchPath = Literal["auto", "batched", "per_task"]
"""How a meta-batch of tasks is computed: ``vmap`` over the tasks, a per-task loop, or the one measured
faster for the model and device (each meta-learner's own rule)."""
META_BATCH_PATHS: tuple[str, ...] = get_args(MetaBatchPath)

LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": F.mse_loss,
    "cross_entropy": F.cross_entropy,
}
"""Inner- and outer-loop losses by name, as stored in run configurations."""


def metric_of_loss(loss: str) -> str:
    """The quantity reported for a loss: accuracy for classification, the MSE itself for regression."""
    return {"mse": "mse", "cross_entropy": "accuracy"}[loss]


def score(loss: str, prediction: Tensor, target: Tensor) -> Tensor:
    """The reported metric (see :func:`metric_of_loss`) of one prediction, as a 0-d tensor."""
    if loss == "cross_entropy":
        return (prediction.argmax(dim=-1) == target).float().mean()
    return LOSSES[loss](prediction, target)


def parameters_of(module: nn.Module) -> Params:
    """The module's trainable parameters as a dict (the tensors themselves, not copies)."""
    return {name: p for name, p in module.named_parameters() if p.requires_grad}


def forward(module: nn.Module, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Run ``module`` with ``params`` in place of its own parameters (buffers stay the module's)."""
    return functional_call(module, dict(params), (x,))


def sgd_step(params: Params, grads: Mapping[str, Tensor], lr: LearningRate) -> Params:
    """One gradient step; ``lr`` is a scalar or, for Meta-SGD, a tensor per parameter.

    Written as one fused operation per parameter (``add``/``addcmul``), which halves the nodes the
    meta-gradient has to traverse compared with ``p - lr * g``.
    """
    if isinstance(lr, Mapping):
        return {name: torch.addcmul(p, lr[name], grads[name], value=-1.0) for name, p in params.items()}
    return {name: torch.add(p, grads[name], alpha=-lr) for name, p in params.items()}


def loss_gradient(
    loss_fn: LossFn, params: Params, data: Any, create_graph: bool, functional: bool = True
) -> Params:
    """The gradient of ``loss_fn(params, data)`` with respect to ``params``.

    ``create_graph`` keeps the gradient differentiable (second order); otherwise it is a constant.
    ``functional`` uses ``torch.func.grad``, which also works inside ``vmap``; without it plain
    ``torch.autograd.grad`` is used, about 8% faster per task on a CPU (measured on conv4-64).
    """
    if functional:
        if not create_graph:
            params = {name: p.detach() for name, p in params.items()}
        return grad(loss_fn)(params, data)
    with torch.enable_grad():
        inputs = {name: p if p.requires_grad else p.detach().requires_grad_() for name, p in params.items()}
        loss = loss_fn(inputs, data)
        grads = torch.autograd.grad(loss, list(inputs.values()), create_graph=create_graph)
    return dict(zip(inputs, grads))


def adapt(
    params: Params,
    loss_fn: LossFn,
    data: Any,
    steps: int,
    lr: LearningRate,
    first_order: bool = False,
    functional: bool = True,
    checkpoint: bool = False,
) -> Params:
    """``steps`` steps of gradient descent on ``loss_fn(params, data)``, starting from ``params``.

    Second order (the default) keeps the graph through every inner gradient, so the result can be
    differentiated with respect to ``params`` (and to ``lr`` for Meta-SGD). First order treats the
    inner gradients as constants (Finn et al. 2017, section 5.2): the result still depends on
    ``params`` and ``lr`` through the update, but not through the gradients themselves.
    ``functional`` must be True inside ``vmap`` (see :func:`loss_gradient`).
    ``checkpoint`` recomputes each step in the backward pass instead of keeping its activations
    (gradient checkpointing); it needs the autograd path (``functional=False``), because ``torch.func``
    transforms do not run under the saved-tensor hooks that checkpointing uses.
    """
    if steps < 0:
        raise ValueError(f"the number of inner steps must be >= 0, got {steps}")
    if checkpoint and functional:
        raise ValueError("checkpointed inner steps need functional=False (torch.func.grad cannot be checkpointed)")

    def step(current: Params) -> Params:
        grads = loss_gradient(loss_fn, current, data, create_graph=not first_order, functional=functional)
        return sgd_step(current, grads, lr)

    for _ in range(steps):
        params = torch.utils.checkpoint.checkpoint(step, params, use_reentrant=False) if checkpoint else step(params)
    return params
