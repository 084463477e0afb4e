"""The memory-augmented neural network (MANN) of Santoro et al. (2016) with Least Recently Used Access.

A controller (an LSTM, or one feed-forward layer) reads the step's input and the previous step's read
vectors and emits, for each of the ``read_heads`` heads, a key and a write gate. Per step, in the
paper's order (section 3.2; equation numbers of the ICML paper):

1. write: each head's write weights interpolate, through its sigmoid gate, between its previous read
   weights and a least-used slot, ``w^w_t = sigma(alpha) w^r_(t-1) + (1 - sigma(alpha)) w^lu_(t-1)``
   (eq. 6), after the least-used slot is cleared; each head adds its key, ``M_t(i) = M_(t-1)(i) +
   w^w_t(i) k_t`` (eq. 7);
2. read: cosine similarity of each key with every slot, a softmax over slots (eqs. 1-2), and the
   weighted sum of the slots (eq. 3);
3. usage: ``w^u_t = gamma w^u_(t-1) + w^r_t + w^w_t`` (eq. 4), summed over heads.

The output layer reads the controller state and the read vectors. Everything is batched over
episodes and heads, on any device.

Where the paper leaves a choice open we follow tristandeleu/ntm-one-shot, the reference
reimplementation: the least-used weights ``w^lu`` mark the ``read_heads`` least-used slots (eq. 5
with n = the number of reads) and head h writes to the h-th of them, so that the heads never write
on top of each other; the single least-used slot is the one cleared (as the paper says); keys are
``tanh`` of a linear map of the controller state; the state starts empty (zero memory, read weights,
usage and read vectors); ties in usage go to the lower slot. Where it departs from the paper's text, it is an
option: ``add_vector`` writes a separate ``tanh`` add vector instead of the key (eq. 7 writes the key).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.choices import check_choice

Controller = Literal["lstm", "feedforward"]
"""The controller kinds: the paper's LSTM, or its feed-forward variant."""
Init = Literal["glorot", "torch"]
"""Initial weights: the reference reimplementation's Glorot-uniform ones with zero biases, or ``nn.Linear``'s."""

COSINE_EPS = 1e-8
"""Floor of a vector norm in the cosine similarity, so empty (all-zero) slots have similarity 0."""


@dataclass
class MANNConfig:
    """MANN's architecture; the defaults are the paper's Omniglot settings."""

    controller: Controller = "lstm"
    """Controller: an LSTM (the paper's main model) or one tanh layer (the paper's feed-forward variant)."""
    controller_size: int = 200
    """Units of the controller (the paper: 200); also the size of the LSTM and feed-forward baselines."""
    memory_slots: int = 128
    """Memory rows N (the paper: 128)."""
    memory_width: int = 40
    """Memory row width, i.e. key size (the paper: 40)."""
    read_heads: int = 4
    """Read heads, each also writing through LRUA (the paper: 4)."""
    gamma: float = 0.95
    """Usage decay. The paper gives no value; 0.95 is what the reimplementations use (tristandeleu/ntm-one-shot,
    snowkylin/ntm); a paper summary says 0.99."""
    key_strength: bool = False
    """Each head also emits a key strength beta = softplus(.) >= 0 that multiplies the cosines before the read
    softmax, as in Neural Turing Machines (Graves et al. 2014). False is the paper's eq. 2, whose softmax over
    cosines in [-1, 1] can give one of 128 slots at most 5.5% of a read, so reads stay near the memory's mean."""
    add_vector: bool = False
    """Each head writes its own add vector ``a_t = tanh(W_add h_t)`` instead of its read key, as the reference
    reimplementation (tristandeleu/ntm-one-shot) does. False is the paper's eq. 7, which writes the key ``k_t``:
    the slot a head has just written then matches its own read key exactly (cosine 1)."""

    init: Init = "torch"
    """Initial weights. The paper gives none; glorot is tristandeleu/ntm-one-shot's: Glorot-uniform for each of its
    matrices (from the input, the reads and the previous state; each head's key, gate, key strength and add vector;
    the output layer) and zero biases. torch is ``nn.Linear``'s default (uniform within 1/sqrt(fan_in), biases too)."""

    def __post_init__(self) -> None:
        check_choice("controller", self.controller, get_args(Controller))
        check_choice("init", self.init, get_args(Init))
        for name in ("controller_size", "memory_slots", "memory_width", "read_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if self.read_heads > self.memory_slots:
            raise ValueError(f"read-heads ({self.read_heads}) cannot exceed memory-slots ({self.memory_slots}): "
                             "each head writes to its own least-used slot")
        if not (math.isfinite(self.gamma) and 0.0 <= self.gamma <= 1.0):
            raise ValueError(f"gamma (usage decay) must be in [0, 1], got {self.gamma}")


class MemoryState(NamedTuple):
    """The memory between steps: ``memory [B, N, W]``, ``read_weights [B, H, N]``, ``usage [B, N]``."""

    memory: Tensor
    read_weights: Tensor
    usage: Tensor


def empty_memory(batch: int, slots: int, width: int, heads: int, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> MemoryState:
    """The state before the first step: no content, no reads, no usage."""
    options = {"device": device, "dtype": dtype}
    return MemoryState(torch.zeros(batch, slots, width, **options), torch.zeros(batch, heads, slots, **options),
                       torch.zeros(batch, slots, **options))


def cosine_read_weights(keys: Tensor, memory: Tensor, strength: Tensor | None = None) -> Tensor:
    """Softmax over slots of the cosine similarity of each key ``[B, H, W]`` with each slot ``[B, N, W]``
    (eqs. 1-2), times the key strength ``[B, H]`` if given: ``[B, H, N]``, each row summing to one."""
    similarity = F.normalize(keys, dim=-1, eps=COSINE_EPS) @ F.normalize(memory, dim=-1, eps=COSINE_EPS).transpose(1, 2)
    if strength is not None:
        similarity = strength[..., None] * similarity
    return torch.softmax(similarity, dim=-1)


def least_used_slots(usage: Tensor, n: int) -> Tensor:
    """Indices ``[B, n]`` of the ``n`` least-used slots, least used first (eq. 5); ties go to the lower slot."""
    return torch.sort(usage, dim=-1, stable=True).indices[:, :n]


def lrua_write(state: MemoryState, content: Tensor, gate: Tensor) -> tuple[Tensor, Tensor]:
    """Least Recently Used Access write of each head's ``content [B, H, W]`` (the paper: its key) with gates
    ``sigma(alpha) [B, H]`` in [0, 1].

    Returns the new memory ``[B, N, W]`` and the write weights ``[B, H, N]``: gate 1 writes where the head
    read at the previous step, gate 0 to its least-used slot (head h: the h-th least used) (eq. 6).
    The least-used slot is cleared first, then every head adds its content (eq. 7).
    """
    slots = state.memory.shape[1]
    least_used = least_used_slots(state.usage, content.shape[1])
    fresh = F.one_hot(least_used, slots).to(content.dtype)  # [B, H, N]
    g = gate[..., None]
    write_weights = g * state.read_weights + (1.0 - g) * fresh
    kept = 1.0 - fresh[:, 0]  # clears the least-used slot
    memory = state.memory * kept[..., None] + write_weights.transpose(1, 2) @ content
    return memory, write_weights


def lrua_step(state: MemoryState, keys: Tensor, gate: Tensor, gamma: float,
              strength: Tensor | None = None, content: Tensor | None = None) -> tuple[MemoryState, Tensor]:
    """One memory step: write ``content [B, H, W]`` (the keys themselves if None, as in the paper's eq. 7),
    then read with the keys (and key strengths, if any), then update usage (eq. 4).

    Returns the next state and the read vectors ``[B, H, W]`` (eq. 3).
    """
    memory, write_weights = lrua_write(state, keys if content is None else content, gate)
    read_weights = cosine_read_weights(keys, memory, strength)
    usage = gamma * state.usage + read_weights.sum(1) + write_weights.sum(1)
    return MemoryState(memory, read_weights, usage), read_weights @ memory


class MANN(nn.Module):
    """Maps ``inputs [B, T, input_size]`` to ``logits [B, T, output_size]``, one memory per sequence.

    The controller's map of the inputs is applied to all steps at once, before the loop over steps; only
    its map of the previous reads (and, for the LSTM, of its previous state) runs step by step. On the
    CPU this one large matrix product instead of T small ones makes a training step about 20% faster.
    """

    def __init__(self, input_size: int, output_size: int, config: MANNConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or MANNConfig()
        reads, size = config.read_heads * config.memory_width, config.controller_size
        lstm = config.controller == "lstm"
        gates = 4 * size if lstm else size  # LSTM: input, forget, cell and output gates
        self.input_map = nn.Linear(input_size, gates)
        self.recurrent_map = nn.Linear(reads + size * lstm, gates, bias=False)
        # each head's outputs, in order: key, write gate (and key strength, add vector)
        widths = {"key": config.memory_width, "gate": 1, "strength": int(config.key_strength),
                  "add": config.memory_width * int(config.add_vector)}
        ends = list(itertools.accumulate(widths.values()))
        self.head_layout = {name: slice(end - width, end) for (name, width), end in zip(widths.items(), ends) if width}
        self.head_size = ends[-1]
        self.heads = nn.Linear(size, config.read_heads * self.head_size)
        self.output = nn.Linear(size + reads, output_size)
        if config.init == "glorot":
            self._glorot_init()

    @torch.no_grad()
    def _glorot_init(self) -> None:
        """Glorot-uniform weights for each matrix of the reference reimplementation, zero biases."""
        c = self.config
        reads = c.read_heads * c.memory_width
        heads = self.heads.weight.view(c.read_heads, self.head_size, c.controller_size)
        blocks = [self.input_map.weight, self.recurrent_map.weight[:, :reads], self.recurrent_map.weight[:, reads:],
                  *(heads[h, part] for h in range(c.read_heads) for part in self.head_layout.values()),
                  self.output.weight]
        for block in blocks:
            if block.numel():  # the feed-forward controller has no previous-state block
                bound = math.sqrt(6.0 / sum(block.shape))
                block.uniform_(-bound, bound)
        for layer in (self.input_map, self.heads, self.output):
            layer.bias.zero_()

    def load_without_key_strength(self, state: dict[str, Tensor]) -> None:
        """Load the weights of the same MANN trained without key strengths into this one, which has them: each
        head's strength starts at softplus(log(e - 1)) = 1 whatever the controller state, the paper's read, so
        the model computes what the trained one did and training can sharpen its reads from there."""
        c = self.config
        if not c.key_strength:
            raise ValueError("load_without_key_strength needs a MANN with key_strength=True")
        heads, strength = c.read_heads, self.head_layout["strength"].start
        old_weight = state["heads.weight"].view(heads, self.head_size - 1, -1)
        old_bias = state["heads.bias"].view(heads, self.head_size - 1)
        weight = torch.cat([old_weight[:, :strength], old_weight.new_zeros(heads, 1, old_weight.shape[-1]),
                            old_weight[:, strength:]], dim=1)
        bias = torch.cat([old_bias[:, :strength], old_bias.new_full((heads, 1), math.log(math.e - 1)),
                          old_bias[:, strength:]], dim=1)
        self.load_state_dict({**state, "heads.weight": weight.flatten(0, 1), "heads.bias": bias.flatten()})

    def forward(self, inputs: Tensor) -> Tensor:
        c = self.config
        batch = inputs.shape[0]
        state = empty_memory(batch, c.memory_slots, c.memory_width, c.read_heads, inputs.device, inputs.dtype)
        reads = inputs.new_zeros(batch, c.read_heads * c.memory_width)
        h = cell = inputs.new_zeros(batch, c.controller_size)
        features = []
        for projected in self.input_map(inputs).unbind(1):  # unbind: one backward copy, not one per step
            if c.controller == "lstm":
                z = projected + self.recurrent_map(torch.cat([reads, h], dim=-1))
                i, f, g, o = z.chunk(4, dim=-1)
                cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(cell)
            else:
                h = torch.tanh(projected + self.recurrent_map(reads))
            head = self.heads(h).view(batch, c.read_heads, self.head_size)
            part = {name: head[..., where] for name, where in self.head_layout.items()}
            keys, gate = torch.tanh(part["key"]), torch.sigmoid(part["gate"]).squeeze(-1)
            strength = F.softplus(part["strength"]).squeeze(-1) if c.key_strength else None
            content = torch.tanh(part["add"]) if c.add_vector else None
            state, read = lrua_step(state, keys, gate, c.gamma, strength, content)
            reads = read.flatten(1)
            features.append(torch.cat([h, reads], dim=-1))
        return self.output(torch.stack(features, dim=1))
