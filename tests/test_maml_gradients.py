"""The MAML meta-gradient of both paths equals a plain autograd reference (float64)."""

import pytest
import torch
from torch.func import functional_call

from metarl.functional import LOSSES
from metarl.maml import MAML, MAMLConfig
from metarl.models import MLP, Conv4
from metarl.tasks import Episode


def reference_meta_gradient(model, loss_name, episode, steps, lrs, first_order):
    """Per-task loop written with torch.autograd.grad(create_graph=True), independent of metarl.functional."""
    loss_fn = LOSSES[loss_name]
    params = dict(model.named_parameters())
    total = 0.0
    for i in range(episode.num_tasks):
        sx, sy, qx, qy = (t[i] for t in episode.tensors())
        fast = params
        for _ in range(steps):
            inner = loss_fn(functional_call(model, fast, (sx,)), sy)
            grads = torch.autograd.grad(inner, list(fast.values()), create_graph=not first_order)
            fast = {name: p - lrs[name] * g for (name, p), g in zip(fast.items(), grads)}
        total = total + loss_fn(functional_call(model, fast, (qx,)), qy)
    wrt = list(params.values()) + [lr for lr in lrs.values() if isinstance(lr, torch.Tensor)]
    return torch.autograd.grad(total / episode.num_tasks, wrt)


def mlp_episode(tasks=4, shots=5):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(tasks, 2 * shots, 1, generator=g, dtype=torch.float64) * 10 - 5
    y = torch.sin(x) * torch.rand(tasks, 1, 1, generator=g, dtype=torch.float64)
    return MLP([1, 16, 16, 1]).double(), "mse", Episode(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])


def conv_episode(tasks=3, ways=3, shots=2, queries=2):
    g = torch.Generator().manual_seed(1)
    sx = torch.rand(tasks, ways * shots, 1, 16, 16, generator=g, dtype=torch.float64)
    qx = torch.rand(tasks, ways * queries, 1, 16, 16, generator=g, dtype=torch.float64)
    sy = torch.arange(ways).repeat_interleave(shots).expand(tasks, -1)
    qy = torch.arange(ways).repeat_interleave(queries).expand(tasks, -1)
    return Conv4(1, ways, hidden=6, image_size=16).double(), "cross_entropy", Episode(sx, sy, qx, qy)


@pytest.mark.parametrize("make", [mlp_episode, conv_episode], ids=["mlp", "conv4-batchnorm"])
@pytest.mark.parametrize("steps,first_order", [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("path,threads", [("batched", 0), ("per_task", 1), ("per_task", 2)],
                         ids=["batched", "per_task", "per_task-2-threads"])
@pytest.mark.parametrize("meta_sgd", [False, True], ids=["fixed-lr", "meta-sgd"])
@pytest.mark.parametrize("checkpoint", [False, True], ids=["", "checkpointed"])
def test_meta_gradient_matches_autograd_reference(make, steps, first_order, path, threads, meta_sgd, checkpoint):
    torch.manual_seed(0)
    model, loss, episode = make()
    config = MAMLConfig(inner_lr=0.1, inner_steps=steps, first_order=first_order, meta_sgd=meta_sgd, path=path,
                        checkpoint_steps=checkpoint, task_threads=threads)
    maml = MAML(model, loss, config)
    if meta_sgd:  # distinct per-element step sizes, so a wrong broadcast would show
        with torch.no_grad():
            for lr in maml.inner_lrs.values():
                lr.uniform_(0.05, 0.15)
    lrs = maml.inner_lrs if meta_sgd else {name: 0.1 for name, _ in model.named_parameters()}
    expected = reference_meta_gradient(model, loss, episode, steps, lrs, first_order)

    maml.optimizer.zero_grad()
    maml.meta_backward(episode)
    actual = [p.grad for p in model.parameters()] + [lr.grad for lr in maml.inner_lrs.values()]
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-12)
    # The test only means something if the gradient is not trivially zero.
    assert sum(e.abs().sum() for e in expected) > 0


def test_first_order_differs_from_second_order():
    torch.manual_seed(0)
    model, loss, episode = conv_episode()
    grads = []
    for first_order in (False, True):
        maml = MAML(model, loss, MAMLConfig(inner_lr=0.4, first_order=first_order, path="per_task"))
        maml.optimizer.zero_grad()
        maml.meta_backward(episode)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert not torch.allclose(grads[0], grads[1])


def test_both_batch_norm_implementations_are_the_same_function():
    from metarl.models import TaskBatchNorm2d, vmap_safe_norm

    model, loss, episode = conv_episode()
    lrs = {name: 0.1 for name, _ in model.named_parameters()}
    results = []
    for vmap_safe in (False, True):
        with vmap_safe_norm(model, vmap_safe):
            results.append(reference_meta_gradient(model, loss, episode, 2, lrs, first_order=False))
    assert not any(m.vmap_safe for m in model.modules() if isinstance(m, TaskBatchNorm2d))  # restored
    for fused, safe in zip(*results):
        torch.testing.assert_close(fused, safe, rtol=1e-9, atol=1e-12)
