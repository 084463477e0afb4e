"""A MANN run (or one of its baselines) on online few-shot classification: build it from JSON, train it,
evaluate it.

The task family is found by name through the ``metarl.task_families`` entry points, as for MAML
(``supervised`` registers ``omniglot-sequences``); ``metarl`` never imports it. The evaluation is the
paper's: accuracy at the 1st, 2nd, ... presentation of a class, over episodes of held-out classes, with
the weights fixed. It is an :class:`EvalResult` whose ``steps`` are those instance numbers
(``protocol["step_kind"] == "instance"``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from metarl.checkpoint import load_run
from metarl.choices import check_choice
from metarl.evaluate import EvalResult
from metarl.experiment import FINAL_EVAL_PART, PERIODIC_EVAL_PART, FamilyParts
from metarl.mann import MANNConfig
from metarl.plots import instance_figures
from metarl.sequence_learner import SequenceLearner, SequenceLearnerConfig
from metarl.sequence_models import SEQUENCE_MODELS, build_sequence_model
from metarl.tasks import SequenceEpisode, SequenceTaskDistribution
from metarl.train import TrainConfig, Trainer, reload_run, resolve_device, train_and_evaluate


@dataclass
class MANNRunConfig:
    """Everything that defines a MANN (or baseline) run; saved as the run's ``config.json``."""

    family: str
    """Task family name (an entry point of metarl.task_families), e.g. omniglot-sequences."""
    task: dict[str, Any]
    """Options of the family's factory (ways, samples, labels, class_split, ...)."""
    model: str = "mann"
    """mann, or a baseline: lstm, ff."""
    mann: MANNConfig = field(default_factory=MANNConfig)
    optim: SequenceLearnerConfig = field(default_factory=SequenceLearnerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    init_from: str | None = None
    """A run folder (or its checkpoint.pt) of the same model whose weights a new run starts from, instead of
    random ones; the optimiser starts afresh. For a curriculum: 15-class string labels from a 5-class run."""

    def __post_init__(self) -> None:
        check_choice("model", self.model, SEQUENCE_MODELS)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MANNRunConfig:
        return cls(family=data["family"], task=data["task"], model=data["model"], mann=MANNConfig(**data["mann"]),
                   optim=SequenceLearnerConfig(**data["optim"]), train=TrainConfig(**data["train"]),
                   init_from=data.get("init_from"))


def _shape(distribution: SequenceTaskDistribution) -> tuple[int, int, int]:
    return distribution.feature_size, distribution.label_length, distribution.alphabet


class MANNExperiment:
    """The learner, its task distributions and the per-instance evaluation of one configuration."""

    def __init__(self, config: MANNRunConfig) -> None:
        self.config = config
        self.device = resolve_device(config.train.device)
        self.parts = FamilyParts(config.family, config.task)
        self.train_distribution = self.distribution("train")
        labels = self.train_distribution.label_length * self.train_distribution.alphabet
        torch.manual_seed(config.train.seed)
        model = build_sequence_model(config.model, self.train_distribution.feature_size + labels, labels, config.mann)
        self.learner = SequenceLearner(model, self.train_distribution.alphabet, config.optim, self.device)

    def distribution(self, part: str, **task_overrides: Any) -> SequenceTaskDistribution:
        """The family's distribution over ``part``; it must be a ``SequenceTaskDistribution``."""
        distribution = self.parts(part, **task_overrides)
        if not isinstance(distribution, SequenceTaskDistribution):
            raise ValueError(f"task family {self.config.family!r} does not make labelled sequences "
                             "(episode() -> SequenceEpisode, feature_size, label_length, alphabet); MANN needs them")
        if task_overrides and _shape(distribution) != _shape(self.train_distribution):
            raise ValueError(f"{task_overrides} changes the inputs or labels the model was trained on (features, label "
                             f"symbols, symbol values: {_shape(self.train_distribution)} -> {_shape(distribution)}); "
                             "with one-hot labels the number of ways is fixed by the output layer")
        return distribution

    def start_from(self, path: str | Path) -> None:
        """Load the model weights of the run at ``path`` (its folder or checkpoint.pt); they must be of the same
        model with the same shapes (string labels keep their shapes across ways; one-hot labels do not). A MANN
        run without key strengths may start one with them (:meth:`MANN.load_without_key_strength`)."""
        state, saved = load_run(path, SequenceLearner.method)
        if saved.get("model") != self.config.model:
            raise ValueError(f"--init-from {path}: it is a {saved.get('model')!r} run, this one is {self.config.model!r}")
        model = self.learner.model
        adds_key_strength = (self.config.model == "mann" and self.config.mann.key_strength
                             and not saved.get("mann", {}).get("key_strength", False))
        try:
            if adds_key_strength:
                model.load_without_key_strength(state["learner"]["model"])
            else:
                model.load_state_dict(state["learner"]["model"])
        except RuntimeError as error:
            raise ValueError(f"--init-from {path}: its weights do not fit this model (other inputs, labels or sizes): "
                             f"{str(error).splitlines()[-1].strip()}") from None

    def evaluate(self, part: str, tasks: int, steps: int | None = None, **task_overrides: Any) -> EvalResult:
        """Accuracy at each instance (1st, 2nd, ...) over ``tasks`` episodes of ``part``, from a fixed seed.

        ``steps`` is accepted for the shared ``metarl evaluate`` call and must be None: a MANN does not adapt
        by gradient steps.
        """
        if steps is not None:
            raise ValueError("--steps does not apply to a MANN run: it learns within an episode, without gradient "
                             "steps")
        if tasks < 1:
            raise ValueError(f"tasks (episodes) must be >= 1, got {tasks}")
        seed = self.config.train.seed
        rng = np.random.default_rng([seed, 1 if part == PERIODIC_EVAL_PART else 2])
        values = [self.learner.evaluate(episode) for episode in self.episodes(part, tasks, rng, **task_overrides)]
        protocol = {"family": self.config.family, "part": part, "seed": seed, **self.config.task, **task_overrides,
                    "model": self.config.model, "step_kind": "instance"}
        result = EvalResult.from_values("accuracy", torch.cat(values).numpy().astype(np.float64), protocol)
        return replace(result, steps=[s + 1 for s in result.steps])

    def episodes(self, part: str, tasks: int, rng: np.random.Generator,
                 **task_overrides: Any) -> Iterator[SequenceEpisode]:
        """``tasks`` episodes of ``part`` drawn from ``rng``, in batches of the meta-batch size."""
        distribution = self.distribution(part, **task_overrides)
        size = self.config.train.meta_batch_size
        for start in range(0, tasks, size):
            yield distribution.episode(distribution.sample_tasks(min(size, tasks - start), rng), rng)

    def trainer(self) -> Trainer:
        distribution, size = self.train_distribution, self.config.train.meta_batch_size
        return Trainer(
            self.learner,
            sample_batch=lambda rng: distribution.episode(distribution.sample_tasks(size, rng), rng),
            evaluate=lambda tasks: self.evaluate(PERIODIC_EVAL_PART, tasks),
            train=self.config.train,
            run_config=self.config.to_json(),
            figures=instance_figures(self.config.to_json()),  # accuracy by instance, with the paper's curve
            read_config=lambda saved: MANNRunConfig.from_json(saved).to_json(),  # settings added since: as run
        )


def run_mann(config: MANNRunConfig) -> tuple[MANNExperiment, EvalResult | None, EvalResult]:
    """Train, then evaluate on ``final_eval_tasks`` episodes of held-out classes; write ``eval.json`` and the
    accuracy by instance to TensorBoard (``eval/final_accuracy_by_instance``, plotted against the instance).

    Returns the experiment and the (initial, trained) evaluations on the same episodes; the initial one
    (untrained, or ``init_from``'s weights) is ``None`` when a run is resumed.
    """
    experiment = MANNExperiment(config)
    if config.init_from is not None and not config.train.resume:
        experiment.start_from(config.init_from)
    trainer = experiment.trainer()  # checks the run folder before any work is done
    print(f"{config.model} on {config.family}: {config.train.iterations} iterations of "
          f"{config.train.meta_batch_size} episodes on {experiment.device}; run folder {config.train.out}")
    untrained, trained = train_and_evaluate(
        trainer, lambda: experiment.evaluate(FINAL_EVAL_PART, config.train.final_eval_tasks))
    with SummaryWriter(str(Path(config.train.out) / "tensorboard")) as writer:  # the paper's curve: x is the instance number
        for instance, accuracy in zip(trained.steps, trained.mean):
            writer.add_scalar("eval/final_accuracy_by_instance", accuracy, instance)
    return experiment, untrained, trained


def load_mann_experiment(path: str | Path, device: str | None = None) -> tuple[MANNExperiment, int]:
    """Rebuild a MANN run from its folder (or its ``checkpoint.pt``) with the trained weights."""
    return reload_run(path, SequenceLearner.method, MANNRunConfig.from_json, MANNExperiment, device)
