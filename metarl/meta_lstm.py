"""The LSTM meta-learner of Ravi and Larochelle (2017): an LSTM that learns the learner's update rule.

The learner is a small convolutional classifier (``metarl.models.Conv4`` with 32 filters). Its
parameters theta are the *cell state* of an LSTM that runs once per update of the learner, shared
coordinate-wise across every parameter:

    c_t = f_t * c_(t-1) - i_t * grad_t        (c_t = theta_t; c_0 is learned: the initialisation)

The forget gate f_t and the input gate i_t (a learned, per-coordinate step size) are scalars computed
from the coordinate's current value, the previous gate value and the hidden state of a first,
ordinary LSTM (20 units) that reads the preprocessed loss and gradient (Andrychowicz et al. 2016,
appendix A). Gradients of the learner's loss are inputs, not functions of the meta-parameters: the
second-order terms are dropped, as in the paper.

Batch norm uses the statistics of the batch it is given (``TaskBatchNorm2d``), during adaptation and
on the query set alike: the paper's meta-test protocol.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from metarl.choices import check_choice
from metarl.few_shot import EpisodicTraining
from metarl.functional import LOSSES, Params, forward, metric_of_loss, score
from metarl.models import build_model
from metarl.tasks import Episode, SupervisedTaskDistribution

ONE_SHOT_STEPS, FEW_SHOT_STEPS = 12, 8
"""Learner updates per episode in the authors' code for 1-shot and 5-shot tasks."""


@dataclass
class MetaLSTMConfig:
    """The Meta-LSTM's hyper-parameters; defaults are the paper's 1-shot settings (Ravi & Larochelle 2017).

    The number of updates depends on the shots: 12 for 1-shot; for 5-shot the authors' code
    (twitter/meta-learning-lstm, ``config/5-shot``) makes 8 full-batch updates, where the paper's text says
    5 with batch size 25. We follow the code.
    """

    inner_steps: int | None = None
    """Updates of the learner on the whole support set per episode; None: 12 for 1-shot, 8 for more shots."""
    eval_inner_steps: int | None = None
    """Updates at meta-test; None: the same as inner_steps (the meta-learner was trained for that many)."""
    hidden_size: int = 20
    """Units of the first LSTM, which reads the preprocessed loss and gradient."""
    preprocess_p: float = 10.0
    """p of the gradient and loss preprocessing: log-magnitude and sign above e^-p, else (-1, e^p x)."""
    forget_bias: tuple[float, float] = (4.0, 5.0)
    """Range of the forget gate's initial bias: f starts near 1 (keep the parameters)."""
    input_bias: tuple[float, float] = (-5.0, -4.0)
    """Range of the input gate's initial bias: i starts near 0.01 (a small SGD step)."""
    meta_lr: float = 1e-3
    """Adam step size of the meta-learner."""
    grad_clip: float = 0.25
    """Maximum norm of the meta-gradient."""

    def __post_init__(self) -> None:
        if (self.inner_steps is not None and self.inner_steps < 1) or (self.eval_inner_steps is not None and self.eval_inner_steps < 0):
            raise ValueError(f"need inner_steps >= 1 and eval_inner_steps >= 0, got {self.inner_steps}, "
                             f"{self.eval_inner_steps}")
        if self.hidden_size < 1 or self.preprocess_p <= 0:
            raise ValueError(f"need hidden_size >= 1 and preprocess_p > 0, got {self.hidden_size}, {self.preprocess_p}")
        if not (self.meta_lr > 0 and self.grad_clip > 0):
            raise ValueError(f"meta_lr and grad_clip must be positive, got {self.meta_lr}, {self.grad_clip}")
        for name in ("forget_bias", "input_bias"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name.replace('_', '-')} must be a range (low, high), got {(low, high)}")

    def for_shots(self, shots: int) -> MetaLSTMConfig:
        """This configuration with ``inner_steps`` fixed: as given, or the authors' setting for ``shots``."""
        if self.inner_steps is not None:
            return self
        return replace(self, inner_steps=ONE_SHOT_STEPS if shots == 1 else FEW_SHOT_STEPS)


def preprocess(x: Tensor, p: float = 10.0) -> Tensor:
    """The gradient/loss preprocessing of Andrychowicz et al. (2016): ``x [...]`` to ``[..., 2]``.

    ``(log|x| / p, sign(x))`` where ``|x| >= e^-p``, else ``(-1, e^p x)``: magnitudes and signs on a scale an
    LSTM can read, whatever the size of the gradient.
    """
    big = x.abs() >= math.exp(-p)
    magnitude = torch.where(big, x.abs().clamp_min(math.exp(-p)).log() / p, torch.full_like(x, -1.0))
    direction = torch.where(big, torch.sign(x), x * math.exp(p))
    return torch.stack([magnitude, direction], dim=-1)


class ParameterLayout:
    """Where each of a network's parameters lives in one flat vector (the update LSTM's cell state)."""

    def __init__(self, module: nn.Module) -> None:
        self.names = [name for name, _ in module.named_parameters()]
        self.shapes = [p.shape for _, p in module.named_parameters()]
        self.sizes = [p.numel() for _, p in module.named_parameters()]

    @property
    def numel(self) -> int:
        return sum(self.sizes)

    def unflatten(self, flat: Tensor) -> Params:
        """The parameter dict that ``flat`` holds (views, so gradients flow back to ``flat``)."""
        return {name: chunk.view(shape)
                for name, chunk, shape in zip(self.names, flat.split(self.sizes), self.shapes)}

    def flatten(self, params: Params) -> Tensor:
        return torch.cat([params[name].reshape(-1) for name in self.names])


@dataclass
class UpdateState:
    """What the meta-learner carries from one learner update to the next, per coordinate."""

    hidden: tuple[Tensor, Tensor]
    """Hidden and cell state of the first LSTM, ``[coordinates, hidden_size]`` each."""
    forget: Tensor
    """The previous forget gate, ``[coordinates]``."""
    input: Tensor
    """The previous input gate, ``[coordinates]``."""


class MetaLearnerLSTM(nn.Module):
    """The two-layer, coordinate-wise meta-learner: ``(theta, loss, grad, state) -> (theta', state')``."""

    def __init__(self, config: MetaLSTMConfig) -> None:
        super().__init__()
        self.p = config.preprocess_p
        self.lstm = nn.LSTMCell(4, config.hidden_size)
        # Gate inputs: [h, theta, previous gate]; one weight vector and one scalar bias per gate.
        self.forget_weight = nn.Parameter(torch.empty(config.hidden_size + 2).uniform_(-0.01, 0.01))
        self.input_weight = nn.Parameter(torch.empty(config.hidden_size + 2).uniform_(-0.01, 0.01))
        self.forget_bias = nn.Parameter(torch.empty(1).uniform_(*config.forget_bias))
        self.input_bias = nn.Parameter(torch.empty(1).uniform_(*config.input_bias))

    def initial_state(self, theta: Tensor) -> UpdateState:
        zeros = theta.new_zeros(theta.shape[0], self.lstm.hidden_size)
        gates = theta.new_zeros(theta.shape[0])
        return UpdateState((zeros, zeros), gates, gates)

    def gates(self, h: Tensor, theta: Tensor, state: UpdateState) -> tuple[Tensor, Tensor]:
        """Forget and input gates of every coordinate, ``[coordinates]`` each."""
        forget = torch.sigmoid(torch.cat([h, theta[:, None], state.forget[:, None]], 1) @ self.forget_weight
                               + self.forget_bias)
        input_ = torch.sigmoid(torch.cat([h, theta[:, None], state.input[:, None]], 1) @ self.input_weight
                               + self.input_bias)
        return forget, input_

    def forward(self, theta: Tensor, loss: Tensor, grad: Tensor, state: UpdateState) -> tuple[Tensor, UpdateState]:
        """One learner update. ``theta`` and ``grad`` are flat ``[coordinates]``, ``loss`` a scalar."""
        features = torch.cat([preprocess(loss, self.p).expand(theta.shape[0], 2), preprocess(grad, self.p)], 1)
        h, c = self.lstm(features, state.hidden)
        forget, input_ = self.gates(h, theta, state)
        return forget * theta - input_ * grad, UpdateState((h, c), forget, input_)


class MetaLSTM(EpisodicTraining):
    """The meta-learner and the learned initialisation of the learner, meta-trained on episodes with Adam.

    One task: starting from ``c_0``, ``inner_steps`` updates on the support set, each computed by the
    meta-learner from the (detached) loss and gradient; the loss of the last parameters on the query
    set is the meta-objective.
    """

    method: ClassVar[str] = "meta_lstm"
    Config: ClassVar[type] = MetaLSTMConfig
    adapts: ClassVar[bool] = True

    def __init__(self, model: nn.Module, loss: str, config: MetaLSTMConfig | None = None,
                 device: str | torch.device = "cpu") -> None:
        """``config.inner_steps`` must be set (see :meth:`MetaLSTMConfig.for_shots`); by default 1-shot's settings."""
        check_choice("loss", loss, sorted(LOSSES))
        self.config = config or MetaLSTMConfig().for_shots(1)
        if self.config.inner_steps is None:
            raise ValueError("MetaLSTMConfig.inner_steps is None: fix it with config.for_shots(shots) or set it")
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.loss, self.metric = loss, metric_of_loss(loss)
        self.layout = ParameterLayout(self.model)
        self.meta_learner = MetaLearnerLSTM(self.config).to(self.device)
        # c_0: the learner's own initialisation, then learned.
        self.initial = nn.Parameter(self.layout.flatten(dict(self.model.named_parameters())).detach().clone())
        self.optimizer = torch.optim.Adam([self.initial, *self.meta_learner.parameters()], lr=self.config.meta_lr)

    @classmethod
    def create(cls, model: dict[str, Any], distribution: SupervisedTaskDistribution, config: MetaLSTMConfig,
               device: torch.device) -> MetaLSTM:
        """The updates per episode default to the authors' setting for the distribution's shots."""
        return cls(build_model(model), distribution.loss, config.for_shots(distribution.shots), device)

    @property
    def eval_steps(self) -> int:
        steps = self.config.eval_inner_steps
        return self.config.inner_steps if steps is None else steps

    # --- the learner ------------------------------------------------------------------------------
    def _predict(self, theta: Tensor, x: Tensor) -> Tensor:
        return forward(self.model, self.layout.unflatten(theta), x)

    def _loss_and_grad(self, theta: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The learner's (mean) loss at ``theta`` and its gradient, both constants for the meta-learner.

        markdtw/meta-learner-lstm-pytorch divides this gradient by the batch size once more; we do not.
        """
        with torch.enable_grad():
            point = theta.detach().requires_grad_()
            loss = LOSSES[self.loss](self._predict(point, x), y)
            (grad,) = torch.autograd.grad(loss, point)
        return loss.detach(), grad

    def _adapt(self, support_x: Tensor, support_y: Tensor, steps: int) -> list[Tensor]:
        """The learner's parameters after 0, 1, ..., ``steps`` meta-learner updates on the support set."""
        thetas = [self.initial]
        state = self.meta_learner.initial_state(self.initial)
        for _ in range(steps):
            loss, grad = self._loss_and_grad(thetas[-1], support_x, support_y)
            theta, state = self.meta_learner(thetas[-1], loss, grad, state)
            thetas.append(theta)
        return thetas

    # --- meta-training ----------------------------------------------------------------------------
    def meta_train_step(self, episode: Episode) -> dict[str, float]:
        """One Adam update of the meta-learner and c_0 on the mean query loss of the episode's tasks."""
        self.optimizer.zero_grad(set_to_none=True)
        tensors = episode.to(self.device).tensors()
        losses, scores = [], []
        for support_x, support_y, query_x, query_y in zip(*tensors):
            theta = self._adapt(support_x, support_y, self.config.inner_steps)[-1]
            prediction = self._predict(theta, query_x)
            loss = LOSSES[self.loss](prediction, query_y)
            (loss / episode.num_tasks).backward()
            losses.append(loss.detach())
            scores.append(score(self.loss, prediction.detach(), query_y))
        parameters = [self.initial, *self.meta_learner.parameters()]
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, self.config.grad_clip)
        self.optimizer.step()
        return {"query_loss": torch.stack(losses).mean().item(), f"query_{self.metric}": torch.stack(scores).mean().item(),
                "grad_norm": grad_norm.item()}

    # --- meta-testing ----------------------------------------------------------------------------
    def adapt(self, support_x: Tensor, support_y: Tensor, steps: int | None = None) -> Tensor:
        """The learner's flat parameters after ``steps`` (default :attr:`eval_steps`) meta-learner updates on one
        task's support set (no meta-gradient kept); :meth:`predict` classifies with them, as MAML's pair does."""
        steps = self.eval_steps if steps is None else steps
        with torch.no_grad():
            return self._adapt(support_x.to(self.device), support_y.to(self.device), steps)[-1]

    def predict(self, theta: Tensor, x: Tensor) -> Tensor:
        """The learner's output (logits) on ``x`` with the flat parameters ``theta`` of :meth:`adapt`."""
        with torch.no_grad():
            return self._predict(theta, x.to(self.device))

    def evaluate(self, episode: Episode, steps: int | None = None) -> Tensor:
        """Per-task query metric after 0..``steps`` meta-learner updates, shape ``[tasks, steps + 1]``."""
        steps = self.eval_steps if steps is None else steps
        curves = []
        with torch.no_grad():
            for support_x, support_y, query_x, query_y in zip(*episode.to(self.device).tensors()):
                thetas = self._adapt(support_x, support_y, steps)
                curves.append(torch.stack([score(self.loss, self._predict(t, query_x), query_y) for t in thetas]))
        return torch.stack(curves).cpu()

    # --- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "initial": self.initial.detach().clone(),
            "meta_learner": self.meta_learner.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["initial"].shape != self.initial.shape:
            raise ValueError(f"the checkpoint's learner has {state['initial'].numel()} parameters, this model "
                             f"{self.initial.numel()}; the model specs differ")
        with torch.no_grad():
            self.initial.copy_(state["initial"])
        self.meta_learner.load_state_dict(state["meta_learner"])
        self.optimizer.load_state_dict(state["optimizer"])
