"""The training loop shared by every meta-learner: progress, logs, evaluation, checkpoints, resume."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from metarl import distributed
from metarl.checkpoint import CheckpointError, load_checkpoint, load_run, save_checkpoint, write_text_atomic
from metarl.evaluate import EvalResult
from metarl.interrupt import StopRequest, TrainingInterrupted
from metarl.logger import RunLogger

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RESUMABLE_CHANGES = frozenset({"out", "iterations", "resume", "device", "progress", "workers", "learner.cuda_graph",
                               "learner.task_threads"})
"""Settings that may change when a run is resumed (they do not change its results); any other change is
refused. Keys of the ``train`` entry are named without their ``train.`` prefix."""


@dataclass
class TrainConfig:
    """Settings of the loop itself, shared by every training script."""

    out: str = "runs/run"
    """Run folder: config.json, metrics.jsonl, tensorboard/, checkpoint.pt, eval.json."""
    iterations: int = 1000
    """Meta-training iterations (outer updates)."""
    meta_batch_size: int = 25
    """Tasks per meta-update."""
    log_every: int = 100
    """Iterations between train/ and perf/ records."""
    eval_every: int = 1000
    """Iterations between evaluations on held-out tasks (also done before the first update)."""
    eval_tasks: int = 100
    """Held-out tasks per periodic evaluation."""
    final_eval_tasks: int = 600
    """Held-out tasks of the final evaluation (mean and 95% confidence interval)."""
    checkpoint_every: int = 1000
    """Iterations between checkpoints (one is always written at the end)."""
    seed: int = 0
    """Seeds model initialisation and task sampling."""
    device: str = "auto"
    """auto (CUDA when available), cpu or cuda."""
    resume: bool = False
    """Continue the run in --out from its checkpoint."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        for name in ("iterations", "meta_batch_size", "log_every", "eval_every", "eval_tasks",
                     "final_eval_tasks", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")


class MetaLearner(Protocol):
    """What the loop needs of a meta-learner."""

    method: str

    def meta_train_step(self, batch: Any) -> dict[str, float]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class TrainingDiverged(FloatingPointError):
    """A training metric became NaN or infinite; the last good checkpoint is left as it was."""


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else the CPU; asking for CUDA without it is an error. Under torchrun,
    ``cuda`` is the process's own GPU (``cuda:LOCAL_RANK``)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but torch sees no CUDA GPU; use --device cpu")
    return distributed.local_device(torch.device(name))


def config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested configurations."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


class _Unlogged:
    """The logger of the processes other than rank 0 under torchrun: it keeps the time and writes nothing."""

    def __init__(self, elapsed: float) -> None:
        self.started = time.perf_counter() - elapsed

    elapsed = RunLogger.elapsed

    def log(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class Trainer:
    """Runs ``learner.meta_train_step`` on batches from ``sample_batch`` and keeps the run folder.

    Construction checks and prepares the folder (refusing to overwrite a run, or to resume one with a
    changed configuration), so mistakes surface before any work is done.

    Under torchrun (:mod:`metarl.distributed`) every process runs the loop in lock-step and only rank 0
    writes the run folder (and draws ``figures``, which therefore must not call collectives such as a sharded
    ``learner.evaluate``); the others get the checkpoint to resume from rank 0.

    ``run_config`` is the whole configuration as JSON (saved as ``config.json``; its ``"train"``
    entry is ``train``). ``evaluate`` returns held-out results and must draw its own tasks from a
    fixed seed, so successive evaluations are comparable and resuming does not change them.
    ``figures``, when given, is called after each evaluation with the step and its result and returns
    ``{tag: matplotlib figure}``, logged as TensorBoard images (keep it cheap: it runs at every evaluation).
    ``read_config``, when given, brings a saved ``config.json`` to the current form (settings added to metarl
    since the run began, at the values that reproduce it) before ``--resume`` compares it with ``run_config``.
    """

    def __init__(
        self,
        learner: MetaLearner,
        sample_batch: Callable[[np.random.Generator], Any],
        evaluate: Callable[[int], EvalResult],
        train: TrainConfig,
        run_config: dict[str, Any],
        figures: Callable[[int, EvalResult], dict[str, Figure]] | None = None,
        read_config: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.learner, self.sample_batch, self.evaluate, self.figures = learner, sample_batch, evaluate, figures
        self.train, self.run_config, self.read_config = train, run_config, read_config
        self.out = Path(train.out)
        self.checkpoint_path = self.out / "checkpoint.pt"
        if distributed.is_main():
            self._prepare_folder()

    def _prepare_folder(self) -> None:
        config_path = self.out / "config.json"
        if self.train.resume:
            if not self.checkpoint_path.exists():
                raise FileNotFoundError(f"--resume: no checkpoint at {self.checkpoint_path}; drop --resume to start "
                                        "a new run")
            old = json.loads(config_path.read_text())
            if self.read_config is not None:
                old = self.read_config(old)
            old, new = (json.loads(json.dumps(c)) for c in (old, self.run_config))  # as saved: tuples become lists
            changed = [k for k in config_differences(old, new)
                       if k.removeprefix("train.") not in RESUMABLE_CHANGES]
            if changed:
                raise ValueError(f"--resume with a changed configuration: {', '.join(changed)} differ from "
                                 f"{config_path}; start a new --out or restore those settings")
        elif self.checkpoint_path.exists():
            raise FileExistsError(f"{self.out} already holds a run; pass --resume to continue it or choose another --out")
        self._check_writable()
        write_text_atomic(config_path, json.dumps(self.run_config, indent=2) + "\n")

    def _check_writable(self) -> None:
        """Create and remove a file in the run folder, so an unwritable or full disk fails before any work."""
        probe = self.out / ".write-test"
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            probe.write_text("metarl\n")
            probe.unlink()
        except OSError as error:
            raise type(error)(error.errno, f"cannot write in the run folder {self.out} ({error.strerror}); choose "
                                           "another --out, or free space or fix its permissions") from None

    def _save(self, step: int, rng: np.random.Generator, elapsed: float) -> None:
        if not distributed.is_main():
            return
        save_checkpoint(self.checkpoint_path, {
            "method": self.learner.method,
            "step": step,
            "learner": self.learner.state_dict(),
            "numpy_rng": json.dumps(rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "config": json.dumps(self.run_config),
            "elapsed": elapsed,
        })

    def _restore(self, rng: np.random.Generator) -> tuple[int, float]:
        state = distributed.from_main(lambda: load_checkpoint(self.checkpoint_path, self.learner.method))
        self.learner.load_state_dict(state["learner"])
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        return state["step"], state["elapsed"]

    def run(self) -> dict[int, EvalResult]:
        """Train to ``train.iterations`` and return the evaluations made, by step."""
        rng = np.random.default_rng(self.train.seed)
        start, elapsed = self._restore(rng) if self.train.resume else (0, 0.0)
        logger = RunLogger(self.out, start, elapsed) if distributed.is_main() else _Unlogged(elapsed)
        evaluations: dict[int, EvalResult] = {}
        saved = start if self.train.resume else None
        stop = StopRequest(f"Ctrl-C: stopping after this step with a checkpoint in {self.out} "
                           "(press Ctrl-C again to stop at once, without one)")

        def evaluate(step: int) -> None:
            result = self.evaluate(self.train.eval_tasks)
            evaluations[step] = result
            logger.log(step, result.scalars())
            if self.figures is not None and isinstance(logger, RunLogger):
                for tag, figure in self.figures(step, result).items():
                    logger.writer.add_figure(tag, figure, step)

        try:
            stop.install()
            if start == 0:
                evaluate(0)
            bar = tqdm(range(start + 1, self.train.iterations + 1), initial=start, total=self.train.iterations,
                       disable=not self.train.progress or not distributed.is_main(), dynamic_ncols=True)
            window_tasks, window_start = 0, time.perf_counter()
            for step in bar:
                metrics = self.learner.meta_train_step(self.sample_batch(rng))
                window_tasks += self.train.meta_batch_size
                bad = [name for name, value in metrics.items() if not math.isfinite(value)]
                if bad:
                    kept = "no checkpoint was written yet" if saved is None else \
                        f"the last good checkpoint ({self.checkpoint_path}, step {saved}) is kept"
                    raise TrainingDiverged(f"train/{bad[0]} became {metrics[bad[0]]} at step {step}; stopped, and "
                                           f"{kept}. Lower the learning rates or check the data.")
                if step % self.train.log_every == 0 or step == self.train.iterations:
                    now = time.perf_counter()
                    record = {k if "/" in k else f"train/{k}": v for k, v in metrics.items()}
                    record["perf/tasks_per_second"] = window_tasks / (now - window_start)
                    logger.log(step, record)
                    bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in record.items()})
                    window_tasks, window_start = 0, now
                if step % self.train.eval_every == 0 or step == self.train.iterations:
                    evaluate(step)
                if step % self.train.checkpoint_every == 0 or step == self.train.iterations:
                    self._save(step, rng, logger.elapsed)
                    saved = step
                if distributed.any_rank(stop.requested):
                    if saved != step:
                        self._save(step, rng, logger.elapsed)
                    raise TrainingInterrupted(f"interrupted: checkpoint of step {step} saved in "
                                              f"{self.checkpoint_path}; continue with the same command and --resume")
        finally:
            stop.restore()
            logger.close()
        return evaluations


def train_and_evaluate(
    trainer: Trainer, final_evaluation: Callable[[], EvalResult]
) -> tuple[EvalResult | None, EvalResult]:
    """Run ``trainer`` between two final evaluations and write the second to ``eval.json``.

    Both evaluations use the same protocol and held-out tasks, so the pair shows what training
    bought; the untrained one is skipped (``None``) when the run is resumed.
    """
    untrained = None if trainer.train.resume else final_evaluation()
    trainer.run()
    trained = final_evaluation()
    if distributed.is_main():
        write_text_atomic(trainer.out / "eval.json", json.dumps(trained.to_json(), indent=2) + "\n")
    return untrained, trained


def reload_run(
    path: str | Path, method: str | Collection[str], config_from_json: Callable[[dict[str, Any]], Any],
    build: Callable[[Any], Any], device: str | None = None,
) -> tuple[Any, int]:
    """Rebuild an experiment from a run folder (or its ``checkpoint.pt``) with the trained learner.

    ``config_from_json`` turns the saved configuration back into its dataclass, ``build`` makes the
    experiment (which has a ``learner``); ``device`` overrides the run's own setting. Returns the
    experiment and the checkpoint's step.
    """
    state, saved = load_run(path, method=method)
    try:
        config = config_from_json(saved)
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: the configuration saved in the checkpoint is not that of a {state['method']!r} "
                              f"run ({type(error).__name__}: {error}); it was altered or written by another version of "
                              "metarl") from None
    if device is not None:
        config.train.device = device
    experiment = build(config)
    experiment.learner.load_state_dict(state["learner"])
    return experiment, state["step"]
