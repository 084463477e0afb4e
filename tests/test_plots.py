"""`metarl plot` and the figures behind it: learning curves with the paper's figures, the evaluation by step or
instance, sinusoid adaptation, Navigation2D paths, the MuJoCo GIF (or the message saying why there is none), and
the figures the training loop logs to TensorBoard."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import metarl.experiment
from metarl import cli
from metarl.experiment import SupervisedConfig, run_supervised
from metarl.maml import MAMLConfig
from metarl.mann import MANNConfig
from metarl.mann_experiment import MANNRunConfig, run_mann
from metarl.paper_results import paper_result
from metarl.plots import evaluation_figure, learning_curves_figure, navigation_figure, shown_steps
from metarl.rl.animation import renderer_problem, write_policy_gif
from metarl.rl.experiment import RLConfig, load_rl_experiment, run_maml_trpo
from metarl.rl.maml_trpo import MAMLTRPOConfig
from metarl.rl.rollouts import adapt_and_sample
from metarl.sequence_learner import SequenceLearnerConfig
from metarl.train import TrainConfig
from supervised.sequences import Augmentation, ClassSequences

SINUSOID_K5 = {"method": "maml", "family": "sinusoid", "task": {"shots": 5, "queries": 10},
               "model": {"name": "mlp", "sizes": [1, 40, 40, 1]}, "learner": {}, "train": {}}
MANN_5WAY = {"family": "omniglot-sequences", "task": {"ways": 5, "samples": 10, "labels": "one_hot"}, "model": "mann",
             "mann": {}, "optim": {}, "train": {}}
TABLE_1 = [36.4, 82.8, 91.0, 92.6, 94.9, 98.1]


def paper_lines(axis):
    return {line.get_label(): line for line in axis.get_lines() if line.get_label().startswith("paper")}


def image_tags(run: Path) -> dict[str, list[int]]:
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    return {tag: [event.step for event in events.Images(tag)] for tag in events.Tags()["images"]}


def check_png(path: Path, min_size: tuple[int, int] = (500, 300)) -> None:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= min_size[0] and image.height >= min_size[1], image.size
        assert len(np.unique(np.asarray(image.convert("L")))) > 20  # a picture, not a blank canvas


def tiny_train(out: Path, iterations: int, **overrides) -> TrainConfig:
    settings = {"log_every": 1, "eval_every": 2, "checkpoint_every": 2, "eval_tasks": 2, "final_eval_tasks": 2,
                "progress": False, **overrides}
    return TrainConfig(out=str(out), iterations=iterations, **settings)


# --- the table of paper figures ------------------------------------------------------------------------------

def test_paper_figures_apply_only_to_runs_with_the_same_problem_and_method():
    assert paper_result(SINUSOID_K5).value_at(10) == 0.35
    old_format = {k: v for k, v in SINUSOID_K5.items() if k not in ("method", "learner")} | {"maml": {}}
    assert paper_result(old_format).value_at(1) == 0.67
    assert paper_result({**SINUSOID_K5, "task": {"shots": 10, "queries": 10}}) is None
    omniglot = {"method": "maml", "family": "omniglot", "task": {"ways": 20, "shots": 1, "class_split": "maml"}}
    assert paper_result(omniglot).value_at(5) == 0.958
    assert paper_result({**omniglot, "method": "meta_lstm"}) is None
    assert paper_result({"env_id": "envs:metarl/Navigation2D-v0", "maml": {}}).value_at(3) == -3.2
    assert paper_result({"env_id": "envs:metarl/HalfCheetahDir-v0", "maml": {}}).value_at(1) == 293.2
    assert paper_result({"env_id": "envs:metarl/AntDir-v1", "maml": {}}).value_at(3) == 499.1
    assert paper_result({"env_id": "envs:metarl/AntVel-v1", "maml": {}}).value_at(0) == 30.6
    assert paper_result({"env_id": "envs:metarl/AntVel-v0", "maml": {}}) is None  # gymnasium's Ant, not rllab's
    assert paper_result(MANN_5WAY).values[1] == 0.828 and paper_result(MANN_5WAY).step_kind == "instance"
    assert paper_result({**MANN_5WAY, "model": "lstm"}).value_at(2) == 0.495
    assert paper_result({**MANN_5WAY, "model": "ff"}) is None


def test_shown_steps_are_first_second_five_and_last():
    assert shown_steps(list(range(11))) == [0, 1, 5, 10]
    assert shown_steps(list(range(1, 11))) == [1, 2, 5, 10]
    assert shown_steps([0, 1, 2, 3]) == [0, 1, 2, 3]
    assert shown_steps([0]) == [0]


# --- figures from metrics and eval.json ----------------------------------------------------------------------

def sinusoid_records(iterations: int = 300) -> list[dict]:
    records = []
    for step in range(0, iterations + 1, 10):
        record = {"step": step, **{f"eval/mse_step{k}": 3.0 / (1 + k * step / 100) for k in range(11)}}
        if step:
            record |= {"train/query_loss": 1 / step, "train/query_mse": 1 / step}
        records.append(record)
    return records


def test_learning_curves_draw_the_papers_figures_as_horizontal_lines_in_the_curves_colours(tmp_path):
    figure = learning_curves_figure(sinusoid_records(), SINUSOID_K5)
    held_out, train = figure.axes[:2]
    assert len(figure.axes) == 2  # query loss and query mse are the same series: one panel, not two
    curves = {line.get_label(): line for line in held_out.get_lines() if not line.get_label().startswith("paper")}
    assert list(curves) == ["before adaptation", "after 1 step", "after 5 steps", "after 10 steps"]
    lines = paper_lines(held_out)
    assert len(lines) == 3
    ten = lines["paper, after 10 steps: 0.35 (Finn et al. 2017)"]
    assert list(ten.get_ydata()) == [0.35, 0.35] and ten.get_color() == curves["after 10 steps"].get_color()
    assert held_out.get_yscale() == "log"  # MSE from 3 down to 0.1
    assert train.get_title() == "training batches: train/query_mse"
    figure.savefig(tmp_path / "curves.png")
    check_png(tmp_path / "curves.png")

    ten_shot = learning_curves_figure(sinusoid_records(), {**SINUSOID_K5, "task": {"shots": 10, "queries": 10}})
    assert paper_lines(ten_shot.axes[0]) == {}


def test_accuracy_curves_are_in_percent_and_a_paper_step_the_run_did_not_evaluate_is_black():
    records = [{"step": s, **{f"eval/accuracy_step{k}": 0.2 + 0.2 * k * s / 100 for k in range(4)},
                "train/query_accuracy": 0.5, "train/query_loss": 1.0} for s in (0, 50, 100)]
    config = {"method": "maml", "family": "omniglot", "task": {"ways": 20, "shots": 1, "class_split": "maml"}}
    figure = learning_curves_figure(records, config)
    (line,) = paper_lines(figure.axes[0]).values()
    assert list(line.get_ydata()) == [95.8, 95.8] and line.get_color() == "black"  # the paper's 5 steps; we have 3
    assert [axis.get_title() for axis in figure.axes[1:]] == ["training batches: train/query_accuracy",
                                                              "training batches: train/query_loss"]
    assert max(figure.axes[1].get_lines()[0].get_ydata()) == 50.0


def test_evaluation_by_instance_shows_the_papers_table_1_curve():
    result = {"metric": "accuracy", "steps": list(range(1, 11)), "mean": [0.2 + 0.05 * i for i in range(10)],
              "ci95": [0.01] * 10, "tasks": 100, "step_kind": "instance"}
    axis = evaluation_figure(result, MANN_5WAY).axes[0]
    (paper,) = paper_lines(axis).values()
    assert list(paper.get_xdata()) == [1, 2, 3, 4, 5, 10]
    assert np.allclose(paper.get_ydata(), TABLE_1)
    assert "instance" in axis.get_xlabel() and "100 held-out episodes" in axis.get_title()
    with pytest.raises(ValueError, match="one accuracy"):
        evaluation_figure({**result, "steps": [0], "step_kind": "none"}, {**MANN_5WAY, "model": "lstm"})


# --- runs: sinusoid, MANN, Navigation2D, MuJoCo ---------------------------------------------------------------

def test_plot_command_on_a_sinusoid_run_and_its_tensorboard_adaptation_images(tmp_path, capsys):
    run = tmp_path / "sinusoid"
    config = SupervisedConfig(family="sinusoid", task={"shots": 5, "queries": 5},
                              model={"name": "mlp", "sizes": [1, 8, 8, 1]},
                              learner=MAMLConfig(eval_inner_steps=3), train=tiny_train(run, 4, meta_batch_size=2))
    run_supervised(config)
    assert image_tags(run) == {"eval/adaptation": [0, 2, 4]}

    capsys.readouterr()
    assert cli.main(["plot", str(run), "--out", str(tmp_path / "plots")]) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == ["curves.png", "evaluation.png", "adaptation.png"]
    for path in printed:
        check_png(Path(path))
    assert cli.main(["plot", str(run)]) == 0  # default: RUN/plots
    assert (run / "plots" / "adaptation.png").exists()


def test_the_plot_command_explains_what_it_cannot_do(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err
    (tmp_path / "config.json").write_text(json.dumps({**SINUSOID_K5, "method": "meta_lstm"}))
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sinusoid_records(20)))
    assert cli.main(["plot", str(tmp_path), "--gif"]) == 2
    assert "--gif draws a MuJoCo policy" in capsys.readouterr().err
    assert cli.main(["plot", str(tmp_path), "--out", str(tmp_path / "plots")]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == [str(tmp_path / "plots" / "curves.png")]
    assert "no eval.json yet" in captured.err


def test_mann_training_logs_accuracy_by_instance_images(tmp_path, monkeypatch, capsys):
    images = np.random.default_rng(0).integers(0, 256, size=(30, 4, 4, 4), dtype=np.uint8)
    parts = {"train": images[:20], "val": images[20:], "test": images[20:]}
    no_augmentation = Augmentation(0.0, 0.0, 0.0, 0.0)
    monkeypatch.setattr(metarl.experiment, "task_family", lambda name: lambda part, **options: ClassSequences(
        parts[part], family=name, augmentation=no_augmentation, **options))
    run = tmp_path / "mann"
    config = MANNRunConfig(family="omniglot-sequences", task={"ways": 5, "samples": 4, "labels": "one_hot"},
                           mann=MANNConfig(controller_size=8, memory_slots=8, memory_width=4, read_heads=1),
                           optim=SequenceLearnerConfig(optimizer="adam", lr=1e-3),
                           train=tiny_train(run, 2, meta_batch_size=2))
    run_mann(config)
    assert image_tags(run) == {"eval/accuracy_by_instance": [0, 2]}

    capsys.readouterr()
    assert cli.main(["plot", str(run), "--out", str(tmp_path / "plots")]) == 0
    assert [Path(p).name for p in capsys.readouterr().out.split()] == ["curves.png", "evaluation.png"]
    check_png(tmp_path / "plots" / "evaluation.png")


def test_navigation_paths_start_at_the_origin_for_each_stage_and_the_command_draws_them(tmp_path, capsys):
    run = tmp_path / "navigation"
    config = RLConfig(env_id="envs:metarl/Navigation2D-v0", horizon=10,
                      maml=MAMLTRPOConfig(hidden=(8, 8), episodes_per_task=2, eval_episodes_per_task=3,
                                          eval_inner_steps=2),
                      train=tiny_train(run, 1, meta_batch_size=2))
    run_maml_trpo(config)
    assert image_tags(run) == {"eval/trajectories": [0, 1]}  # at each evaluation of the run
    experiment, _ = load_rl_experiment(run, device="cpu")
    tasks = experiment.tasks.sample_tasks(3, np.random.default_rng(0))
    episodes = adapt_and_sample(experiment.learner, tasks, steps=2, seed=0).episodes
    assert len(episodes) == 3 and all(e.observations.shape[:3] == (3, 10, 3) for e in episodes)
    assert all((e.observations[:, 0] == 0).all() for e in episodes)  # every episode starts at the origin
    figure = navigation_figure([("before", episodes[0]), ("after 2 steps", episodes[2])], episodes=2)
    assert len(figure.axes) == 3
    paths = [line for line in figure.axes[0].get_lines() if line.get_linestyle() in ("--", "-")][:4]
    assert len(paths) == 4 and all(line.get_xdata()[0] == line.get_ydata()[0] == 0 for line in paths)
    goal = next(line for line in figure.axes[0].get_lines() if line.get_marker() == "*")
    assert list(goal.get_xdata()) == [tasks[0].params["goal"][0]]

    capsys.readouterr()
    assert cli.main(["plot", str(run), "--out", str(tmp_path / "plots")]) == 0
    assert [Path(p).name for p in capsys.readouterr().out.split()] == ["curves.png", "evaluation.png",
                                                                       "trajectories.png"]
    check_png(tmp_path / "plots" / "trajectories.png")


@pytest.fixture(scope="module")
def halfcheetah_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("halfcheetah") / "run"
    config = RLConfig(env_id="envs:metarl/HalfCheetahVel-v0", horizon=8,
                      maml=MAMLTRPOConfig(hidden=(8, 8), episodes_per_task=1, eval_episodes_per_task=1,
                                          eval_inner_steps=1),
                      train=tiny_train(run, 1, meta_batch_size=1, eval_tasks=1, final_eval_tasks=1))
    experiment, _, _ = run_maml_trpo(config)
    experiment.learner.sampler.close()
    return run


def test_without_an_offscreen_renderer_the_gif_is_skipped_with_a_one_line_message(halfcheetah_run, tmp_path,
                                                                                    monkeypatch, capsys):
    monkeypatch.setenv("MUJOCO_GL", "no-such-backend")  # this process has MuJoCo loaded; the probe's child fails
    message = renderer_problem("envs:metarl/HalfCheetahVel-v0")
    assert message is not None and "\n" not in message
    assert message.startswith("no GIF: MuJoCo cannot render offscreen here (MUJOCO_GL=no-such-backend")
    assert "MUJOCO_GL=egl" in message and "MUJOCO_GL=osmesa" in message

    capsys.readouterr()
    assert cli.main(["plot", str(halfcheetah_run), "--gif", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert [Path(p).name for p in captured.out.split()] == ["curves.png", "evaluation.png"]
    assert "metarl plot: no GIF: MuJoCo cannot render offscreen" in captured.err
    assert not (tmp_path / "policy.gif").exists()


def test_gif_of_the_policy_before_and_after_adaptation_where_mujoco_can_render(halfcheetah_run, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", os.environ.get("MUJOCO_GL", "egl"))
    problem = renderer_problem("envs:metarl/HalfCheetahVel-v0")
    if problem is not None:
        pytest.skip(problem)
    experiment, _ = load_rl_experiment(halfcheetah_run, device="cpu")
    path = write_policy_gif(experiment, tmp_path / "policy.gif", every=2, size=(160, 120))
    experiment.learner.sampler.close()
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.size == (320, 168) and gif.n_frames == 5  # 8 steps, a frame every 2
        assert gif.info["duration"] == 20  # real time: 2 steps of 0.01 s
