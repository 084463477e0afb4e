"""Short meta-trainings that tests/test_distributed.py runs in one process and under torchrun.

Each case builds its learner from a fixed seed, takes a few meta-steps on meta-batches drawn from a seeded
generator, evaluates, and returns the final parameters, the step metrics and the evaluation rows. Run as a
script (``torchrun --nproc_per_node=2 tests/distributed_cases.py OUT``), every rank writes its results to
``OUT/rank<R>.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from metarl import distributed
from metarl.maml import MAML, MAMLConfig
from metarl.models import MLP, Conv4
from metarl.rl.experiment import RLConfig, RLExperiment
from metarl.rl.maml_trpo import MAMLTRPOConfig
from metarl.tasks import Episode
from metarl.train import TrainConfig
from supervised.sinusoid import make_sinusoid

STEPS = 3
"""Meta-steps per case."""


def _parameters(module: nn.Module, leave_out: tuple[str, ...] = ()) -> dict[str, Tensor]:
    return {name: p.detach().clone() for name, p in module.state_dict().items() if name not in leave_out}


def _gradients(module: nn.Module, leave_out: tuple[str, ...] = ()) -> dict[str, Tensor]:
    """The last meta-gradient (Adam, unlike the comparison, would not notice one scaled by a constant)."""
    return {name: p.grad.clone() for name, p in module.named_parameters() if name not in leave_out}


def sinusoid_maml() -> dict[str, Any]:
    """MAML's batched (vmap) path on sinusoid meta-batches of 5 tasks (2 and 3 per rank)."""
    torch.manual_seed(0)
    learner = MAML(MLP([1, 16, 16, 1]), "mse", MAMLConfig(meta_lr=0.01, path="batched"))
    initial = _parameters(learner.model)
    family, rng = make_sinusoid("train", shots=5, queries=5), np.random.default_rng(0)
    metrics = [learner.meta_train_step(learner.training_batch(family, 5, rng)) for _ in range(STEPS)]
    evaluation = [learner.evaluate(learner.training_batch(family, tasks, rng), steps=2) for tasks in (3, 1)]
    return {"initial": initial, "params": _parameters(learner.model), "gradients": _gradients(learner.model),
            "metrics": metrics, "evaluation": evaluation}


def _image_episode(tasks: int, generator: torch.Generator, ways: int = 3, shots: int = 2) -> Episode:
    """Random 8x8 images, ``shots`` per class, for the support and the query set."""
    labels = torch.arange(ways).repeat(shots).expand(tasks, -1)
    images = [torch.randn(tasks, ways * shots, 1, 8, 8, generator=generator) for _ in range(2)]
    return Episode(images[0], labels, images[1], labels)


CANCELLED_BY_NORM = ("features.0.bias", "features.4.bias")
"""Biases of convolutions that batch norm follows: their meta-gradient is zero up to rounding (about 1e-8),
and Adam scales that noise to full-size steps, so these are left out of the comparison."""


def conv_meta_sgd() -> dict[str, Any]:
    """Meta-SGD on a small Conv4 with per-task batch norm, MAML's per-task path, meta-batches of 3 tasks."""
    torch.manual_seed(0)
    model = Conv4(1, 3, hidden=4, image_size=8, blocks=2)
    learner = MAML(model, "cross_entropy", MAMLConfig(inner_lr=0.4, meta_lr=0.01, meta_sgd=True, path="per_task"))
    initial = _parameters(learner.model, CANCELLED_BY_NORM)
    generator = torch.Generator().manual_seed(0)
    metrics = [learner.meta_train_step(_image_episode(3, generator)) for _ in range(STEPS)]
    evaluation = [learner.evaluate(_image_episode(3, generator), steps=2)]
    inner_lrs = {f"inner_lr.{name}": lr.detach().clone() for name, lr in learner.inner_lrs.items()
                 if name not in CANCELLED_BY_NORM}
    return {"initial": initial, "params": {**_parameters(learner.model, CANCELLED_BY_NORM), **inner_lrs},
            "gradients": _gradients(learner.model, CANCELLED_BY_NORM), "metrics": metrics,
            "evaluation": evaluation}


def _navigation_trpo(dtype: torch.dtype) -> dict[str, Any]:
    """MAML-TRPO on Navigation2D, meta-batches of 5 tasks (2 and 3 per rank), 2 episodes of 10 steps per task.

    The conjugate-gradient damping is 0.1, not the paper's 1e-5: this tiny policy's Fisher matrix is nearly
    singular, and with 1e-5 the solve amplifies rounding so much that even one process's batched and
    per-task paths, whose gradients agree to 1e-16 in float64, end a step 5e-4 apart.
    """
    config = RLConfig(env_id="envs:metarl/Navigation2D-v0", horizon=10,
                      maml=MAMLTRPOConfig(inner_lr=0.5, episodes_per_task=2, eval_episodes_per_task=2, hidden=(8,),
                                          cg_damping=0.1),
                      train=TrainConfig(meta_batch_size=5, progress=False))
    experiment = RLExperiment(config)
    experiment.learner.policy.to(dtype)
    initial = _parameters(experiment.learner.policy)
    rng = np.random.default_rng(0)
    metrics = [experiment.learner.meta_train_step(experiment.sample_batch(rng)) for _ in range(STEPS)]
    evaluation = [experiment.evaluate(tasks, steps=1).mean for tasks in (3, 1)]
    return {"initial": initial, "params": _parameters(experiment.learner.policy), "metrics": metrics,
            "evaluation": [torch.tensor(e) for e in evaluation]}


def navigation_trpo() -> dict[str, Any]:
    """MAML-TRPO with the float32 policy of every run."""
    return _navigation_trpo(torch.float32)


def navigation_trpo_float64() -> dict[str, Any]:
    """MAML-TRPO in float64, where rounding is far smaller, so a tight tolerance can tell that the two
    processes compute what one does."""
    return _navigation_trpo(torch.float64)


CASES = (sinusoid_maml, conv_meta_sgd, navigation_trpo, navigation_trpo_float64)

if __name__ == "__main__":
    out = Path(sys.argv[1])
    torch.save({case.__name__: case() for case in CASES}, out / f"rank{distributed.rank()}.pt")
