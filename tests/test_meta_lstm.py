"""The LSTM meta-learner (Ravi & Larochelle 2017): the preprocessing by hand, SGD as a special case of its
update, the dropped second-order terms, checkpoints, and a short run that learns."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from metarl.functional import forward
from metarl.meta_lstm import MetaLSTM, MetaLSTMConfig, ParameterLayout, preprocess
from metarl.models import MLP, Conv4
from supervised.episodes import FewShotClassification


def test_preprocessing_matches_hand_computed_values_on_both_sides_of_the_threshold():
    p = 10.0
    threshold = math.exp(-p)  # 4.54e-5
    x = torch.tensor([2.0, -0.5, 1e-3, threshold * 2, threshold / 2, -threshold / 4, 0.0], dtype=torch.float64)
    expected = torch.tensor([
        [math.log(2.0) / p, 1.0],
        [math.log(0.5) / p, -1.0],
        [math.log(1e-3) / p, 1.0],
        [math.log(threshold * 2) / p, 1.0],  # = (-p + log 2) / p
        [-1.0, 0.5],  # e^p * threshold / 2
        [-1.0, -0.25],
        [-1.0, 0.0],
    ], dtype=torch.float64)
    torch.testing.assert_close(preprocess(x, p), expected)
    assert preprocess(torch.zeros(3, 4), p).shape == (3, 4, 2)


def test_with_gates_forced_to_sgd_one_update_is_one_sgd_step():
    torch.manual_seed(0)
    lr = 0.03
    learner = MetaLSTM(MLP([3, 8, 2]), "cross_entropy")
    meta = learner.meta_learner
    with torch.no_grad():
        meta.forget_weight.zero_()
        meta.input_weight.zero_()
        meta.forget_bias.fill_(60.0)  # sigmoid(60) == 1 in float32
        meta.input_bias.fill_(math.log(lr / (1 - lr)))  # sigmoid(logit(lr)) == lr
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    theta = learner._adapt(x, y, steps=1)[1]

    params = {name: p.detach().clone().requires_grad_() for name, p in learner.model.named_parameters()}
    loss = nn.functional.cross_entropy(forward(learner.model, params, x), y)
    grads = torch.autograd.grad(loss, list(params.values()))
    sgd = {name: p - lr * g for (name, p), g in zip(params.items(), grads)}
    torch.testing.assert_close(learner.layout.unflatten(theta.detach()), sgd, rtol=1e-6, atol=1e-7)


def test_meta_gradient_treats_the_learner_gradient_as_a_constant():
    """With the update c_1 = f * c_0 - i * g and g a constant, d(query loss)/d(c_0) is f times the query
    gradient at c_1 (plus the path through the gates, switched off here by zero gate weights)."""
    torch.manual_seed(1)
    learner = MetaLSTM(MLP([3, 5, 2]), "cross_entropy")
    with torch.no_grad():
        learner.meta_learner.forget_weight.zero_()
        learner.meta_learner.input_weight.zero_()
    x, y = torch.randn(6, 3), torch.randint(0, 2, (6,))
    qx, qy = torch.randn(7, 3), torch.randint(0, 2, (7,))
    theta = learner._adapt(x, y, steps=1)[1]
    query_loss = nn.functional.cross_entropy(learner._predict(theta, qx), qy)
    (meta_grad,) = torch.autograd.grad(query_loss, learner.initial)

    point = theta.detach().requires_grad_()
    (query_grad,) = torch.autograd.grad(nn.functional.cross_entropy(learner._predict(point, qx), qy), point)
    forget = torch.sigmoid(learner.meta_learner.forget_bias.detach())
    torch.testing.assert_close(meta_grad, forget * query_grad)


def test_parameter_layout_round_trips_and_gates_start_close_to_small_sgd():
    model = Conv4(3, 5, hidden=4, image_size=84)
    layout = ParameterLayout(model)
    params = dict(model.named_parameters())
    flat = layout.flatten(params)
    assert flat.numel() == sum(p.numel() for p in model.parameters()) == layout.numel
    for name, value in layout.unflatten(flat).items():
        assert torch.equal(value, params[name])
    meta = MetaLSTM(model, "cross_entropy", MetaLSTMConfig().for_shots(1)).meta_learner
    assert 4 <= meta.forget_bias.item() <= 5 and -5 <= meta.input_bias.item() <= -4


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="inner_steps"):
        MetaLSTMConfig(inner_steps=0)
    with pytest.raises(ValueError, match="meta_lr"):
        MetaLSTMConfig(meta_lr=0.0)
    with pytest.raises(ValueError, match="forget-bias"):
        MetaLSTMConfig(forget_bias=(5.0, 4.0))
    with pytest.raises(ValueError, match="for_shots"):
        MetaLSTM(MLP([2, 2]), "cross_entropy", MetaLSTMConfig())


def test_updates_per_episode_follow_the_authors_code_unless_set():
    assert MetaLSTMConfig().for_shots(1).inner_steps == 12
    assert MetaLSTMConfig().for_shots(5).inner_steps == 8
    assert MetaLSTMConfig(inner_steps=3).for_shots(5).inner_steps == 3
    assert MetaLSTM(MLP([2, 2]), "cross_entropy").eval_steps == 12


def blob_classes(classes: int, rng: np.random.Generator, size: int = 12, per_class: int = 10) -> np.ndarray:
    """A random binary pattern per class, each example with 10% of its pixels flipped."""
    prototypes = rng.random((classes, 1, size, size)) < 0.5
    return ((prototypes ^ (rng.random((classes, per_class, size, size)) < 0.1)) * 255).astype(np.uint8)


def test_checkpoint_round_trip_gives_identical_evaluations():
    rng = np.random.default_rng(0)
    family = FewShotClassification(blob_classes(8, rng), family="blobs", ways=3, shots=1, queries=2)
    episode = family.episode(family.sample_tasks(2, rng), rng)
    torch.manual_seed(0)
    learner = MetaLSTM(Conv4(1, 3, hidden=4, image_size=12, blocks=2), "cross_entropy", MetaLSTMConfig(inner_steps=2))
    learner.meta_train_step(episode)
    torch.manual_seed(1)
    fresh = MetaLSTM(Conv4(1, 3, hidden=4, image_size=12, blocks=2), "cross_entropy", MetaLSTMConfig(inner_steps=2))
    fresh.load_state_dict(learner.state_dict())
    torch.testing.assert_close(fresh.evaluate(episode), learner.evaluate(episode))
    assert learner.evaluate(episode).shape == (2, 3) and learner.evaluate(episode, steps=5).shape == (2, 6)
    other = MetaLSTM(Conv4(1, 3, hidden=8, image_size=12, blocks=2), "cross_entropy")
    with pytest.raises(ValueError, match="parameters"):
        other.load_state_dict(learner.state_dict())


def test_a_short_meta_training_run_learns_to_adapt():
    """3-way 1-shot on random binary patterns: after 150 episodes the adapted learner beats chance clearly and
    beats its own unadapted initialisation."""
    rng = np.random.default_rng(0)
    train = FewShotClassification(blob_classes(40, rng), family="blobs", ways=3, shots=1, queries=5)
    test = FewShotClassification(blob_classes(20, rng), family="blobs", ways=3, shots=1, queries=5)
    torch.manual_seed(0)
    learner = MetaLSTM(Conv4(1, 3, hidden=8, image_size=12, blocks=2), "cross_entropy",
                       MetaLSTMConfig(inner_steps=5, meta_lr=3e-3))
    for _ in range(150):
        learner.meta_train_step(train.episode(train.sample_tasks(2, rng), rng))
    curve = learner.evaluate(test.episode(test.sample_tasks(50, rng), rng)).mean(0)
    assert curve[-1] > 0.6 and curve[-1] > curve[0] + 0.2, curve
