"""The metric baselines (metarl.metric): 1-NN on pre-trained features and Matching Networks, on tiny synthetic data."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from metarl.metric import (
    FullContextEmbedding,
    MatchingNetwork,
    MatchingNetworkConfig,
    NearestNeighbour,
    NearestNeighbourConfig,
    attention_log_probabilities,
    embed_tasks,
    nearest_neighbour_labels,
)
from metarl.models import Conv4, TaskBatchNorm2d
from metarl.tasks import Episode
from supervised.episodes import FewShotClassification

CPU = torch.device("cpu")
SPEC = {"name": "conv4", "in_channels": 1, "out_features": 5, "hidden": 8, "image_size": 28}
CLASSES = 16


pytestmark = pytest.mark.usefixtures("one_thread")


def patterns(seed: int, classes: int = CLASSES, per_class: int = 20, noise: float = 0.2) -> np.ndarray:
    """``[classes, per_class, 28, 28]`` uint8: each class a random 7x7 binary pattern (4x4-pixel blocks) plus noise."""
    rng = np.random.default_rng(seed)
    prototypes = np.kron(rng.random((classes, 1, 7, 7)) < 0.5, np.ones((1, 1, 4, 4)))
    images = 0.25 + 0.5 * prototypes + noise * rng.standard_normal((classes, per_class, 28, 28))
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8)


def distribution(seed: int = 0, ways: int = 5, shots: int = 1, queries: int = 5) -> FewShotClassification:
    return FewShotClassification(patterns(seed), family="toy", ways=ways, shots=shots, queries=queries)


def episode(dist: FewShotClassification, tasks: int, seed: int = 0) -> Episode:
    rng = np.random.default_rng(seed)
    return dist.episode(dist.sample_tasks(tasks, rng), rng)


def nearest_neighbour(seed: int = 0, **config) -> NearestNeighbour:
    torch.manual_seed(seed)
    return NearestNeighbour.create(SPEC, distribution(), NearestNeighbourConfig(**config), CPU)


def matching_net(seed: int = 0, **config) -> MatchingNetwork:
    torch.manual_seed(seed)
    return MatchingNetwork.create(SPEC, distribution(), MatchingNetworkConfig(**config), CPU)


LEARNERS = {
    "nearest_neighbour": nearest_neighbour,
    "matching_net": matching_net,
    "matching_net_fce": lambda seed=0, **config: matching_net(seed, fce=True, **config),
}


def vectors(rows: list[list[list[float]]]) -> torch.Tensor:
    """Embedding vectors ``[T, N, D]`` as "images" ``[T, N, D, 1, 1]`` (an identity embedding flattens them back)."""
    return torch.tensor(rows)[..., None, None]


# --- 1-NN -------------------------------------------------------------------------------------------
# The query (1, 0.1) points the way of the far support (10, 0) but lies next to (0.5, 0.5): cosine picks
# the first, Euclidean distance the second. The query (0.1, 1) is nearest to (0.5, 0.5) either way.
SUPPORT = [[10.0, 0.0], [0.5, 0.5]]
QUERIES = [[1.0, 0.1], [0.1, 1.0]]


def test_nearest_neighbour_picks_the_nearest_support_embedding() -> None:
    support, query = torch.tensor([SUPPORT, SUPPORT]), torch.tensor([QUERIES, QUERIES])
    labels = torch.tensor([[0, 1], [1, 0]])  # the second task labels the same supports the other way round
    assert nearest_neighbour_labels(query, support, labels, "cosine").tolist() == [[0, 1], [1, 0]]
    assert nearest_neighbour_labels(query, support, labels, "euclidean").tolist() == [[1, 1], [0, 0]]
    with pytest.raises(ValueError, match="distance"):
        nearest_neighbour_labels(query, support, labels, "manhattan")  # type: ignore[arg-type]


@pytest.mark.parametrize(("distance", "accuracy"), [("cosine", [1.0, 1.0]), ("euclidean", [0.5, 0.5])])
def test_nearest_neighbour_evaluate_classifies_by_the_trunk(distance: str, accuracy: list[float]) -> None:
    learner = nearest_neighbour(distance=distance)
    learner.network.features = nn.Flatten()  # the trunk's features are the vectors themselves
    query_y = torch.tensor([[0, 1], [1, 0]])  # what cosine 1-NN answers
    ep = Episode(vectors([SUPPORT, SUPPORT]), torch.tensor([[0, 1], [1, 0]]), vectors([QUERIES, QUERIES]), query_y)
    assert learner.evaluate(ep).flatten().tolist() == accuracy


# --- Matching Networks' attention ---------------------------------------------------------------------
def test_matching_probabilities_equal_the_hand_computed_attention() -> None:
    learner = matching_net()
    identity = nn.Linear(2, 2, bias=False)  # a parameter, so that a training step has something to differentiate
    nn.init.eye_(identity.weight)
    learner.network.embedding = nn.Sequential(nn.Flatten(), identity)  # f' = g' = identity
    support_x, support_y = vectors([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]]), torch.tensor([[0, 1, 1]])
    query_x, query_y = vectors([[[1.0, 0.0], [0.0, 2.0]]]), torch.tensor([[0, 1]])
    e, r = math.e, math.exp(1 / math.sqrt(2))  # cosine 1 and 1/sqrt(2); cosine 0 gives exp(0) = 1
    # Query (1, 0): cosines (1, 0, 1/sqrt 2) with the supports; query (0, 2): (0, 1, 1/sqrt 2).
    expected = torch.tensor([[[e / (e + 1 + r), (1 + r) / (e + 1 + r)],
                              [1 / (1 + e + r), (e + r) / (1 + e + r)]]])
    with torch.no_grad():
        probabilities = learner.network(support_x, support_y, query_x, 2).exp()
    assert torch.allclose(probabilities, expected, atol=1e-6)
    # A third class without support examples gets probability 0, and a finite log-probability.
    log_p = attention_log_probabilities(query_x.flatten(2), support_x.flatten(2), support_y, 3)
    assert torch.isfinite(log_p).all() and torch.allclose(log_p.exp()[..., :2], expected, atol=1e-6)
    assert (log_p.exp()[..., 2] < 1e-30).all()
    # The training loss is the mean query negative log-likelihood.
    ep = Episode(support_x, support_y, query_x, query_y)
    loss = learner.meta_train_step(ep)["query_loss"]
    assert loss == pytest.approx(-(math.log(expected[0, 0, 0]) + math.log(expected[0, 1, 1])) / 2, abs=1e-6)
    # The query (1, 0) equals the one support of class 0, yet class 1's two supports outweigh it (0.527 > 0.473).
    assert learner.evaluate(ep).tolist() == [[0.5]]


def test_cosine_scale_sharpens_the_attention() -> None:
    support, support_y = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]]), torch.tensor([[0, 1, 1]])
    query = torch.tensor([[[1.0, 0.0]]])  # cosines (1, 0, 1/sqrt 2)
    scaled = [math.exp(10 * c) for c in (1.0, 0.0, 1 / math.sqrt(2))]
    expected = torch.tensor([scaled[0], scaled[1] + scaled[2]]) / sum(scaled)
    log_p = attention_log_probabilities(query, support, support_y, 2, scale=10.0)
    assert torch.allclose(log_p.exp().flatten(), expected, atol=1e-6)
    assert log_p.exp()[0, 0, 0] > 0.9  # the nearest support now decides, where scale 1 gave it 0.473
    learner = matching_net(cosine_scale=10.0)
    assert learner.network.cosine_scale == 10.0
    with pytest.raises(ValueError, match="cosine-scale"):
        MatchingNetworkConfig(cosine_scale=0.0)


# --- full context embeddings --------------------------------------------------------------------------
@pytest.mark.parametrize("shots", [1, 5])
def test_fce_shapes_for_any_shots(shots: int) -> None:
    learner = matching_net(fce=True)
    ep = episode(distribution(seed=1, ways=5, shots=shots, queries=3), tasks=3)
    learner.network.eval()
    with torch.no_grad():
        log_p = learner.network(ep.support_x, ep.support_y, ep.query_x, 5)
    assert log_p.shape == (3, 15, 5)
    assert torch.allclose(log_p.exp().sum(-1), torch.ones(3, 15), atol=1e-5)
    with torch.no_grad():  # the context embeddings are in use: without them the same trunk answers otherwise
        support, query = embed_tasks(learner.network.embedding, ep.support_x, ep.query_x)
        assert not torch.allclose(attention_log_probabilities(query, support, ep.support_y, 5), log_p, atol=1e-3)
    assert learner.evaluate(ep).shape == (3, 1)
    assert math.isfinite(learner.meta_train_step(ep)["query_loss"])


def test_fce_follows_the_papers_equations() -> None:
    torch.manual_seed(0)
    size, steps = 4, 3
    fce = FullContextEmbedding(size, steps)
    f_prime, g_prime = torch.randn(2, 3, size), torch.randn(2, 5, size)
    with torch.no_grad():
        g = fce.embed_support(g_prime)
        f = fce.embed_query(f_prime, g)
        # f by hand for task 1, query 2: h_0 = c_0 = 0, r_0 = the mean of g (uniform attention), K reads.
        cell, x, g1 = fce.query_lstm, f_prime[1, 2], g[1]
        h, c, read = torch.zeros(size), torch.zeros(size), g1.mean(0)
        for _ in range(steps):
            gates = cell.weight_ih @ torch.cat([x, read]) + cell.bias_ih + cell.weight_hh @ h + cell.bias_hh
            i, forget, candidate, o = gates.chunk(4)
            c = torch.sigmoid(forget) * c + torch.sigmoid(i) * torch.tanh(candidate)
            h = torch.sigmoid(o) * torch.tanh(c) + x  # skip connection: h_k = h^_k + f'(x)
            read = torch.softmax(g1 @ h, dim=0) @ g1
        assert torch.allclose(f[1, 2], h, atol=1e-5)
        # Tasks do not see each other: task 0 alone gives the same embeddings.
        assert torch.allclose(fce.embed_support(g_prime[:1]), g[:1], atol=1e-6)
        assert torch.allclose(fce.embed_query(f_prime[:1], g[:1]), f[:1], atol=1e-6)
        # g is bidirectional: the first support embedding depends on the last and vice versa.
        changed = g_prime.clone()
        changed[:, -1] += 1.0
        assert not torch.allclose(fce.embed_support(changed)[:, 0], g[:, 0])
        changed = g_prime.clone()
        changed[:, 0] += 1.0
        assert not torch.allclose(fce.embed_support(changed)[:, -1], g[:, -1])
        # With every LSTM weight zero the LSTMs output 0 and only the skip connections remain.
        for p in fce.parameters():
            p.zero_()
        assert torch.equal(fce.embed_support(g_prime), g_prime)
        assert torch.equal(fce.embed_query(f_prime, g_prime), f_prime)


# --- batch norm ---------------------------------------------------------------------------------------
def test_embed_tasks_batch_norm_statistics() -> None:
    ep = episode(distribution(), tasks=2)
    other_task = ep.support_x.clone()
    other_task[1] = 1 - other_task[1]
    other_query = ep.query_x.clone()
    other_query[0] = 1 - other_query[0]
    torch.manual_seed(0)
    task_norm = Conv4(1, 5, hidden=8, image_size=28).features
    assert any(isinstance(m, TaskBatchNorm2d) for m in task_norm.modules())
    with torch.no_grad():
        support, _ = embed_tasks(task_norm, ep.support_x, ep.query_x)
        # Each task is one batch of its own support and query images (transductive), apart from the others.
        assert torch.allclose(embed_tasks(task_norm, other_task, ep.query_x)[0][0], support[0], atol=1e-5)
        assert not torch.allclose(embed_tasks(task_norm, ep.support_x, other_query)[0][0], support[0], atol=1e-3)
    running = Conv4(1, 5, hidden=8, image_size=28, norm="running")
    running.train()
    running(ep.query_x.flatten(0, 1))  # running statistics away from their initial values
    running.eval()
    with torch.no_grad():
        support, query = embed_tasks(running.features, ep.support_x, ep.query_x)
        # Running statistics: every image is embedded on its own.
        assert torch.allclose(embed_tasks(running.features, ep.support_x, other_query)[0], support, atol=1e-6)
        assert torch.allclose(running.features(ep.query_x[1, :1]), query[1, :1], atol=1e-5)


# --- the learner interface ----------------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["running", "task"])
@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_evaluate_gives_one_accuracy_per_task_and_refuses_steps(name: str, norm: str) -> None:
    learner = LEARNERS[name](norm=norm)
    assert learner.eval_steps == 0
    ep = episode(distribution(seed=1, ways=3, shots=2, queries=2), tasks=4)  # other ways and shots than training
    state = {k: v.clone() for k, v in learner.network.state_dict().items()}
    accuracy = learner.evaluate(ep)
    assert accuracy.shape == (4, 1) and ((accuracy >= 0) & (accuracy <= 1)).all()
    assert torch.equal(learner.evaluate(ep, 0), accuracy)
    with pytest.raises(ValueError, match="steps"):
        learner.evaluate(ep, 1)
    # Evaluation leaves the network as it was (running statistics included: it runs in eval mode) ...
    assert all(torch.equal(v, state[k]) for k, v in learner.network.state_dict().items())
    # ... and training afterwards is in training mode again: the running statistics move.
    learner.meta_train_step(learner.training_batch(distribution(), 8, np.random.default_rng(0)))
    running = [k for k in state if k.endswith("running_mean")]
    assert len(running) == (4 if norm == "running" else 0)
    assert all(not torch.equal(learner.network.state_dict()[k], state[k]) for k in running)


def test_create_builds_the_papers_networks() -> None:
    learner = nearest_neighbour()
    assert learner.network.classifier.out_features == CLASSES  # every training class, not the spec's 5 ways
    assert all(not isinstance(m, TaskBatchNorm2d) for m in learner.network.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in learner.network.modules())
    x, y = learner.training_batch(distribution(), 64, np.random.default_rng(0))
    assert x.shape == (64, 1, 28, 28) and int(y.max()) >= 5  # global class indices
    assert any(isinstance(m, TaskBatchNorm2d) for m in nearest_neighbour(norm="task").network.modules())
    embedding = matching_net().network.embedding
    assert embedding(torch.rand(3, 1, 28, 28)).shape == (3, 8)  # the Conv4 trunk, no classifier
    assert all(not isinstance(m, nn.Linear) for m in embedding.modules())
    with pytest.raises(ValueError, match="Conv4"):
        NearestNeighbour.create({"name": "mlp", "sizes": [4, 2]}, distribution(), NearestNeighbourConfig(), CPU)
    with pytest.raises(ValueError, match="norm"):
        MatchingNetwork.create({**SPEC, "norm": "task"}, distribution(), MatchingNetworkConfig(), CPU)
    with pytest.raises(ValueError, match="unknown norm"):
        Conv4(1, 5, norm="layer")
    for bad in ({"distance": "l1"}, {"lr": 0.0}, {"norm": "group"}):
        with pytest.raises(ValueError):
            NearestNeighbourConfig(**bad)
    with pytest.raises(ValueError, match="fce-steps"):
        MatchingNetworkConfig(fce_steps=0)


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_state_dict_round_trip(name: str) -> None:
    dist, rng = distribution(), np.random.default_rng(0)
    trained = LEARNERS[name](seed=0)
    for _ in range(3):  # Adam's moments and the running statistics move away from their initial values
        trained.meta_train_step(trained.training_batch(dist, 8, rng))
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    fresh = LEARNERS[name](seed=1)
    assert not all(torch.equal(a, b) for a, b in zip(fresh.network.state_dict().values(),
                                                     trained.network.state_dict().values()))
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    for key, value in trained.network.state_dict().items():
        assert torch.equal(fresh.network.state_dict()[key], value), key
    ep = episode(distribution(seed=1), tasks=6)
    assert torch.equal(fresh.evaluate(ep), trained.evaluate(ep))
    # The optimiser state came along: the same update gives the same parameters.
    batch = trained.training_batch(dist, 8, rng)
    fresh.meta_train_step(batch)
    trained.meta_train_step(batch)
    for key, value in trained.network.state_dict().items():
        assert torch.allclose(fresh.network.state_dict()[key].float(), value.float(), atol=1e-6), key


def test_load_refuses_another_architecture() -> None:
    with pytest.raises(ValueError, match="fce"):
        matching_net(fce=True).load_state_dict(matching_net().state_dict())
    with pytest.raises(ValueError, match="norm"):
        nearest_neighbour(norm="task").load_state_dict(nearest_neighbour().state_dict())


@pytest.mark.parametrize(("name", "batch_size"), [("nearest_neighbour", 64), ("matching_net", 4),
                                                  ("matching_net_fce", 4)])
def test_short_training_learns_held_out_classes(name: str, batch_size: int) -> None:
    """60 updates on 16 classes of noisy block patterns; 5-way 1-shot on 16 new patterns, chance 20%."""
    train, held_out = distribution(seed=0), distribution(seed=1)
    learner = LEARNERS[name]()
    ep = episode(held_out, tasks=50, seed=2)
    before = learner.evaluate(ep).mean().item()
    rng = np.random.default_rng(0)
    for _ in range(60):
        metrics = learner.meta_train_step(learner.training_batch(train, batch_size, rng))
    assert all(math.isfinite(v) for v in metrics.values())
    after = learner.evaluate(ep).mean().item()
    assert after >= 0.45 and after >= before + 0.15, (before, after)
