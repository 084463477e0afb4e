"""Issue 5's training scripts on Omniglot: short runs of the Meta-LSTM, the nearest-neighbour baseline and
Matching Networks beat chance clearly, and `metarl evaluate` reloads each at other ways and shots."""

import json

import pytest
from scripts_support import metarl, records, script

SMALL = ["--dataset", "omniglot", "--hidden", "16", "--log-every", "10", "--checkpoint-every", "10",
         "--eval-tasks", "10", "--final-eval-tasks", "40", "--no-progress"]

RUNS = {
    # script, its own arguments, the accuracy its short run must reach (5-way: chance is 20%)
    "meta_lstm": ("scripts/train_meta_lstm.py", ["--iterations", "30", "--eval-every", "30"], 0.45),
    "nearest_neighbour": ("scripts/train_nearest_neighbour.py",
                          ["--iterations", "400", "--eval-every", "400", "--meta-batch-size", "64"], 0.45),
    "matching_net": ("scripts/train_matching_net.py",
                     ["--iterations", "100", "--eval-every", "100", "--meta-batch-size", "2"], 0.5),
}


@pytest.mark.parametrize("method", sorted(RUNS))
def test_short_omniglot_run_beats_chance_and_reloads(method, tmp_path, omniglot_root, omniglot_cache):
    path, arguments, target = RUNS[method]
    out = tmp_path / method
    env = {"METARL_CACHE": str(omniglot_cache)}
    script(path, "--out", str(out), "--data", str(omniglot_root), *SMALL, *arguments, env=env)
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == method and config["task"]["class_split"] == "vinyals"
    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation["method"] == method and evaluation["part"] == "test" and evaluation["tasks"] == 40
    assert evaluation["mean"][-1] >= target, evaluation["mean"]
    evaluations = [r for r in records(out) if any(k.startswith("eval/") for k in r)]
    first, last = (max(v for k, v in r.items() if k.startswith("eval/")) for r in (evaluations[0], evaluations[-1]))
    assert last > first, (first, last)

    if method == "meta_lstm":  # the learner's output layer is fixed at 5 classes
        refused = metarl("evaluate", "--checkpoint", str(out), "--ways", "20", env=env, check=False)
        assert refused.returncode == 2 and "5-way output layer" in refused.stderr and "Traceback" not in refused.stderr
        report = metarl("evaluate", "--checkpoint", str(out), "--tasks", "6", "--shots", "2",
                        "--steps", "3", "--json", env=env)
        five_way = json.loads(report.stdout)
        assert five_way["shots"] == 2 and five_way["tasks"] == 6 and five_way["steps"] == [0, 1, 2, 3]
    else:
        report = metarl("evaluate", "--checkpoint", str(out), "--tasks", "6", "--ways", "20",
                        "--shots", "2", "--json", env=env)
        twenty_way = json.loads(report.stdout)
        assert twenty_way["ways"] == 20 and twenty_way["shots"] == 2 and twenty_way["tasks"] == 6
        assert twenty_way["steps"] == [0] and twenty_way["step_kind"] == "none"
        text = metarl("evaluate", "--checkpoint", str(out), "--tasks", "4", env=env).stdout
        assert "accuracy: " in text and "steps" not in text
        refused = metarl("evaluate", "--checkpoint", str(out), "--steps", "2", env=env, check=False)
        assert refused.returncode == 2 and "does not adapt" in refused.stderr and "Traceback" not in refused.stderr
