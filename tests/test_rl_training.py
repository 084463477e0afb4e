"""MAML-TRPO end to end: Navigation2D learns, the scripts run and resume exactly, runs reload."""

import json
import math
from typing import get_args

import numpy as np
import pytest
import torch
from scripts_support import metarl, records, run, script

from metarl.functional import parameters_of
from metarl.models import ACTIVATIONS, POLICY_INITS, Activation, GaussianMLPPolicy
from metarl.rl.experiment import RLConfig, RLExperiment
from metarl.rl.maml_trpo import MAMLTRPOConfig
from metarl.rl.sampler import stack_params
from metarl.train import TrainConfig

TINY_RL = ["--meta-batch-size", "3", "--episodes-per-task", "4", "--horizon", "20", "--hidden", "16", "16",
           "--eval-tasks", "3", "--final-eval-tasks", "3", "--log-every", "1", "--eval-every", "2",
           "--checkpoint-every", "2", "--no-progress"]


def test_short_navigation_run_adapts_to_new_goals(tmp_path):
    config = RLConfig(
        env_id="envs:metarl/Navigation2D-v0", horizon=100,
        maml=MAMLTRPOConfig(episodes_per_task=10, hidden=(32, 32)),
        train=TrainConfig(out=str(tmp_path), iterations=15, meta_batch_size=10, log_every=1, eval_every=15,
                          eval_tasks=10, final_eval_tasks=10, progress=False))
    experiment = RLExperiment(config)
    experiment.trainer().run()
    result = experiment.evaluate(10, steps=1)
    before, after = result.mean
    assert after > before + 3 * np.hypot(*result.stderr), result.to_json()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "train/return_after" in r]
    assert all(0 < r["train/kl"] <= config.maml.max_kl for r in train if r["train/line_search_accepted"])
    assert all(r["perf/env_steps_per_second"] > 0 for r in train)
    assert all(0 < r["perf/sampling_seconds"] < r["perf/iteration_seconds"] for r in train)


def test_evaluation_takes_the_configured_step_sizes(tmp_path, monkeypatch):
    assert MAMLTRPOConfig().evaluation_step_sizes(3) == [0.1, 0.05, 0.05]  # the paper's protocol
    config = RLConfig(env_id="envs:metarl/Navigation2D-v0", horizon=5,
                      maml=MAMLTRPOConfig(inner_lr=0.5, eval_inner_lr=0.2, eval_inner_lr_decay=0.5, hidden=(4,),
                                          episodes_per_task=1, eval_episodes_per_task=1),
                      train=TrainConfig(out=str(tmp_path), meta_batch_size=2, progress=False))
    experiment = RLExperiment(config)
    adapt = experiment.learner._adapt_by_sampling
    taken = []

    def recording(params, batch, lrs, episodes_per_task):
        taken.append(list(lrs))
        return adapt(params, batch, lrs, episodes_per_task)

    monkeypatch.setattr(experiment.learner, "_adapt_by_sampling", recording)
    result = experiment.evaluate(2, steps=4)
    assert taken == [pytest.approx([0.5, 0.2, 0.1, 0.05])]
    assert result.protocol["step_sizes"] == pytest.approx([0.5, 0.2, 0.1, 0.05]) and len(result.mean) == 5
    result = experiment.evaluate(2, step_sizes=[0.3, 0.2])
    assert taken[-1] == [0.3, 0.2] and result.protocol["step_sizes"] == [0.3, 0.2] and len(result.mean) == 3
    with pytest.raises(ValueError, match="positive"):
        experiment.evaluate(2, step_sizes=[0.3, 0])


def test_navigation_script_resumes_exactly_and_reloads_with_metarl_evaluate(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run("scripts/train_navigation.py", "--out", str(straight), "--iterations", "4", *TINY_RL)  # a fresh interpreter
    script("scripts/train_navigation.py", "--out", str(resumed), "--iterations", "2", *TINY_RL)
    script("scripts/train_navigation.py", "--out", str(resumed), "--iterations", "4", "--resume", *TINY_RL)
    assert records(resumed) == records(straight)
    evaluation = json.loads((resumed / "eval.json").read_text())
    assert evaluation["metric"] == "return" and evaluation["steps"] == [0, 1, 2, 3]
    assert len(evaluation["stderr"]) == 4 and evaluation["tasks"] == 3
    assert evaluation["step_sizes"] == pytest.approx([0.1, 0.05, 0.025])
    out = metarl("evaluate", "--checkpoint", str(resumed), "--tasks", "2", "--steps", "1", "--json")
    reloaded = json.loads(out.stdout)
    assert reloaded["steps"] == [0, 1] and reloaded["tasks"] == 2 and reloaded["checkpoint_step"] == 4
    refused = metarl("evaluate", "--checkpoint", str(resumed), "--shots", "5", check=False)
    assert refused.returncode == 2 and "--shots does not apply" in refused.stderr
    out = metarl("evaluate", "--checkpoint", str(resumed), "--tasks", "2", "--seed", "1",
                 "--step-sizes", "0.3", "0.1", "--json")
    tuning = json.loads(out.stdout)
    assert tuning["steps"] == [0, 1, 2] and tuning["seed"] == 1 and tuning["step_sizes"] == pytest.approx([0.3, 0.1])
    refused = metarl("evaluate", "--checkpoint", str(resumed), "--steps", "3", "--step-sizes", "0.1", check=False)
    assert refused.returncode == 2 and "3 adaptation steps but 1 step sizes" in refused.stderr
    assert reloaded["sampling"] == "episodes"
    out = metarl("evaluate", "--checkpoint", str(resumed), "--tasks", "2", "--steps", "1", "--sampling", "steps",
                 "--json")
    assert json.loads(out.stdout)["sampling"] == "steps"
    refused = metarl("evaluate", "--checkpoint", str(resumed), "--sampling", "paths", check=False)
    assert refused.returncode == 2 and "unknown sampling 'paths'" in refused.stderr


@pytest.mark.parametrize(("name", "vectorization"), [
    ("halfcheetah_vel", []), ("halfcheetah_dir", []), ("ant_vel", []),
    # the Ant vector env spawns a worker process per core, each importing torch (tens of seconds on 2 cores): once
    # is enough here, tests/test_locomotion_vector.py checks its lanes
    ("ant_dir", ["--vectorization-mode", "sync"]),
    ("ant_goal", ["--vectorization-mode", "sync", "--sampling", "steps"]),
])
def test_mujoco_scripts_run_end_to_end(tmp_path, name, vectorization):
    script(f"scripts/train_{name}.py", "--out", str(tmp_path), "--iterations", "1", *TINY_RL,
           "--episodes-per-task", "2", "--horizon", "5", *vectorization)
    evaluation = json.loads((tmp_path / "eval.json").read_text())
    assert evaluation["metric"] == "return" and np.isfinite(evaluation["mean"]).all()
    sampling = json.loads((tmp_path / "config.json").read_text())["maml"]["sampling"]
    assert sampling == ("steps" if "steps" in vectorization else "episodes")


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="max_kl"):
        MAMLTRPOConfig(max_kl=0)
    for decay in (0, 1.5):
        with pytest.raises(ValueError, match="eval_inner_lr_decay"):
            MAMLTRPOConfig(eval_inner_lr_decay=decay)
    with pytest.raises(ValueError, match="horizon"):
        RLExperiment(RLConfig(env_id="envs:metarl/Navigation2D-v0", horizon=0))
    with pytest.raises(ValueError, match="workers"):
        RLConfig(env_id="envs:metarl/Navigation2D-v0", horizon=100, workers=0)
    with pytest.raises(ValueError, match="activation"):
        GaussianMLPPolicy(2, 2, activation="sigmoid")
    with pytest.raises(ValueError, match="policy init"):
        GaussianMLPPolicy(2, 2, init="he")


def test_policy_starts_from_maml_glorot_weights_or_torch_default():
    torch.manual_seed(0)
    glorot = GaussianMLPPolicy(111, 8, init="glorot")
    torch.manual_seed(0)
    default = GaussianMLPPolicy(111, 8, init="torch")
    linear = [[layer for layer in policy.mean if isinstance(layer, torch.nn.Linear)] for policy in (glorot, default)]
    assert len(linear[0]) == 3
    for layer, torch_layer in zip(*linear):
        fan_out, fan_in = layer.weight.shape
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.95 * bound
        assert torch.equal(layer.bias, torch.zeros(fan_out))
        assert torch_layer.weight.abs().max() <= 1 / math.sqrt(fan_in) < 0.95 * bound
        assert torch_layer.bias.abs().max() > 0
    torch.testing.assert_close(glorot.log_std, default.log_std)  # log(init_std) either way


def test_workers_give_the_same_run_as_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    tiny = [*TINY_RL, "--episodes-per-task", "2", "--horizon", "5"]
    # the workers step gymnasium's single environments, so one process does too (its default for HalfCheetah is
    # the mujoco.rollout vector env, equal up to the solver's warm start: tests/test_rollout_vector.py)
    script("scripts/train_halfcheetah_vel.py", "--out", str(one), "--iterations", "1", "--vectorization-mode", "sync",
           *tiny)
    run("scripts/train_halfcheetah_vel.py", "--out", str(two), "--iterations", "1", "--workers", "2", *tiny)
    assert records(one) == records(two)
    assert json.loads((two / "config.json").read_text())["workers"] == 2


def test_oracle_policy_is_shown_its_goal_and_runs_from_before_the_option_still_resume(tmp_path):
    config = RLConfig(env_id="envs:metarl/Navigation2D-v0", horizon=3, oracle=True,
                      maml=MAMLTRPOConfig(inner_steps=0, hidden=(4,), episodes_per_task=2),
                      train=TrainConfig(out=str(tmp_path / "oracle"), meta_batch_size=2, progress=False))
    experiment = RLExperiment(config)
    policy = experiment.learner.policy
    assert policy.mean[0].in_features == 4  # position and goal
    batch = experiment.sample_batch(np.random.default_rng(0))
    episodes = experiment.learner.sampler.sample(stack_params(parameters_of(policy), 2), batch.tasks, seed=0)
    goals = torch.tensor([task["goal"] for task in batch.tasks], dtype=torch.float32)
    torch.testing.assert_close(episodes.observations[..., 2:], goals[:, None, None].expand(2, 3, 2, 2))

    old = tmp_path / "old"
    script("scripts/train_navigation.py", "--out", str(old), "--iterations", "1", *TINY_RL)
    saved = json.loads((old / "config.json").read_text())
    assert saved.pop("oracle") is False
    (old / "config.json").write_text(json.dumps(saved))  # as a run begun before the option existed saved it
    refused = script("scripts/train_navigation.py", "--out", str(old), "--iterations", "2", "--resume", "--oracle",
                     *TINY_RL, check=False)
    assert refused.returncode != 0 and "oracle differ" in refused.stderr
    script("scripts/train_navigation.py", "--out", str(old), "--iterations", "2", "--resume", *TINY_RL)
    assert json.loads((old / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 2


def test_the_scripts_offer_the_policys_activations_and_inits():
    assert set(get_args(Activation)) == set(ACTIVATIONS)
    help_text = script("scripts/train_navigation.py", "--help").stdout
    assert "--activation {" + ",".join(get_args(Activation)) + "}" in help_text
    assert "--policy-init {" + ",".join(POLICY_INITS) + "}" in help_text


@pytest.mark.parametrize("task", ["AntVel", "AntDir", "AntGoal"])
def test_ant_scripts_default_to_rllab_dynamics(task):
    help_text = script(f"scripts/train_ant_{task[3:].lower()}.py", "--help").stdout
    assert f"envs:metarl/{task}-v1)" in help_text and f"envs:metarl/{task}-v0)" not in help_text


def test_runs_from_before_the_policy_init_option_resume_with_torch_weights(tmp_path):
    old = tmp_path / "old"
    script("scripts/train_navigation.py", "--out", str(old), "--iterations", "1", *TINY_RL)
    saved = json.loads((old / "config.json").read_text())
    assert saved["maml"].pop("policy_init") == "glorot"
    (old / "config.json").write_text(json.dumps(saved))  # as a run begun before the option saved it
    refused = script("scripts/train_navigation.py", "--out", str(old), "--iterations", "2", "--resume", *TINY_RL,
                     check=False)
    assert refused.returncode != 0 and "policy_init differ" in refused.stderr
    script("scripts/train_navigation.py", "--out", str(old), "--iterations", "2", "--resume", "--policy-init", "torch",
           *TINY_RL)
    assert json.loads((old / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 2
