"""Parameters as dicts and the differentiable inner loop that every MAML variant shares.

A model's parameters travel as a ``dict[str, Tensor]`` and the model is run with
``torch.func.functional_call``, so an adapted set of parameters is just another dict. The inner loop
(:func:`adapt`) uses ``torch.func.grad``, which composes both with ``vmap`` (the batched path over a
meta-batch of tasks) and with ordinary autograd (second-order meta-gradients).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad

Params = dict[str, Tensor]
LearningRate = float | Mapping[str, Tensor]
LossFn = Callable[[Params, Any], Tensor]

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
    """One gradient step; ``lr`` is a scalar or, for Meta-SGD, a tensor per parameter."""
    if isinstance(lr, Mapping):
        return {name: p - lr[name] * grads[name] for name, p in params.items()}
    return {name: p - lr * grads[name] for name, p in params.items()}


def adapt(
    params: Params,
    loss_fn: LossFn,
    data: Any,
    steps: int,
    lr: LearningRate,
    first_order: bool = False,
) -> Params:
    """``steps`` steps of gradient descent on ``loss_fn(params, data)``, starting from ``params``.

    Second order (the default) keeps the graph through every inner gradient, so the result can be
    differentiated with respect to ``params`` (and to ``lr`` for Meta-SGD). First order treats the
    inner gradients as constants (Finn et al. 2017, section 5.2): the result still depends on
    ``params`` and ``lr`` through the update, but not through the gradients themselves.
    """
    if steps < 0:
        raise ValueError(f"the number of inner steps must be >= 0, got {steps}")
    inner_grad = grad(loss_fn)
    for _ in range(steps):
        if first_order:
            grads = inner_grad({name: p.detach() for name, p in params.items()}, data)
        else:
            grads = inner_grad(params, data)
        params = sgd_step(params, grads, lr)
    return params
