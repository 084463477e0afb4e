"""The training scripts run end to end, resume exactly, and their runs reload with `metarl evaluate`."""

import json

import pytest
from scripts_support import metarl, records, run, script

TINY_SINUSOID = ["--log-every", "10", "--eval-every", "20", "--checkpoint-every", "20", "--eval-tasks", "10",
                 "--final-eval-tasks", "20", "--meta-batch-size", "5", "--no-progress"]


def test_sinusoid_script_resume_matches_uninterrupted_run(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    # the uninterrupted run in a fresh interpreter, as a user starts it; the interrupted one in this process
    run("scripts/train_sinusoid.py", "--out", str(straight), "--iterations", "60", "--no-plot", *TINY_SINUSOID)
    script("scripts/train_sinusoid.py", "--out", str(resumed), "--iterations", "40", "--no-plot", *TINY_SINUSOID)
    first_half = records(resumed)
    assert first_half[-1]["step"] == 40
    out = script("scripts/train_sinusoid.py", "--out", str(resumed), "--iterations", "60", "--resume", "--plot",
              *TINY_SINUSOID)
    assert records(resumed) == records(straight)
    assert records(straight)[-1]["step"] == 60
    evaluation = json.loads((resumed / "eval.json").read_text())
    assert evaluation["metric"] == "mse" and evaluation["tasks"] == 20 and evaluation["steps"] == list(range(11))
    assert evaluation == json.loads((straight / "eval.json").read_text())
    assert (resumed / "adaptation.png").stat().st_size > 10_000 and "adaptation.png" in out.stdout
    assert list((resumed / "tensorboard").glob("events.out.tfevents.*"))
    config = json.loads((resumed / "config.json").read_text())
    assert config["method"] == "maml" and config["learner"]["inner_lr"] == 0.01 and config["train"]["meta_batch_size"] == 5


@pytest.mark.parametrize("setting", ["cuda_graph", "task_threads"])
def test_a_run_saved_before_a_setting_of_how_steps_run_existed_resumes(tmp_path, setting):
    """``cuda_graph`` and ``task_threads`` change how a step runs, not what it computes: resuming may switch them,
    and a run folder written before one existed (no such key in config.json) resumes."""
    out = tmp_path / "run"
    sinusoid = ["scripts/train_sinusoid.py", "--no-plot", "--out", str(out), *TINY_SINUSOID]
    script(*sinusoid, "--iterations", "20")
    config = json.loads((out / "config.json").read_text())
    del config["learner"][setting]
    (out / "config.json").write_text(json.dumps(config))
    switched = {"cuda_graph": ["--cuda-graph", "off"], "task_threads": ["--task-threads", "1"]}[setting]
    script(*sinusoid, "--iterations", "30", "--resume", *switched)
    assert json.loads((out / "eval.json").read_text())["tasks"] == 20


def test_resume_refuses_a_changed_configuration_and_a_fresh_run_refuses_an_existing_folder(tmp_path):
    out = tmp_path / "run"
    script("scripts/train_sinusoid.py", "--out", str(out), "--iterations", "20", "--no-plot", *TINY_SINUSOID)
    changed = script("scripts/train_sinusoid.py", "--out", str(out), "--iterations", "40", "--resume", "--no-plot",
                  "--inner-lr", "0.02", *TINY_SINUSOID, check=False)
    assert changed.returncode != 0 and "learner.inner_lr" in changed.stderr
    again = script("scripts/train_sinusoid.py", "--out", str(out), "--iterations", "20", "--no-plot", *TINY_SINUSOID,
                check=False)
    assert again.returncode != 0 and "--resume" in again.stderr


def test_metarl_evaluate_reloads_a_run_with_other_shots_and_steps(tmp_path):
    out = tmp_path / "run"
    script("scripts/train_sinusoid.py", "--out", str(out), "--iterations", "20", "--no-plot", *TINY_SINUSOID)
    # once through a fresh interpreter, as a user runs it; the other calls in this process (scripts_support.metarl)
    result = run("-m", "metarl.cli", "evaluate", "--checkpoint", str(out), "--tasks", "30", "--steps", "2",
                 "--shots", "5", "--json")
    report = json.loads(result.stdout)
    assert report["metric"] == "mse" and report["steps"] == [0, 1, 2] and report["tasks"] == 30
    assert report["shots"] == 5 and report["checkpoint_step"] == 20 and len(report["ci95"]) == 3
    text = metarl("evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--tasks", "10")
    assert "mse after 10 steps" in text.stdout
    bad = metarl("evaluate", "--checkpoint", str(tmp_path / "missing"), check=False)
    assert bad.returncode == 2 and "no checkpoint" in bad.stderr and "Traceback" not in bad.stderr


def test_omniglot_script_runs_end_to_end(tmp_path, omniglot_root, omniglot_cache):
    out = tmp_path / "omniglot"
    args = ["scripts/train_omniglot.py", "--out", str(out), "--data", str(omniglot_root), "--iterations", "4",
            "--meta-batch-size", "2", "--log-every", "2", "--eval-every", "2", "--checkpoint-every", "2",
            "--eval-tasks", "4", "--final-eval-tasks", "6", "--no-progress"]
    result = run(*args, env={"METARL_CACHE": str(omniglot_cache)})
    assert "accuracy after 3 steps" in result.stdout
    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation["metric"] == "accuracy" and evaluation["ways"] == 5 and evaluation["tasks"] == 6
    assert all(0.0 <= m <= 1.0 for m in evaluation["mean"])
    steps = [r["step"] for r in records(out)]
    assert steps[0] == 0 and steps[-1] == 4
