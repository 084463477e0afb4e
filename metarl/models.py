"""Backbones of the papers: the sinusoid MLP, the 4-block convolutional network, the Gaussian MLP policy.

Models are built from a JSON spec (``{"name": "conv4", ...}``) so that a run folder can rebuild its
model without pickled objects.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.choices import check_choice
from metarl.functional import Params


class TaskBatchNorm2d(nn.Module):
    """Batch norm that always normalises with the statistics of the batch it is given.

    MAML (Finn et al. 2017) keeps no running averages: at meta-test the support set is normalised
    with its own statistics during adaptation and the query set with the query batch's statistics
    (transductive evaluation, as in the paper's code).

    ``vmap_safe`` selects the implementation. ``F.batch_norm`` is 4x faster on a CPU, but in torch
    2.13 ``vmap``'s second-order gradient through it (with affine parameters) is wrong, while the
    same computation written with ``var_mean`` is exact; :func:`vmap_safe_norm` switches a model to
    the latter for the batched MAML path.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.vmap_safe = False
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        if not self.vmap_safe:
            return F.batch_norm(x, None, None, self.weight, self.bias, training=True, eps=self.eps)
        var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False, keepdim=True)
        scale = self.weight.view(1, -1, 1, 1) * torch.rsqrt(var + self.eps)
        return (x - mean) * scale + self.bias.view(1, -1, 1, 1)


@contextmanager
def vmap_safe_norm(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Within the block, every :class:`TaskBatchNorm2d` of ``model`` is exact under ``vmap`` (or fast,
    when disabled); the previous setting is restored afterwards, so a shared model is left as found."""
    norms = [m for m in model.modules() if isinstance(m, TaskBatchNorm2d)]
    previous = [m.vmap_safe for m in norms]
    for module in norms:
        module.vmap_safe = enabled
    try:
        yield
    finally:
        for module, flag in zip(norms, previous):
            module.vmap_safe = flag


Activation = Literal["relu", "tanh"]
"""Hidden-layer non-linearities by name, for :class:`MLP` and the configs that choose one."""
ACTIVATIONS: dict[Activation, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


class MLP(nn.Sequential):
    """Fully connected network (ReLU by default); MAML's sinusoid model is ``MLP([1, 40, 40, 1])``."""

    def __init__(self, sizes: Sequence[int], activation: Activation = "relu") -> None:
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"MLP sizes must be at least two positive integers, got {list(sizes)}")
        check_choice("activation", activation, sorted(ACTIVATIONS))
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        super().__init__(*layers)

    def forward_per_task(self, params: Params, x: Tensor) -> Tensor:
        """Each task's network on its own inputs: ``params`` (named as in ``named_parameters``) and ``x``
        (``[tasks, ..., in]``) share a leading task axis. What ``vmap(functional_call)`` gives, with one batched
        matrix product per layer instead of vmap's dispatch: 2-3x faster for a policy's small layers on a CPU
        (MAML-TRPO's sampler calls it every time step)."""
        shape = x.shape
        x = x.reshape(shape[0], -1, shape[-1])
        for name, layer in self.named_children():
            if isinstance(layer, nn.Linear):
                x = torch.baddbmm(params[f"{name}.bias"].unsqueeze(1), x, params[f"{name}.weight"].transpose(1, 2))
            else:
                x = layer(x)
        return x.reshape(*shape[:-1], x.shape[-1])


NORMS: dict[str, type[nn.Module]] = {"task": TaskBatchNorm2d, "running": nn.BatchNorm2d}
"""Conv4's batch norms by name: the current batch's statistics (MAML), or ordinary running statistics."""


class Conv4(nn.Module):
    """Four blocks of [3x3 conv, batch norm, ReLU, 2x2 max-pool] and a linear classifier.

    The few-shot image backbone of Vinyals et al. (2016), used by MAML with 64 filters on Omniglot
    and 32 on Mini-ImageNet. ``image_size`` fixes the classifier's input width. ``features`` is the
    trunk (the flattened output of the last block), ``classifier`` the final linear layer.

    ``norm`` picks the batch norm: ``"task"`` (the default) is :class:`TaskBatchNorm2d`, always the
    statistics of the batch it is given, as MAML needs; ``"running"`` is an ordinary ``nn.BatchNorm2d``
    (batch statistics in training mode, running averages in eval mode), for a network trained as an
    ordinary classifier and evaluated one example at a time (the nearest-neighbour and Matching Network
    baselines, :mod:`metarl.metric`). Its running averages are buffers that change in place, so it is
    not for MAML's functional (``vmap``) path.
    """

    def __init__(
        self, in_channels: int, out_features: int, hidden: int = 64, image_size: int = 28, blocks: int = 4,
        norm: str = "task",
    ) -> None:
        super().__init__()
        if image_size >> blocks < 1:
            raise ValueError(f"image_size {image_size} is too small for {blocks} pooling blocks")
        check_choice("norm", norm, sorted(NORMS))
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(blocks):
            layers += [
                nn.Conv2d(channels, hidden, kernel_size=3, padding=1),
                NORMS[norm](hidden),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            channels = hidden
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.classifier = nn.Linear(hidden * (image_size >> blocks) ** 2, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


PolicyInit = Literal["glorot", "torch"]
"""Initial weights of :class:`GaussianMLPPolicy`'s mean network: MAML's, or ``nn.Linear``'s default."""
POLICY_INITS: tuple[str, ...] = get_args(PolicyInit)


class GaussianMLPPolicy(nn.Module):
    """A Gaussian policy: an MLP gives the mean action, a state-independent parameter the log-std.

    MAML's RL policy (Finn et al. 2017, section 5.3): two hidden layers of 100 ReLU units
    (pytorch-maml-rl uses tanh, also offered). The
    log-std is a parameter like any other, so the inner loop adapts it too (as in rllab's
    ``GaussianMLPPolicy`` with ``learn_std=True``). ``forward`` returns ``(mean, log_std)`` with
    ``log_std`` broadcast to the mean's shape.

    ``init`` chooses the mean network's initial weights: ``"glorot"`` is MAML's (cbfinn/maml_rl's
    ``MAMLGaussianMLPPolicy``: Glorot-uniform weights, zero biases), ``"torch"`` is ``nn.Linear``'s default
    (uniform within 1/sqrt(fan_in), biases too), with which the results recorded before the option were run.
    """

    def __init__(
        self, observation_size: int, action_size: int, hidden: Sequence[int] = (100, 100), init_std: float = 1.0,
        activation: Activation = "relu", init: PolicyInit = "glorot",
    ) -> None:
        super().__init__()
        if observation_size < 1 or action_size < 1 or init_std <= 0:
            raise ValueError(f"need positive sizes and init_std, got {observation_size}, {action_size}, {init_std}")
        check_choice("policy init", init, POLICY_INITS)
        self.mean = MLP([observation_size, *hidden, action_size], activation)
        if init == "glorot":
            for layer in self.mean:
                if isinstance(layer, nn.Linear):
                    nn.init.xavier_uniform_(layer.weight)
                    nn.init.zeros_(layer.bias)
        self.log_std = nn.Parameter(torch.full((action_size,), math.log(init_std)))

    def forward(self, observation: Tensor) -> tuple[Tensor, Tensor]:
        mean = self.mean(observation)
        return mean, self.log_std.expand_as(mean)

    def forward_per_task(self, params: Params, observations: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, log_std)`` of each task's policy on its own observations (``[tasks, ..., obs]``), ``params``
        with a leading task axis: :meth:`MLP.forward_per_task` for the mean."""
        mean = self.mean.forward_per_task(
            {name.removeprefix("mean."): p for name, p in params.items() if name.startswith("mean.")}, observations)
        log_std = params["log_std"]
        return mean, log_std.view(log_std.shape[0], *[1] * (mean.dim() - 2), -1).expand_as(mean)


MODELS: dict[str, type[nn.Module]] = {"mlp": MLP, "conv4": Conv4, "gaussian_mlp": GaussianMLPPolicy}


def build_model(spec: dict[str, Any]) -> nn.Module:
    """Build a model from ``{"name": ..., **constructor arguments}``."""
    options = dict(spec)
    name = options.pop("name", None)
    check_choice("model", name, sorted(MODELS))
    return MODELS[name](**options)
