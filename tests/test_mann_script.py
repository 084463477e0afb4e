"""scripts/train_mann_omniglot.py runs end to end on Omniglot, resumes exactly, and `metarl evaluate` reloads it."""

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from scripts_support import metarl, records, run, script

TINY = ["--meta-batch-size", "2", "--log-every", "2", "--eval-every", "2", "--checkpoint-every", "2",
        "--eval-tasks", "4", "--final-eval-tasks", "6", "--controller-size", "16", "--memory-slots", "16",
        "--optimizer", "adam", "--lr", "1e-3", "--no-progress"]


@pytest.fixture(scope="module")
def omniglot_20px(omniglot_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Arguments and environment for a run on Omniglot, decoded at 20x20 once for the module."""
    from supervised.omniglot import load_omniglot

    cache = tmp_path_factory.mktemp("omniglot-20px")
    load_omniglot(omniglot_root, image_size=20, cache_dir=cache)
    return {"args": ["--data", str(omniglot_root)], "env": {"METARL_CACHE": str(cache)}}


def test_the_family_is_registered():
    families = {ep.name: ep.value for ep in entry_points(group="metarl.task_families")}
    assert families["omniglot-sequences"] == "supervised.omniglot:make_omniglot_sequences"


def test_script_runs_resumes_exactly_and_metarl_evaluate_reports_instances(tmp_path, omniglot_20px):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    path, data, env = "scripts/train_mann_omniglot.py", omniglot_20px["args"], omniglot_20px["env"]
    out = run(path, "--out", str(straight), "--iterations", "6", *data, *TINY, env=env)  # a fresh interpreter
    assert "untrained" in out.stdout and "trained" in out.stdout
    script(path, "--out", str(resumed), "--iterations", "4", *data, *TINY, env=env)
    script(path, "--out", str(resumed), "--iterations", "6", "--resume", *data, *TINY, env=env)
    assert records(resumed) == records(straight) and records(straight)[-1]["step"] == 6
    assert "train/accuracy_instance2" in records(straight)[-2] and "eval/accuracy_instance10" in records(straight)[-1]
    evaluation = json.loads((straight / "eval.json").read_text())
    assert evaluation == json.loads((resumed / "eval.json").read_text())
    assert evaluation["steps"] == list(range(1, 11)) and evaluation["step_kind"] == "instance"
    assert evaluation["metric"] == "accuracy" and evaluation["tasks"] == 6 and evaluation["model"] == "mann"
    assert list((straight / "tensorboard").glob("events.out.tfevents.*"))

    report = json.loads(metarl("evaluate", "--checkpoint", str(straight), "--tasks", "4", "--json", env=env).stdout)
    assert report["steps"] == list(range(1, 11)) and report["checkpoint_step"] == 6 and report["tasks"] == 4
    text = metarl("evaluate", "--checkpoint", str(straight / "checkpoint.pt"), "--tasks", "4", env=env).stdout
    assert "accuracy at instance 2:" in text
    for flag, value, message in [("--steps", "3", "--steps does not apply"), ("--shots", "2", "--shots does not apply"),
                                 ("--ways", "10", "changes the inputs or labels"),
                                 ("--seed", "1", "--seed applies to reinforcement-learning runs only"),
                                 ("--sampling", "steps", "--sampling applies to reinforcement-learning runs only")]:
        bad = metarl("evaluate", "--checkpoint", str(straight), "--tasks", "2", flag, value, env=env, check=False)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr


def test_baselines_and_string_labels_run(tmp_path, omniglot_20px):
    for model, labels in (("lstm", "one_hot"), ("ff", "string")):
        out = tmp_path / model
        script("scripts/train_mann_omniglot.py", "--out", str(out), "--iterations", "2", "--model", model,
               "--labels", labels, "--ways", "3", *omniglot_20px["args"], *TINY, env=omniglot_20px["env"])
        evaluation = json.loads((out / "eval.json").read_text())
        assert evaluation["model"] == model and evaluation["labels"] == labels and len(evaluation["mean"]) == 10
    warm = script("scripts/train_mann_omniglot.py", "--out", str(tmp_path / "ff-5"), "--iterations", "2", "--model", "ff",
                  "--labels", "string", "--ways", "5", "--init-from", str(tmp_path / "ff"), *omniglot_20px["args"], *TINY,
                  env=omniglot_20px["env"])
    assert "initial" in warm.stdout and "untrained" not in warm.stdout
    bad = script("scripts/train_mann_omniglot.py", "--out", str(tmp_path / "lstm-5"), "--iterations", "2", "--model",
                 "lstm", "--labels", "string", "--init-from", str(tmp_path / "ff"), *omniglot_20px["args"], *TINY,
                 env=omniglot_20px["env"], check=False)
    assert bad.returncode == 2 and "it is a 'ff' run, this one is 'lstm'" in bad.stderr
    report_file = tmp_path / "symbols.json"
    run("scripts/mann_symbol_accuracy.py", str(tmp_path / "ff"), "--episodes", "3", "--out", str(report_file),
        env=omniglot_20px["env"])
    report = json.loads(report_file.read_text())
    assert report["instances"] == list(range(1, 11)) and report["labels"] == "string" and report["checkpoint_step"] == 2
    assert all(s >= a for s, a in zip(report["symbol_accuracy"], report["label_accuracy"]))
    assert 1 / 3 <= report["frequency_rule_symbol_accuracy"] <= 1  # each position's commonest symbol: 1 class of 3 or more
    bad = script("scripts/mann_symbol_accuracy.py", str(tmp_path / "ff"), "--episodes", "0", env=omniglot_20px["env"],
                 check=False)
    assert bad.returncode == 2 and "--episodes must be >= 1" in bad.stderr
