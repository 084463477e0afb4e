"""Data-parallel training under torchrun (gloo, 2 CPU processes) takes the single-process steps.

The ranks of a torchrun launch split each meta-batch's tasks between them and all-reduce the meta-gradients
(and, for MAML-TRPO, the Fisher-vector products and the line search's statistics); their parameters must
equal those of one process on the same meta-batches, up to the order of floating-point sums.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from distributed_cases import CASES
from scripts_support import ROOT, records

from metarl import distributed
from metarl.rl.experiment import RLConfig, RLExperiment
from metarl.rl.maml_trpo import MAMLTRPOConfig
from metarl.rl.sampler import stack_params
from metarl.train import TrainConfig

TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
"""Float32 sums taken in another order (per rank, then across ranks); observed: 5e-8 at most."""
CASE_TOLERANCE = {
    # conjugate gradient amplifies rounding: observed 1.4e-5 on a log-std near 0 from MAML's Glorot start (4e-6 from
    # nn.Linear's); the float64 case below is the tight check
    "navigation_trpo": {"rtol": 1e-3, "atol": 5e-5},
    "navigation_trpo_float64": {"rtol": 1e-9, "atol": 1e-10},  # observed 1e-12
}


def torchrun(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=processes *args`` (on a free port) from the repository root,
    with the working tree's packages first on the path."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *args]
    result = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    if result.returncode != 0:
        raise AssertionError(f"{command} failed:\n{result.stdout}\n{result.stderr}")
    return result


def single(*args: str) -> None:
    """``python *args`` in one process, as :func:`torchrun` runs them."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Every case's results on each of the two ranks of one torchrun launch."""
    out = tmp_path_factory.mktemp("torchrun")
    torchrun("tests/distributed_cases.py", str(out))
    return [torch.load(out / f"rank{rank}.pt") for rank in range(2)]


def _without_perf(metrics):
    return [{k: v for k, v in step.items() if not k.startswith("perf/")} for step in metrics]


@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
def test_two_processes_take_the_single_process_meta_steps(ranks, case):
    alone = case()
    first, second = (results[case.__name__] for results in ranks)
    tolerance = CASE_TOLERANCE.get(case.__name__, TOLERANCE)
    # the ranks hold the same parameters, bit for bit: they applied the same all-reduced step
    torch.testing.assert_close(first["params"], second["params"], rtol=0, atol=0)
    torch.testing.assert_close(first["params"], alone["params"], **tolerance)
    if "gradients" in alone:
        torch.testing.assert_close(first["gradients"], alone["gradients"], **tolerance)
    # ... and training moved them by far more than the tolerance
    moved = [name for name in alone["initial"] if not torch.allclose(alone["initial"][name], alone["params"][name],
                                                                     rtol=1e-3, atol=1e-4)]
    assert len(moved) == len(alone["initial"]), f"parameters that barely moved: {set(alone['initial']) - set(moved)}"
    for step, (got, expected) in enumerate(zip(_without_perf(first["metrics"]), _without_perf(alone["metrics"]))):
        assert got == pytest.approx(expected, rel=tolerance["rtol"], abs=tolerance["atol"]), f"step {step + 1}"
    assert len(first["evaluation"]) == len(alone["evaluation"])
    for got, other_rank, expected in zip(first["evaluation"], second["evaluation"], alone["evaluation"]):
        torch.testing.assert_close(got, other_rank, rtol=0, atol=0)
        torch.testing.assert_close(got, expected, **tolerance)


def test_trpo_steps_are_real_steps(ranks):
    """The line search accepted the steps being compared (a rejected step would compare unchanged policies)."""
    for case in ("navigation_trpo", "navigation_trpo_float64"):
        assert all(step["line_search_accepted"] == 1.0 for step in ranks[0][case]["metrics"])


def test_shards_split_a_meta_batch_evenly_and_in_order(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "0")
    shards = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        shards.append(distributed.task_shard(7))
    assert [(s.start, s.stop) for s in shards] == [(0, 2), (2, 4), (4, 7)]
    assert sum(s.weight for s in shards) == pytest.approx(1.0)
    assert distributed.task_shard(2, allow_empty=True).size == 1
    with pytest.raises(ValueError, match="cannot be split over 3 processes"):
        distributed.task_shard(2)


def test_without_torchrun_there_is_one_process_and_nothing_to_reduce(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    assert distributed.task_shard(5) == distributed.Shard(0, 5, 5)
    assert distributed.mean_metrics({"loss": 0.5}, 1.0) == {"loss": 0.5}
    assert distributed.any_rank(False) is False


def test_a_share_of_a_meta_batch_samples_the_trajectories_the_whole_batch_gives_it():
    experiment = RLExperiment(RLConfig(env_id="envs:metarl/Navigation2D-v0", horizon=15,
                                       maml=MAMLTRPOConfig(episodes_per_task=3, hidden=(8,)),
                                       train=TrainConfig(meta_batch_size=5)))
    learner = experiment.learner
    batch = experiment.sample_batch(np.random.default_rng(0))
    params = {name: p.detach() for name, p in learner.policy.named_parameters()}
    whole = learner._sample(stack_params(params, 5), batch, 0, 3)
    share = learner._sample(stack_params(params, 3), batch.shard(slice(2, 5)), 0, 3)
    for name in ("observations", "actions", "rewards", "mask"):
        steps = getattr(share, name).shape[1]
        torch.testing.assert_close(getattr(share, name), getattr(whole, name)[2:5, :steps], rtol=0, atol=0)
    assert batch.shard(slice(2, 5)).share == pytest.approx(0.6)


def test_a_script_under_torchrun_logs_once_and_matches_one_process(tmp_path):
    """train_sinusoid.py with 2 processes: rank 0 alone writes the run folder, whose records, evaluation and
    checkpoint equal those of the same command in one process; a torchrun --resume continues it."""
    args = ["--iterations", "4", "--meta-batch-size", "5", "--log-every", "1", "--eval-every", "2",
            "--checkpoint-every", "2", "--eval-tasks", "3", "--final-eval-tasks", "5", "--no-plot", "--no-progress"]
    alone, parallel = tmp_path / "alone", tmp_path / "parallel"
    single("scripts/train_sinusoid.py", "--out", str(alone), *args)
    torchrun("scripts/train_sinusoid.py", "--out", str(parallel), *args[:1], "2", *args[2:])
    torchrun("scripts/train_sinusoid.py", "--out", str(parallel), *args, "--resume")
    got, expected = records(parallel), records(alone)
    assert [r["step"] for r in got] == [r["step"] for r in expected] == [0, 1, 2, 2, 3, 4, 4]
    for record, reference in zip(got, expected):
        assert record == pytest.approx(reference, rel=1e-5, abs=1e-6)
    evaluation, reference = (json.loads((run / "eval.json").read_text()) for run in (parallel, alone))
    assert evaluation["mean"] == pytest.approx(reference["mean"], rel=1e-5)
    assert {k: v for k, v in evaluation.items() if k not in ("mean", "ci95", "stderr")} == \
        {k: v for k, v in reference.items() if k not in ("mean", "ci95", "stderr")}
    states = [torch.load(run / "checkpoint.pt", weights_only=True)["learner"]["model"] for run in (parallel, alone)]
    torch.testing.assert_close(states[0], states[1], **TOLERANCE)
    assert sorted(p.name for p in parallel.iterdir()) == sorted(p.name for p in alone.iterdir())
    assert len(list((parallel / "tensorboard").glob("events.out.tfevents.*"))) == 2  # first run and resume


def test_the_cuda_device_is_the_process_own_gpu(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.local_device(torch.device("cpu")) == torch.device("cpu")
    assert distributed.local_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    if torch.cuda.device_count() < 2:
        with pytest.raises(ValueError, match="LOCAL_RANK=1"):
            distributed.local_device(torch.device("cuda"))
