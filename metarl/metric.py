"""Metric-based few-shot baselines: nearest neighbour on a pre-trained classifier's features, and Matching Networks.

Both classify a query image by comparing its embedding with the embeddings of the task's support images,
so neither adapts by gradient steps at meta-test: :meth:`evaluate` gives one accuracy per task (the
"after 0 steps" column of the shared evaluation) and refuses ``steps > 0``.

- :class:`NearestNeighbour` is the "Baseline-nearest-neighbor" of Ravi & Larochelle (2017, section 5):
  the Conv4 network trained as an ordinary classifier over all meta-training classes; at meta-test the
  classifier is dropped and each query gets the label of its nearest support image in the space of the
  trunk's features (1-NN).
- :class:`MatchingNetwork` is Vinyals et al. (2016), "Matching Networks for One Shot Learning": a
  query's class distribution is an attention-weighted sum of the support set's one-hot labels, the
  attention a softmax over the cosine similarities of the embeddings, trained episodically on the
  query negative log-likelihood; ``fce`` adds the paper's full context embeddings (its appendix A).

**Distance.** Both use cosine similarity by default. The trunk's features are the flattened output of
ReLU and max-pooling, non-negative, and their norm follows how much of the image is "on" (stroke count
in Omniglot) more than its class; cosine similarity ignores that scale. It is what Matching Networks
use, and what Ravi & Larochelle's code (twitter/meta-learning-lstm, ``model/baselines/nearest-neighbor.lua``,
``nn.CosineDistance``) uses for the nearest-neighbour baseline; Euclidean distance is an option there.

**Batch norm.** Conv4's default :class:`~metarl.models.TaskBatchNorm2d` normalises with the statistics
of whatever batch it is given. That suits MAML, but a network trained as an ordinary classifier learns
with the statistics of large mixed batches and would see, at 1-shot, a support batch of 5 images. Both
learners therefore default to ``norm="running"``: ordinary batch norm (Conv4's ``norm`` option) with
running averages, batch statistics while training and the running averages at meta-test, so every
image is embedded on its own (non-transductive). This is what the reference code does (``nn``'s
``SpatialBatchNormalization`` and ``network:evaluate()`` before embedding). ``norm="task"`` keeps
TaskBatchNorm2d; each task's support and query images are then embedded together as one batch (its own
statistics, transductive like MAML's evaluation), and the tasks of an episode stay independent (vmap).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import vmap

from metarl.choices import check_choice
from metarl.few_shot import EpisodicTraining
from metarl.models import TaskBatchNorm2d, build_model, vmap_safe_norm
from metarl.tasks import Episode, SupervisedTaskDistribution

Distance = Literal["cosine", "euclidean"]
Norm = Literal["running", "task"]

COSINE_EPS = 1e-8
"""Floor of an embedding's norm in the cosine similarity: an all-zero embedding has similarity 0 to everything."""


# --- the pieces both methods share ------------------------------------------------------------------
def cosine_similarity(query: Tensor, support: Tensor) -> Tensor:
    """Cosine similarity of every query ``[T, Q, D]`` with every support embedding ``[T, S, D]``: ``[T, Q, S]``."""
    return F.normalize(query, dim=-1, eps=COSINE_EPS) @ F.normalize(support, dim=-1, eps=COSINE_EPS).transpose(1, 2)


def similarity(query: Tensor, support: Tensor, distance: Distance = "cosine") -> Tensor:
    """How near every query ``[T, Q, D]`` is to every support embedding ``[T, S, D]``, ``[T, Q, S]``, larger
    is nearer: the cosine similarity, or minus the Euclidean distance."""
    check_choice("distance", distance, get_args(Distance))
    if distance == "cosine":
        return cosine_similarity(query, support)
    return -torch.cdist(query, support, compute_mode="donot_use_mm_for_euclid_dist")


def nearest_neighbour_labels(query: Tensor, support: Tensor, support_y: Tensor, distance: Distance = "cosine") -> Tensor:
    """The label ``[T, Q]`` of each query's nearest support embedding (1-NN), task by task.

    ``query [T, Q, D]``, ``support [T, S, D]``, ``support_y [T, S]``; ``distance`` is ``"cosine"`` (the
    largest cosine similarity) or ``"euclidean"``. Ties go to the first support example.
    """
    return support_y.gather(1, similarity(query, support, distance).argmax(dim=-1))


def nearest_neighbour_log_probabilities(query: Tensor, support: Tensor, support_y: Tensor, ways: int,
                                        distance: Distance = "cosine") -> Tensor:
    """Class log-probabilities ``[T, Q, ways]`` that rank the classes as 1-NN does.

    1-NN gives a label, not a distribution. This scores each class by the :func:`similarity` of the query's
    nearest support example of that class and takes a softmax over the classes (no temperature: the scale
    Matching Networks' attention uses), so the most probable class is the 1-NN label (up to exact ties
    between classes). It is a score, not a calibrated probability: cosines lie in [-1, 1], so even an exact
    match gets at most ``e^2 / (e^2 + ways - 1)`` (0.65 at 5 ways), while minus a Euclidean distance is
    unbounded and gives probabilities near 0 or 1. A class without support examples gets probability 0.
    """
    scores = similarity(query, support, distance)  # [T, Q, S]
    nearest = scores.new_full((*scores.shape[:2], ways), -math.inf)
    nearest = nearest.scatter_reduce(-1, support_y[:, None, :].expand_as(scores), scores, "amax")
    return torch.log_softmax(nearest, dim=-1)


def attention_log_probabilities(query: Tensor, support: Tensor, support_y: Tensor, ways: int,
                                scale: float = 1.0) -> Tensor:
    """Matching Networks' class log-probabilities ``[T, Q, ways]`` (Vinyals et al. 2016, eqs. 1-2).

    ``P(y = c | x, S) = sum_i a(x, x_i) [y_i = c]`` with the attention ``a(x, x_i)`` a softmax over the
    support set of ``scale`` times the cosine similarities of the query embedding ``query [T, Q, D]`` with
    the support embeddings ``support [T, S, D]`` (labels ``support_y [T, S]`` in ``0..ways - 1``); the paper's
    is ``scale = 1``. Only a class without support examples gets probability 0 (its log is floored at the
    smallest positive float, so it stays finite).
    """
    attention = torch.softmax(scale * cosine_similarity(query, support), dim=-1)  # [T, Q, S]
    probabilities = attention @ F.one_hot(support_y, ways).to(attention.dtype)  # [T, Q, ways]
    return torch.log(probabilities.clamp_min(torch.finfo(probabilities.dtype).tiny))


def query_accuracy(predicted: Tensor, query_y: Tensor) -> Tensor:
    """Per-task accuracy ``[T, 1]`` of predicted query labels ``[T, Q]``: the shape of an evaluation with no steps."""
    return (predicted == query_y).float().mean(dim=1, keepdim=True)


def embed_tasks(trunk: nn.Module, support_x: Tensor, query_x: Tensor) -> tuple[Tensor, Tensor]:
    """The trunk's embeddings ``[T, S, D]`` and ``[T, Q, D]`` of each task's support and query images.

    With :class:`~metarl.models.TaskBatchNorm2d` in the trunk, each task's support and query images are
    one batch (normalised with their own statistics, transductively) and the tasks are kept apart with
    ``vmap``. Otherwise all images go through as one batch; with ordinary batch norm in eval mode every
    image is then embedded on its own.
    """
    images = torch.cat([support_x, query_x], dim=1)  # [T, S + Q, C, H, W]
    if any(isinstance(m, TaskBatchNorm2d) for m in trunk.modules()):
        with vmap_safe_norm(trunk, True):
            embeddings = vmap(trunk)(images)
    else:
        embeddings = trunk(images.flatten(0, 1)).unflatten(0, images.shape[:2])
    support, query = embeddings.split([support_x.shape[1], query_x.shape[1]], dim=1)
    return support, query


def conv4_spec(model: dict[str, Any], norm: Norm, **overrides: Any) -> dict[str, Any]:
    """``model`` (a Conv4 spec for :func:`metarl.models.build_model`) with ``norm`` and ``overrides`` set."""
    if model.get("name") != "conv4":
        raise ValueError(f"the metric baselines embed images with Conv4; got model {model.get('name')!r}")
    if model.get("norm", norm) != norm:
        raise ValueError(f"the model spec asks for norm={model['norm']!r} but the learner's config for "
                         f"norm={norm!r}; set it in the learner's config only")
    return {**model, **overrides, "norm": norm}


def _check_config(lr: float, norm: str) -> None:
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be positive, got {lr}")
    check_choice("norm", norm, get_args(Norm))


class _MetricLearner:
    """What both methods share: the network and its Adam optimiser, evaluation without steps, checkpoints."""

    method: ClassVar[str]
    Config: ClassVar[type]
    adapts: ClassVar[bool] = False

    def __init__(self, network: nn.Module, config: Any, device: str | torch.device = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)
        self.network = network.to(self.device)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.lr)

    @property
    def eval_steps(self) -> int:
        """0: a metric method classifies the query set without adapting."""
        return 0

    def _update(self, loss: Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def _predict(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        """Predicted query labels ``[T, Q]``."""
        raise NotImplementedError

    def _log_probabilities(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        """Query class log-probabilities ``[T, Q, ways]``, ``ways`` the largest support label + 1."""
        raise NotImplementedError

    def log_probabilities(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        """Class log-probabilities ``[T, Q, ways]`` of each task's query images ``[T, Q, C, H, W]`` given its
        support set (labels ``[T, S]`` in ``0..ways - 1``), with the network in evaluation mode; what they
        mean is the method's own (Matching Networks: the model's distribution; 1-NN: see
        :func:`nearest_neighbour_log_probabilities`)."""
        self.network.eval()
        with torch.no_grad():
            return self._log_probabilities(*(t.to(self.device) for t in (support_x, support_y, query_x)))

    def evaluate(self, episode: Episode, steps: int | None = None) -> Tensor:
        """Per-task query accuracy, shape ``[tasks, 1]``; ``steps`` must be None or 0 (nothing adapts)."""
        if steps not in (None, 0):
            raise ValueError(f"{self.method} does not adapt by gradient steps; evaluate with steps=0 (or None), "
                             f"got {steps}")
        self.network.eval()
        with torch.no_grad():
            support_x, support_y, query_x, query_y = episode.to(self.device).tensors()
            return query_accuracy(self._predict(support_x, support_y, query_x), query_y).cpu()

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.network.state_dict(), "optimizer": self.optimizer.state_dict(),
                "config": asdict(self.config)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = asdict(self.config)
        changed = [k for k in ("norm", "fce") if k in mine and state["config"].get(k) != mine[k]]
        if changed:
            raise ValueError(f"the checkpoint's {changed[0]}={state['config'].get(changed[0])!r} differs from this "
                             f"learner's {mine[changed[0]]!r}: the networks do not match")
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


# --- nearest neighbour --------------------------------------------------------------------------------
@dataclass
class NearestNeighbourConfig:
    """The nearest-neighbour baseline (Ravi & Larochelle 2017).

    It trains on ordinary batches of images, so the run's ``meta_batch_size`` is the number of images
    per update: use 64 or so (the reference code uses 100), not the episodic default of 25 tasks.
    """

    lr: float = 1e-3
    """Adam step size. (The reference code uses SGD at 0.01 with learning-rate decay 1e-4.)"""
    distance: Distance = "cosine"
    """1-NN distance at meta-test: cosine (the reference code's) or euclidean; see the module docstring."""
    norm: Norm = "running"
    """Conv4's batch norm: running (ordinary, non-transductive at test) or task (per-task statistics)."""

    def __post_init__(self) -> None:
        _check_config(self.lr, self.norm)
        check_choice("distance", self.distance, get_args(Distance))


class NearestNeighbour(_MetricLearner):
    """Conv4 trained to classify all meta-training classes (cross-entropy, Adam); 1-NN on its trunk at test.

    At meta-test the final linear layer is dropped: support and query images are embedded with
    ``model.features`` and each query takes the label of its nearest support embedding
    (:func:`nearest_neighbour_labels`).
    """

    method: ClassVar[str] = "nearest_neighbour"
    Config: ClassVar[type] = NearestNeighbourConfig

    def __init__(self, model: nn.Module, config: NearestNeighbourConfig | None = None,
                 device: str | torch.device = "cpu") -> None:
        """``model`` is a classifier over all training classes with a ``features`` trunk (a Conv4)."""
        super().__init__(model, config or NearestNeighbourConfig(), device)

    @classmethod
    def create(cls, model: dict[str, Any], distribution: SupervisedTaskDistribution, config: NearestNeighbourConfig,
               device: torch.device) -> NearestNeighbour:
        """Conv4 from the ``model`` spec with ``out_features`` = the training distribution's number of classes."""
        if not hasattr(distribution, "class_batch"):
            raise ValueError(f"the nearest-neighbour baseline trains on batches of labelled images; "
                             f"{type(distribution).__name__} has no class_batch")
        return cls(build_model(conv4_spec(model, config.norm, out_features=distribution.num_classes)), config, device)

    def training_batch(self, distribution: Any, size: int, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """``size`` images of all classes with their global class index (``distribution.class_batch``)."""
        return distribution.class_batch(size, rng)

    def meta_train_step(self, batch: tuple[Tensor, Tensor]) -> dict[str, float]:
        """One Adam step on the cross-entropy over all training classes; returns its loss and accuracy."""
        self.network.train()
        x, y = (t.to(self.device) for t in batch)
        logits = self.network(x)
        loss = F.cross_entropy(logits, y)
        self._update(loss)
        return {"loss": loss.item(), "accuracy": (logits.detach().argmax(-1) == y).float().mean().item()}

    def _predict(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        support, query = embed_tasks(self.network.features, support_x, query_x)
        return nearest_neighbour_labels(query, support, support_y, self.config.distance)

    def _log_probabilities(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        support, query = embed_tasks(self.network.features, support_x, query_x)
        return nearest_neighbour_log_probabilities(query, support, support_y, int(support_y.max()) + 1,
                                                   self.config.distance)


# --- Matching Networks --------------------------------------------------------------------------------
@dataclass
class MatchingNetworkConfig:
    """Matching Networks (Vinyals et al. 2016). Trained on episodes: ``meta_batch_size`` tasks per update."""

    lr: float = 1e-3
    """Adam step size."""
    fce: bool = False
    """Full context embeddings: the support set through a bidirectional LSTM, the query through an attention
    LSTM that reads the support set (the paper's appendix A)."""
    fce_steps: int = 3
    """K, the attention LSTM's read steps. The paper gives no value; 3 is what Ravi & Larochelle's code
    (twitter/meta-learning-lstm, ``model/baselines/matching-net.lua``) passes."""
    norm: Norm = "running"
    """Conv4's batch norm: running (ordinary, non-transductive at test) or task (per-task statistics)."""
    cosine_scale: float = 1.0
    """Factor on the cosine similarities before the attention's softmax; 1 is the paper's plain cosine. A
    softmax over values in [-1, 1] (in [0, 1] for Conv4's non-negative features) cannot be peaked: for 5-way
    1-shot the correct class gets at best e / (e + 4) = 0.40, so the loss floors near 0.9 and learning
    stalls. Reimplementations scale it (Chen et al. 2019, "A Closer Look at Few-shot Classification", by
    100); 10 is a middle value."""

    def __post_init__(self) -> None:
        _check_config(self.lr, self.norm)
        if self.fce_steps < 1:
            raise ValueError(f"fce-steps must be a positive integer, got {self.fce_steps}")
        if not self.cosine_scale > 0:
            raise ValueError(f"cosine-scale must be positive, got {self.cosine_scale}")


class FullContextEmbedding(nn.Module):
    """The full context embeddings g and f of Vinyals et al. (2016, appendix A), batched over tasks.

    g (A.2): a bidirectional LSTM over the support embeddings ``g'(x_i)`` in the episode's order, with a
    skip connection, ``g(x_i) = g'(x_i) + h_fwd_i + h_bwd_i``.

    f (A.1): an LSTM with K read steps over the support set, started from ``h_0 = c_0 = 0``::

        h^_k, c_k = LSTM(f'(x), [h_(k-1), r_(k-1)], c_(k-1));   h_k = h^_k + f'(x)
        r_k = sum_i softmax_i(h_k . g(x_i)) g(x_i)

    and ``f(x) = h_K``. ``r_0`` is the read with ``h_0 = 0``, i.e. uniform attention, the mean of the
    ``g(x_i)`` (as in Ravi & Larochelle's code). An LSTM whose previous hidden state is the concatenation
    ``[h, r]`` computes the same gates as one that reads the input ``[f'(x), r]`` with hidden state ``h``;
    the latter is ``nn.LSTMCell(2 D, D)``.
    """

    def __init__(self, size: int, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.support_lstm = nn.LSTM(size, size, batch_first=True, bidirectional=True)
        self.query_lstm = nn.LSTMCell(2 * size, size)

    def embed_support(self, support: Tensor) -> Tensor:
        """g: ``[T, S, D]`` to ``[T, S, D]``."""
        hidden, _ = self.support_lstm(support)
        forward, backward = hidden.chunk(2, dim=-1)
        return support + forward + backward

    def embed_query(self, query: Tensor, support: Tensor) -> Tensor:
        """f: the query embeddings ``f'(x) [T, Q, D]`` read the support set ``g(x_i) [T, S, D]``: ``[T, Q, D]``."""
        tasks, queries, size = query.shape
        x = query.reshape(tasks * queries, size)
        h = c = torch.zeros_like(x)
        read = support.mean(dim=1, keepdim=True).expand(tasks, queries, size)
        for _ in range(self.steps):
            h_hat, c = self.query_lstm(torch.cat([x, read.reshape(tasks * queries, size)], dim=-1), (h, c))
            h = h_hat + x
            attention = torch.softmax(h.view(tasks, queries, size) @ support.transpose(1, 2), dim=-1)  # [T, Q, S]
            read = attention @ support
        return h.view(tasks, queries, size)


class MatchingNetworkModel(nn.Module):
    """The embedding (a Conv4 trunk, shared by the support and query sides as f' = g') and, with FCE, the
    context embeddings; :meth:`forward` gives the query class log-probabilities."""

    def __init__(self, embedding: nn.Module, size: int, fce: FullContextEmbedding | None = None,
                 cosine_scale: float = 1.0) -> None:
        super().__init__()
        self.embedding = embedding
        self.size = size
        self.fce = fce
        self.cosine_scale = cosine_scale

    def forward(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        """``[T, Q, ways]`` log P(y | query, support set) for images ``[T, S|Q, C, H, W]``, labels ``[T, S]``."""
        support, query = embed_tasks(self.embedding, support_x, query_x)
        if self.fce is not None:
            support = self.fce.embed_support(support)
            query = self.fce.embed_query(query, support)
        return attention_log_probabilities(query, support, support_y, ways, self.cosine_scale)


class MatchingNetwork(EpisodicTraining, _MetricLearner):
    """Matching Networks trained episodically with Adam on the query negative log-likelihood.

    Every task of an episode goes through at once (no loop over tasks), with any number of ways and
    shots; the number of ways is read off the labels.
    """

    method: ClassVar[str] = "matching_net"
    Config: ClassVar[type] = MatchingNetworkConfig

    def __init__(self, embedding: nn.Module, size: int, config: MatchingNetworkConfig | None = None,
                 device: str | torch.device = "cpu") -> None:
        """``embedding`` maps images ``[N, C, H, W]`` to ``[N, size]``."""
        config = config or MatchingNetworkConfig()
        fce = FullContextEmbedding(size, config.fce_steps) if config.fce else None
        super().__init__(MatchingNetworkModel(embedding, size, fce, config.cosine_scale), config, device)

    @classmethod
    def create(cls, model: dict[str, Any], distribution: SupervisedTaskDistribution, config: MatchingNetworkConfig,
               device: torch.device) -> MatchingNetwork:
        """The embedding is the trunk of the Conv4 of ``model`` (its ``features``); its classifier is unused."""
        if distribution.loss != "cross_entropy":
            raise ValueError(f"Matching Networks classify; the distribution's loss is {distribution.loss!r}")
        conv = build_model(conv4_spec(model, config.norm))
        return cls(conv.features, conv.classifier.in_features, config, device)

    def meta_train_step(self, episode: Episode) -> dict[str, float]:
        """One Adam step on the mean query negative log-likelihood over the episode's tasks."""
        self.network.train()
        support_x, support_y, query_x, query_y = episode.to(self.device).tensors()
        ways = int(torch.maximum(support_y.max(), query_y.max())) + 1
        log_probabilities = self.network(support_x, support_y, query_x, ways)
        loss = F.nll_loss(log_probabilities.flatten(0, 1), query_y.flatten())
        self._update(loss)
        accuracy = (log_probabilities.detach().argmax(-1) == query_y).float().mean()
        return {"query_loss": loss.item(), "query_accuracy": accuracy.item()}

    def _log_probabilities(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        return self.network(support_x, support_y, query_x, int(support_y.max()) + 1)

    def _predict(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        return self._log_probabilities(support_x, support_y, query_x).argmax(dim=-1)
