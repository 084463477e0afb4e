"""Sinusoid tasks: reproducible from a seed, inside the paper's ranges, and learnable by MAML."""

import numpy as np
import pytest
import torch

from metarl.evaluate import evaluate_supervised
from metarl.maml import MAML, MAMLConfig
from metarl.models import MLP
from metarl.tasks import Task
from supervised.sinusoid import Sinusoid, make_sinusoid


def test_same_seed_gives_same_tasks_and_episodes():
    family = make_sinusoid(shots=5, queries=7)
    first = family.sample_tasks(8, np.random.default_rng(3))
    again = family.sample_tasks(8, np.random.default_rng(3))
    other = family.sample_tasks(8, np.random.default_rng(4))
    assert first == again and first != other
    a = family.episode(first, np.random.default_rng(5))
    b = family.episode(first, np.random.default_rng(5))
    for x, y in zip(a.tensors(), b.tensors()):
        assert torch.equal(x, y)


def test_tasks_and_points_follow_the_paper_distribution():
    family = Sinusoid(shots=10, queries=10)
    tasks = family.sample_tasks(2000, np.random.default_rng(0))
    amplitudes = np.array([t["amplitude"] for t in tasks])
    phases = np.array([t["phase"] for t in tasks])
    assert 0.1 <= amplitudes.min() and amplitudes.max() <= 5.0 and 2.4 < amplitudes.mean() < 2.7
    assert 0.0 <= phases.min() and phases.max() <= np.pi
    episode = family.episode(tasks[:3], np.random.default_rng(1))
    assert episode.support_x.shape == (3, 10, 1) and episode.query_y.shape == (3, 10, 1)
    assert episode.support_x.abs().max() <= 5.0
    expected = tasks[0]["amplitude"] * torch.sin(episode.support_x[0] - tasks[0]["phase"])
    torch.testing.assert_close(episode.support_y[0], expected)


def test_task_outside_the_distribution_is_refused():
    with pytest.raises(ValueError, match="outside"):
        make_sinusoid().episode([Task("sinusoid", {"amplitude": 9.0, "phase": 0.0})], np.random.default_rng(0))
    with pytest.raises(ValueError, match="part"):
        make_sinusoid("holdout")


def test_short_training_lowers_post_adaptation_mse():
    torch.manual_seed(0)
    family = make_sinusoid(shots=10)
    maml = MAML(MLP([1, 40, 40, 1]), "mse", MAMLConfig(inner_lr=0.01, eval_inner_steps=5))

    def held_out():
        return evaluate_supervised(maml, family, 100, 5, np.random.default_rng(123), 25)

    before = held_out()
    rng = np.random.default_rng(0)
    for _ in range(300):
        maml.meta_train_step(family.episode(family.sample_tasks(25, rng), rng))
    after = held_out()
    assert after.mean[5] < 0.6 * before.mean[5]
    assert after.mean[5] < after.mean[0]  # adaptation itself helps
