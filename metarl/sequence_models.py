"""Models for online few-shot classification, by name: MANN and its two baselines (Santoro et al. 2016, section 4).

Every model maps ``inputs [B, T, input_size]`` (the step's image and the previous step's label) to
``logits [B, T, output_size]``. The baselines are MANN's controller without the memory: an LSTM, and
a feed-forward network that sees one step at a time, both of ``controller_size`` units.
"""

from __future__ import annotations

from torch import Tensor, nn

from metarl.choices import check_choice
from metarl.mann import MANN, MANNConfig

SEQUENCE_MODELS = ("mann", "lstm", "ff")


class LSTMBaseline(nn.Module):
    """An LSTM and a linear output layer: what MANN is without its external memory."""

    def __init__(self, input_size: int, output_size: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden, batch_first=True)
        self.output = nn.Linear(hidden, output_size)

    def forward(self, inputs: Tensor) -> Tensor:
        return self.output(self.lstm(inputs)[0])


class FeedForwardBaseline(nn.Module):
    """One tanh layer and a linear output layer, applied to each step on its own: it cannot remember a
    binding, so it stays at chance (the paper's feed-forward baseline)."""

    def __init__(self, input_size: int, output_size: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(input_size, hidden), nn.Tanh(), nn.Linear(hidden, output_size))

    def forward(self, inputs: Tensor) -> Tensor:
        return self.layers(inputs)


def build_sequence_model(name: str, input_size: int, output_size: int, config: MANNConfig) -> nn.Module:
    """``"mann"``, ``"lstm"`` or ``"ff"``; the baselines take ``config.controller_size`` units."""
    check_choice("sequence model", name, SEQUENCE_MODELS)
    if name != "mann" and config.init != "torch":
        raise ValueError(f"init {config.init!r} applies to MANN only; the {name} baseline starts from torch's weights")
    if name == "mann":
        return MANN(input_size, output_size, config)
    if name == "lstm":
        return LSTMBaseline(input_size, output_size, config.controller_size)
    return FeedForwardBaseline(input_size, output_size, config.controller_size)
