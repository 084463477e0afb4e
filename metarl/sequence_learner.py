"""Meta-training a sequence model on online few-shot classification episodes, and its per-instance accuracy.

The model sees, at step t, the image x_t and the previous step's label y_(t-1) (a null, all-zero label
at the first step), and must output y_t (Santoro et al. 2016, section 4.1). Its weights change only
between episodes; within an episode it learns through its state. What is reported is the accuracy on
the 1st, 2nd, ... presentation of a class within an episode.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.choices import check_choice
from metarl.tasks import SequenceEpisode

Optimizer = Literal["rmsprop", "adam"]
"""The outer optimisers: the paper's RMSProp, or Adam."""


@dataclass
class SequenceLearnerConfig:
    """The outer optimiser. Defaults: the paper's (Santoro et al. 2016, supplementary material, as we read it:
    RMSProp, learning rate 1e-4, decay 0.95, momentum 0.9); tristandeleu/ntm-one-shot uses Adam at 1e-3."""

    optimizer: Optimizer = "rmsprop"
    """rmsprop (the paper) or adam."""
    lr: float = 1e-4
    """Learning rate of the optimiser."""
    rmsprop_decay: float = 0.95
    """RMSProp's moving-average decay of squared gradients (torch's alpha)."""
    momentum: float = 0.9
    """RMSProp's momentum."""

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, get_args(Optimizer))
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not (0 <= self.rmsprop_decay < 1 and 0 <= self.momentum < 1):
            raise ValueError(f"rmsprop-decay and momentum must be in [0, 1), got {self.rmsprop_decay}, {self.momentum}")


def previous_label_input(labels: Tensor, alphabet: int) -> Tensor:
    """The label input of every step: the one-hot symbols of the previous step's label, zeros at the first.

    ``labels [B, T, L]`` gives ``[B, T, L * alphabet]``; row t holds label t - 1.
    """
    one_hot = F.one_hot(labels, alphabet).flatten(2).float()
    return torch.cat([torch.zeros_like(one_hot[:, :1]), one_hot[:, :-1]], dim=1)


def instance_numbers(labels: Tensor) -> Tensor:
    """``[B, T]``: how many earlier steps of the episode had the same label (0 at a class's first presentation)."""
    same = (labels[:, :, None] == labels[:, None, :]).all(-1)
    return torch.tril(same, diagonal=-1).sum(-1)


def per_instance_accuracy(correct: Tensor, instances: Tensor, samples: int) -> Tensor:
    """``[B, samples]``: the fraction of correct answers at each class's 1st, 2nd, ... presentation."""
    at = F.one_hot(instances, samples).float()  # [B, T, samples]
    return (correct.float()[..., None] * at).sum(1) / at.sum(1).clamp(min=1)


def frequency_rule_accuracy(labels: Tensor, alphabet: int) -> Tensor:
    """``[B]``: the symbol accuracy, over each episode of ``labels [B, T, L]``, of a rule that knows the
    episode's labels but not which class has which: at every position it names the symbol most frequent
    among them. With string labels, a model that has not bound classes to labels reaches this, well above
    the 1 / ``alphabet`` of chance. Every class is assumed shown equally often, as in these episodes."""
    counts = F.one_hot(labels, alphabet).sum(1)  # [B, L, alphabet]: per position, steps showing each symbol
    return counts.max(-1).values.sum(-1).float() / (labels.shape[1] * labels.shape[2])


class SequenceLearner:
    """Trains ``model`` to label sequences; what :class:`metarl.train.Trainer` needs, plus :meth:`evaluate`."""

    method = "mann"

    def __init__(self, model: nn.Module, alphabet: int, config: SequenceLearnerConfig | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.config = config = config or SequenceLearnerConfig()
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.alphabet = alphabet
        if config.optimizer == "rmsprop":
            self.optimizer: torch.optim.Optimizer = torch.optim.RMSprop(
                self.model.parameters(), lr=config.lr, alpha=config.rmsprop_decay, momentum=config.momentum)
        else:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)

    def logits(self, episode: SequenceEpisode) -> Tensor:
        """``[B, T, L, alphabet]``: the model's scores for every symbol of every step's label."""
        x, labels = episode.x.to(self.device), episode.labels.to(self.device)
        inputs = torch.cat([x.flatten(2), previous_label_input(labels, self.alphabet)], dim=-1)
        return self.model(inputs).view(*labels.shape, self.alphabet)

    @staticmethod
    def _symbols_right(logits: Tensor, labels: Tensor) -> Tensor:
        """``[B, T, L]``: whether each symbol of each step's label was predicted."""
        return logits.argmax(-1) == labels

    def meta_train_step(self, episode: SequenceEpisode) -> dict[str, float]:
        """One update on the episodes' cross-entropy (summed over a label's symbols, mean over steps)."""
        labels = episode.labels.to(self.device)
        logits = self.logits(episode)
        loss = F.cross_entropy(logits.flatten(0, 2), labels.flatten()) * labels.shape[-1]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            correct = self._symbols_right(logits, labels).all(-1)
            instances = instance_numbers(labels)
            by_instance = per_instance_accuracy(correct, instances, int(instances.max()) + 1).mean(0)
        return {"loss": loss.item(), "accuracy": correct.float().mean().item(),
                **{f"accuracy_instance{k + 1}": a for k, a in enumerate(by_instance.tolist())}}

    def evaluate(self, episode: SequenceEpisode) -> Tensor:
        """Per-episode accuracy of whole labels at each class's 1st, 2nd, ... presentation, ``[episodes, samples]``,
        on the CPU."""
        return self.evaluate_by_symbol(episode)[0]

    def evaluate_by_symbol(self, episode: SequenceEpisode) -> tuple[Tensor, Tensor]:
        """Per-instance accuracy as :meth:`evaluate`, of whole labels and of single symbols (the fraction of a
        label's symbols predicted right: for string labels, progress that whole-label accuracy hides), from one
        pass of the model."""
        with torch.no_grad():
            labels = episode.labels.to(self.device)
            right = self._symbols_right(self.logits(episode), labels)
            instances = instance_numbers(labels)
            count = int(instances.max()) + 1
            whole = per_instance_accuracy(right.all(-1), instances, count).cpu()
            by_symbol = per_instance_accuracy(right.float().mean(-1), instances, count).cpu()
            return whole, by_symbol

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "config": asdict(self.config)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
