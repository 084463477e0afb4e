"""Bad input gets a one-line error and loses nothing; Ctrl-C, SIGKILL and a failing disk leave a usable run;
checkpoints and zips cannot run code; nothing touches the network.

Each command-line test runs the real script (in this process, through ``scripts_support.script``; the
Ctrl-C, SIGKILL and network tests in a subprocess) and checks exit code 2, one ``<script>: error: ...`` line
that names the problem, no traceback, and that the files already there are intact (a run folder's checkpoint
keeps its bytes; a refused run creates no folder).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from scripts_support import ROOT, records, run, script
from test_training import TINY_SINUSOID
from tiny_data import tiny_miniimagenet

from metarl import cli
from metarl.checkpoint import load_checkpoint, save_checkpoint
from metarl.experiment import task_family
from metarl.interrupt import StopRequest
from metarl.maml import MAMLConfig
from metarl.rl import MAMLTRPOConfig

ITERATIONS = "200"
SINUSOID = ["scripts/train_sinusoid.py", "--no-plot", *TINY_SINUSOID]
ENV = {"OMP_NUM_THREADS": "1"}


def refused(result: subprocess.CompletedProcess, script: str, *phrases: str) -> str:
    """Assert that ``result`` is a user's mistake reported in one line that contains ``phrases``; return it."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"{script}: error: ")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
    for phrase in phrases:
        assert phrase in errors[0], (phrase, errors[0])
    return errors[0]


def sinusoid(out: Path, *args: str) -> subprocess.CompletedProcess:
    return script(*SINUSOID, "--out", str(out), "--iterations", ITERATIONS, *args, check=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete tiny sinusoid run, never interrupted."""
    out = tmp_path_factory.mktemp("finished") / "run"
    result = sinusoid(out)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def run_copy(finished: Path, tmp_path: Path) -> Path:
    """A copy of the finished run that a test may damage."""
    return Path(shutil.copytree(finished, tmp_path / "run"))


# ----------------------------------------------------------------------------------------------
# Values and folders given on the command line


@pytest.mark.parametrize(("flag", "value", "phrase"), [
    ("--iterations", "0", "iterations must be a positive integer, got 0"),
    ("--meta-lr", "0", "learning rates must be positive"),
])
def test_non_positive_iterations_or_learning_rate(tmp_path, flag, value, phrase):
    refused(sinusoid(tmp_path / "run", flag, value), "train_sinusoid.py", phrase)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("config_class", [MAMLConfig, MAMLTRPOConfig])
def test_both_maml_configs_refuse_an_unknown_meta_batch_path(config_class):
    assert config_class(path="per_task").path == "per_task"
    with pytest.raises(ValueError, match=r"unknown path 'vmap'; choose one of \['auto', 'batched', 'per_task'\]"):
        config_class(path="vmap")


def test_a_folder_that_holds_a_run_is_not_overwritten(run_copy):
    before = (run_copy / "checkpoint.pt").read_bytes(), (run_copy / "metrics.jsonl").read_text()
    refused(sinusoid(run_copy), "train_sinusoid.py", "already holds a run", "--resume")
    assert ((run_copy / "checkpoint.pt").read_bytes(), (run_copy / "metrics.jsonl").read_text()) == before


def test_resume_with_a_changed_configuration_names_the_keys(run_copy):
    before = (run_copy / "checkpoint.pt").read_bytes()
    refused(sinusoid(run_copy, "--resume", "--inner-lr", "0.02", "--shots", "5"), "train_sinusoid.py",
            "learner.inner_lr, task.shots differ", "start a new --out or restore those settings")
    assert (run_copy / "checkpoint.pt").read_bytes() == before


def test_out_under_a_file_fails_before_training(tmp_path):
    (tmp_path / "file").write_text("not a folder\n")
    refused(sinusoid(tmp_path / "file" / "run"), "train_sinusoid.py", "cannot write in the run folder", "--out")
    assert (tmp_path / "file").read_text() == "not a folder\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_fails_before_training(tmp_path):
    (tmp_path / "locked").mkdir(mode=0o555)
    refused(sinusoid(tmp_path / "locked" / "run"), "train_sinusoid.py", "cannot write in the run folder",
            "Permission denied")


# ----------------------------------------------------------------------------------------------
# Data sets and task families


def image_script(out: Path, data: Path, *args: str) -> subprocess.CompletedProcess:
    return script("scripts/train_omniglot.py", "--dataset", "miniimagenet", "--data", str(data), "--out", str(out),
                  "--hidden", "4", "--iterations", "2", "--eval-tasks", "2", "--final-eval-tasks", "2",
                  "--no-progress", *args, env={"METARL_CACHE": str(out.parent / "cache")}, check=False)


def test_omniglot_data_folder_that_does_not_exist(tmp_path):
    result = script("scripts/train_omniglot.py", "--data", "/nonexistent", "--out", str(tmp_path / "run"),
                    check=False)
    refused(result, "train_omniglot.py", "Omniglot data folder not found: /nonexistent does not exist",
            "images_background.zip", "METARL_DATA")
    assert not (tmp_path / "run").exists()


def test_miniimagenet_without_a_split_file(tmp_path):
    data = tiny_miniimagenet(tmp_path / "mini")
    (data / "val.csv").unlink()
    refused(image_script(tmp_path / "run", data, "--ways", "2", "--queries", "2"), "train_omniglot.py",
            f"Mini-ImageNet split file(s) missing: {data / 'val.csv'}")
    assert not (tmp_path / "run").exists()


def test_corrupt_image_is_named(tmp_path):
    data = tiny_miniimagenet(tmp_path / "mini")
    image = data / "images" / "n0000000100000005.jpg"  # a training image
    content = image.read_bytes()
    image.write_bytes(content[: len(content) // 2])
    refused(image_script(tmp_path / "run", data, "--ways", "2", "--queries", "2"), "train_omniglot.py",
            f"cannot decode Mini-ImageNet image {image}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("args", "phrases"), [
    (["--ways", "5"], ["ways=5 is more than the 3 classes", "choose ways <= 3"]),
    (["--ways", "2", "--shots", "3", "--queries", "5"], ["3 + 5 = 8", "only 6", "lower shots or queries"]),
])
def test_more_ways_or_examples_than_the_data_has(tmp_path, args, phrases):
    refused(image_script(tmp_path / "run", tiny_miniimagenet(tmp_path / "mini"), *args), "train_omniglot.py", *phrases)
    assert not (tmp_path / "run").exists()


def test_unknown_task_family(tmp_path):
    result = script("scripts/train_omniglot.py", "--dataset", "imagenet", "--out", str(tmp_path / "run"), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr  # tyro's own report of a bad choice
    assert "imagenet" in result.stderr and "omniglot" in result.stderr and "miniimagenet" in result.stderr
    with pytest.raises(ValueError, match="unknown task family 'imagenet'; installed families: .*'omniglot'"):
        task_family("imagenet")


def test_unknown_environment_id(tmp_path):
    result = script("scripts/train_navigation.py", "--env-id", "envs:metarl/Nope-v0", "--out", str(tmp_path / "run"),
                    check=False)
    refused(result, "train_navigation.py", "unknown environment id 'envs:metarl/Nope-v0'",
            "envs:metarl/Navigation2D-v0", "envs:metarl/HalfCheetahVel-v0")
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------------------
# Checkpoints


class RunsCode:
    """Unpickling this object calls ``open(marker, "w")``: proof that the loader ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def crafted_checkpoint(path: Path, marker: Path) -> None:
    torch.save({"format": "metarl-checkpoint-v1", "method": "maml", "step": 1, "learner": RunsCode(marker)}, path)


def evaluate(checkpoint: Path, capsys: pytest.CaptureFixture) -> subprocess.CompletedProcess:
    """``metarl evaluate --checkpoint CHECKPOINT``, called in this process (the console script's function)."""
    code = cli.main(["evaluate", "--checkpoint", str(checkpoint)])
    output = capsys.readouterr()
    return subprocess.CompletedProcess(["metarl"], code, output.out, output.err)


def test_crafted_checkpoint_is_refused_without_running_its_code(run_copy, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    crafted_checkpoint(tmp_path / "evil.pt", marker)
    refused(evaluate(tmp_path / "evil.pt", capsys), "metarl", "holds objects other than tensors and plain values",
            "(it refers to io.open)", "refusing to load it")
    crafted_checkpoint(run_copy / "checkpoint.pt", marker)
    refused(sinusoid(run_copy, "--resume"), "train_sinusoid.py", "refusing to load it")
    assert not marker.exists()


def test_truncated_checkpoint(run_copy, capsys):
    data = (run_copy / "checkpoint.pt").read_bytes()
    (run_copy / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    refused(evaluate(run_copy, capsys), "metarl", "checkpoint.pt is truncated or corrupt", "restore a copy")
    refused(sinusoid(run_copy, "--resume"), "train_sinusoid.py", "checkpoint.pt is truncated or corrupt")
    assert (run_copy / "checkpoint.pt").read_bytes() == data[: len(data) // 2]


def test_checkpoint_of_another_method(run_copy, capsys):
    state = load_checkpoint(run_copy / "checkpoint.pt")
    save_checkpoint(run_copy / "checkpoint.pt", {**state, "method": "mann"})
    before = (run_copy / "checkpoint.pt").read_bytes()
    refused(sinusoid(run_copy, "--resume"), "train_sinusoid.py", "is a 'mann' checkpoint, not 'maml'")
    refused(evaluate(run_copy, capsys), "metarl", "the configuration saved in the checkpoint is not that of a 'mann' run")
    assert (run_copy / "checkpoint.pt").read_bytes() == before


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"method": "maml", "step": 1})
    before = path.read_bytes()

    def disk_full(obj, handle):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match=re.escape(f"could not write {path} (No space left on device)")) as error:
        save_checkpoint(path, {"method": "maml", "step": 2})
    assert error.value.errno == errno.ENOSPC
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_atomic_writes_get_a_plain_files_permissions(tmp_path):
    """The temporary file is private (mkstemp); the file it becomes is readable as any file the user writes."""
    mask = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "checkpoint.pt", {"method": "maml", "step": 1})
    finally:
        os.umask(mask)
    assert (tmp_path / "checkpoint.pt").stat().st_mode & 0o777 == 0o644


# ----------------------------------------------------------------------------------------------
# Divergence, Ctrl-C and SIGKILL


def test_diverging_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "run"
    line = refused(sinusoid(out, "--meta-lr", "1e30", "--checkpoint-every", "1"), "train_sinusoid.py",
                   "Lower the learning rates")
    metric, value, step = re.search(r"(train/\w+) became (\S+) at step (\d+)", line).groups()
    assert value in ("nan", "inf", "-inf") and metric in ("train/query_loss", "train/query_mse")
    state = load_checkpoint(out / "checkpoint.pt", "maml")
    assert state["step"] == int(step) - 1 and f"step {state['step']}) is kept" in line
    assert all(torch.isfinite(t).all() for t in state["learner"]["model"].values())
    assert records(out)[-1]["step"] < int(step) and not (out / "eval.json").exists()


def test_a_second_ctrl_c_stops_at_once(capsys):
    # Python's own handler, as in a terminal (a job started in the background inherits SIGINT ignored, and
    # StopRequest then leaves it ignored)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    stop = StopRequest("finishing the step")
    stop.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and "finishing the step" in capsys.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        stop.restore()
        restored = signal.signal(signal.SIGINT, outer)
    assert restored is signal.default_int_handler


def last_step(out: Path) -> int:
    """The last step in ``metrics.jsonl`` so far (a line being written is skipped)."""
    steps = [-1]
    for line in (out / "metrics.jsonl").read_text().splitlines() if (out / "metrics.jsonl").exists() else []:
        try:
            steps.append(json.loads(line)["step"])
        except json.JSONDecodeError:
            pass
    return max(steps)


AS_IN_A_TERMINAL = ["-c", ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                           "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")]
"""Runs a script with Python's own SIGINT handler, as in a terminal, even when the suite runs as a background job
(which inherits SIGINT ignored: the run would then rightly ignore Ctrl-C). Set in the child rather than through
``preexec_fn``, which forks a process that holds threads and may deadlock."""


def start_and_wait(out: Path, step: int, *args: str) -> subprocess.Popen:
    """Start the tiny sinusoid run and return once it has logged ``step``; fail if it ends first."""
    command = [sys.executable, *AS_IN_A_TERMINAL, *SINUSOID, "--out", str(out), "--iterations", ITERATIONS, *args]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **ENV}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while last_step(out) < step:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the run ended or stalled before step {step}: {process.communicate()}")
        time.sleep(0.01)
    return process


def test_ctrl_c_then_kill_then_resume_gives_the_uninterrupted_run(finished, tmp_path):
    out = tmp_path / "run"

    interrupted = start_and_wait(out, 30)
    interrupted.send_signal(signal.SIGINT)
    _, stderr = interrupted.communicate(timeout=60)
    assert interrupted.returncode == 130 and "Traceback" not in stderr, stderr
    assert "Ctrl-C: stopping after this step with a checkpoint" in stderr
    said = re.search(r"train_sinusoid.py: interrupted: checkpoint of step (\d+) saved in \S+; continue with the same "
                     r"command and --resume", stderr)
    assert said, stderr
    saved = int(said.group(1))
    assert load_checkpoint(out / "checkpoint.pt", "maml")["step"] == saved >= 30
    assert last_step(out) <= saved

    killed = start_and_wait(out, saved + 20, "--resume")
    killed.send_signal(signal.SIGKILL)
    _, stderr = killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL, stderr
    assert load_checkpoint(out / "checkpoint.pt", "maml")["step"] >= saved

    resumed = sinusoid(out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert records(out) == records(finished)
    assert json.loads((out / "eval.json").read_text()) == json.loads((finished / "eval.json").read_text())
    assert not list(out.glob(".*.tmp"))


# ----------------------------------------------------------------------------------------------
# Network

NO_NETWORK = """
import runpy, socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(args)
    raise OSError("network access attempted")
socket.socket.connect = socket.socket.connect_ex = socket.create_connection = socket.getaddrinfo = refuse

import envs, metarl, metarl.cli, metarl.rl.experiment, supervised.miniimagenet, supervised.omniglot
import gymnasium
env = gymnasium.make("envs:metarl/Navigation2D-v0")
env.reset(seed=0)
env.step(env.action_space.sample())
sys.argv = ["train_sinusoid.py", "--out", sys.argv[1], "--iterations", "3", "--eval-every", "2",
            "--eval-tasks", "2", "--final-eval-tasks", "2", "--meta-batch-size", "2", "--no-progress", "--no-plot"]
try:
    runpy.run_path("scripts/train_sinusoid.py", run_name="__main__")
except SystemExit as end:
    print("exit", end.code, "attempts", attempts)
"""


def test_no_network_access_at_import_training_or_evaluation(tmp_path):
    result = run("-c", NO_NETWORK, str(tmp_path / "run"), env=ENV)
    assert result.stdout.strip().endswith("exit 0 attempts []"), (result.stdout, result.stderr)
    assert (tmp_path / "run" / "eval.json").exists()


@pytest.mark.parametrize("argv,message", [
    (["evaluate", "--checkpoint", "run", "--tasks", "0"], "--tasks must be >= 1, got 0"),
    (["evaluate", "--checkpoint", "run", "--steps", "-1"], "--steps must be >= 0, got -1"),
    (["predict", "--checkpoint", "run", "--support", "s", "--query", "q", "--steps", "-2"], "--steps must be >= 0, got -2"),
])
def test_metarl_command_names_the_bad_count(argv, message, capsys):
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.strip() == f"metarl: error: {message}"
