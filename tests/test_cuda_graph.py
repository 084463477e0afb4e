"""MAML's meta-step recorded as a CUDA graph (``MAMLConfig.cuda_graph``): the same updates as the eager step
where a GPU is present, and clear refusals, and checkpoints that move between the two, everywhere."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from metarl import distributed
from metarl.maml import MAML, MAMLConfig, choose_cuda_graph
from metarl.models import Conv4
from metarl.tasks import Episode

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")


def episode(seed: int, tasks: int = 4, ways: int = 5, queries: int = 3) -> Episode:
    """Random 28x28 images with balanced labels, in the shapes of an Omniglot 1-shot meta-batch."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(ways).expand(tasks, -1)
    return Episode(torch.rand(tasks, ways, 1, 28, 28, generator=g), labels.contiguous(),
                   torch.rand(tasks, ways * queries, 1, 28, 28, generator=g),
                   labels.repeat_interleave(queries, dim=1).contiguous())


def test_auto_records_only_for_one_process_on_cuda_without_checkpointed_steps(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown cuda_graph 'on'; choose one of \['auto', 'off'\]"):
        MAMLConfig(cuda_graph="on")
    assert not MAML(Conv4(1, 5, hidden=4), "cross_entropy", MAMLConfig()).graphed
    assert choose_cuda_graph(torch.device("cuda"), checkpoint_steps=False)
    assert not choose_cuda_graph(torch.device("cuda"), checkpoint_steps=True)
    assert not choose_cuda_graph(torch.device("cpu"), checkpoint_steps=False)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)  # under torchrun
    assert not choose_cuda_graph(torch.device("cuda"), checkpoint_steps=False)


def test_a_checkpoint_of_a_graphed_run_trains_on_without_one():
    """A graphed run saves a capturable Adam (step counts on the GPU); loaded where there is no graph, the
    optimiser is made ordinary again, which a CPU needs (a capturable Adam refuses CPU parameters)."""
    torch.manual_seed(0)
    maml = MAML(Conv4(1, 5, hidden=4), "cross_entropy", MAMLConfig(inner_lr=0.4, path="per_task"))
    maml.meta_train_step(episode(0))
    state = maml.state_dict()
    for group in state["optimizer"]["param_groups"]:
        group["capturable"] = True
    other = MAML(Conv4(1, 5, hidden=4), "cross_entropy", MAMLConfig(inner_lr=0.4, path="per_task"))
    other.load_state_dict(state)
    assert not any(group["capturable"] for group in other.optimizer.param_groups)
    other.meta_train_step(episode(1))
    assert all(s["step"].item() == 2 and s["step"].device.type == "cpu" for s in other.optimizer.state.values())


@needs_cuda
@pytest.mark.parametrize("path", ["batched", "per_task"])
def test_graphed_meta_steps_equal_eager_ones(path, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # TF32 would hide small differences
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    torch.manual_seed(0)
    model = Conv4(1, 5, hidden=8)
    config = MAMLConfig(inner_lr=0.4, path=path, cuda_graph="off")
    eager = MAML(copy.deepcopy(model), "cross_entropy", config, "cuda")
    graphed = MAML(copy.deepcopy(model), "cross_entropy", MAMLConfig(**{**vars(config), "cuda_graph": "auto"}), "cuda")
    for seed in range(7):  # three eager warm-up steps, the recording, three replays
        expected, got = eager.meta_train_step(episode(seed)), graphed.meta_train_step(episode(seed))
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-5), seed
    assert graphed._recorded_step.recorded
    # a convolution's bias feeds batch norm, which cancels it: its true gradient is zero, and Adam turns the
    # rounding noise in its place into full-size steps, so it differs between any two implementations
    cancelled = {f"{name}.bias" for name, module in model.named_modules() if isinstance(module, nn.Conv2d)}
    for (name, a), b in zip(eager.model.named_parameters(), graphed.model.parameters()):
        if name in cancelled:
            continue
        # Adam divides by the gradient's running scale, so float rounding moves an element by up to ~2e-5 (H200)
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4, msg=lambda m, name=name: f"{name}: {m}")
    moved = max(float((a - b).detach().abs().max()) for a, b in zip(model.parameters(), graphed.model.cpu().parameters()))
    assert moved > 1e-3  # the seven updates were applied, not only recorded


@needs_cuda
def test_a_replay_refuses_another_episode_shape():
    maml = MAML(Conv4(1, 5, hidden=4), "cross_entropy", MAMLConfig(inner_lr=0.4), "cuda")  # auto: recorded
    for seed in range(4):
        maml.meta_train_step(episode(seed))
    with pytest.raises(ValueError, match="replays the recorded shapes"):
        maml.meta_train_step(episode(4, queries=2))
