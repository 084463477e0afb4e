"""A supervised few-shot run (MAML, Meta-LSTM, nearest neighbour, Matching Networks), end to end: build it
from a JSON configuration, train it, evaluate it.

Task families are found through the ``metarl.task_families`` entry-point group (the ``supervised``
package registers sinusoid and Omniglot there), so ``metarl`` never imports them directly and a
user's own family plugs in the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarl.choices import check_choice
from metarl.evaluate import EvalResult, evaluate_supervised
from metarl.few_shot import FewShotLearner
from metarl.maml import MAML, MAMLConfig
from metarl.meta_lstm import MetaLSTM
from metarl.metric import MatchingNetwork, NearestNeighbour
from metarl.plots import CurveFamily, FigureHook, adaptation_figures
from metarl.tasks import SupervisedTaskDistribution
from metarl.train import TrainConfig, Trainer, reload_run, resolve_device, train_and_evaluate

PERIODIC_EVAL_PART, FINAL_EVAL_PART = "val", "test"


def task_family(name: str) -> Callable[..., SupervisedTaskDistribution]:
    """The factory ``(part, **options) -> distribution`` registered for ``name``."""
    found = {ep.name: ep for ep in entry_points(group="metarl.task_families")}
    if name not in found:
        raise ValueError(f"unknown task family {name!r}; installed families: {sorted(found) or 'none'} "
                         "(is the project installed with pip?)")
    return found[name].load()


class FamilyParts:
    """A task family with fixed options; calling it gives its distribution over a part (train, val, test),
    built once per part and set of option overrides, since building one may load a data set."""

    def __init__(self, family: str, options: dict[str, Any]) -> None:
        self.factory, self.options = task_family(family), options
        self._built: dict[str, Any] = {}

    def __call__(self, part: str, **overrides: Any) -> Any:
        options = {**self.options, **overrides}
        key = json.dumps([part, options], sort_keys=True)
        if key not in self._built:
            self._built[key] = self.factory(part, **options)
        return self._built[key]


LEARNERS: dict[str, type[FewShotLearner]] = {
    learner.method: learner for learner in (MAML, MetaLSTM, NearestNeighbour, MatchingNetwork)
}
"""The supervised meta-learners by method name (the name a checkpoint records)."""


def learner_class(method: str) -> type[FewShotLearner]:
    check_choice("supervised method", method, sorted(LEARNERS))
    return LEARNERS[method]


def method_of(learner_config: Any) -> str:
    """The method whose configuration dataclass ``learner_config`` is."""
    for method, learner in LEARNERS.items():
        if type(learner_config) is learner.Config:
            return method
    raise ValueError(f"{type(learner_config).__name__} is not the configuration of a supervised method; "
                     f"use one of {', '.join(learner.Config.__name__ for learner in LEARNERS.values())}")


@dataclass
class SupervisedConfig:
    """Everything that defines a supervised run; saved as the run's ``config.json``.

    The method is given by the type of ``learner``: a :class:`~metarl.maml.MAMLConfig` makes a MAML run,
    a :class:`~metarl.meta_lstm.MetaLSTMConfig` a Meta-LSTM run, and so on (see :data:`LEARNERS`).
    """

    family: str
    """Task family name (an entry point of metarl.task_families)."""
    task: dict[str, Any]
    """Options of the family's factory (ways, shots, queries, split, ...)."""
    model: dict[str, Any]
    """Model spec for metarl.models.build_model (the learner network, or the embedding's backbone)."""
    learner: Any = field(default_factory=MAMLConfig)
    """The method's own hyper-parameters (its configuration dataclass)."""
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def method(self) -> str:
        return method_of(self.learner)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SupervisedConfig:
        """Read a saved configuration; runs saved before there were several methods (a ``"maml"`` entry and
        no ``"method"``) are MAML runs."""
        if "method" not in data and "maml" in data:
            data = {**data, "method": MAML.method, "learner": data["maml"]}
        if "method" not in data or "learner" not in data:
            raise ValueError(f"not a supervised run's configuration: it has no method and learner entries "
                             f"(keys: {', '.join(sorted(data))})")
        learner = learner_class(data["method"]).Config(**data["learner"])
        return cls(family=data["family"], task=data["task"], model=data["model"], learner=learner,
                   train=TrainConfig(**data["train"]))


def check_ways(config: SupervisedConfig, ways: int, given: str) -> None:
    """ValueError unless the run's method can classify ``ways`` classes: an adapting method (MAML, Meta-LSTM)
    only as many as its model's output layer has; a metric method any number. ``given`` says where ``ways``
    comes from, for the message."""
    outputs = config.model.get("out_features")
    if learner_class(config.method).adapts and outputs is not None and ways != outputs:
        raise ValueError(f"{config.method} classifies with the model's {outputs}-way output layer, but {given}; "
                         f"use {outputs} classes with this run, train one for {ways}, or use a metric method "
                         "(nearest neighbour, Matching Networks), whose number of classes is free")


class SupervisedExperiment:
    """The learner, its task distributions and the evaluation protocol of one configuration."""

    def __init__(self, config: SupervisedConfig) -> None:
        self.config = config
        self.device = resolve_device(config.train.device)
        self.parts = FamilyParts(config.family, config.task)
        self.train_distribution = self.distribution("train")
        torch.manual_seed(config.train.seed)
        self.learner = learner_class(config.method).create(config.model, self.train_distribution, config.learner,
                                                           self.device)

    def distribution(self, part: str, **task_overrides: Any) -> SupervisedTaskDistribution:
        """The family's distribution over ``part``, built once per set of options."""
        return self.parts(part, **task_overrides)

    def evaluate(self, part: str, tasks: int, steps: int | None = None, **task_overrides: Any) -> EvalResult:
        """Metric on ``tasks`` tasks of ``part`` after 0..steps adaptation steps, from a fixed seed."""
        steps = self.learner.eval_steps if steps is None else steps
        options = {**self.config.task, **task_overrides}
        if "ways" in task_overrides:
            check_ways(self.config, options["ways"], f"the tasks asked for are {options['ways']}-way")
        seed = self.config.train.seed
        protocol = {"family": self.config.family, "part": part, "seed": seed, **options, "method": self.config.method,
                    "learner": asdict(self.config.learner), "step_kind": "step" if self.learner.adapts else "none"}
        return evaluate_supervised(self.learner, self.distribution(part, **task_overrides), tasks, steps,
                                   np.random.default_rng([seed, 1 if part == PERIODIC_EVAL_PART else 2]),
                                   self.config.train.meta_batch_size, protocol)

    def trainer(self) -> Trainer:
        distribution, size = self.train_distribution, self.config.train.meta_batch_size
        return Trainer(
            self.learner,
            sample_batch=lambda rng: self.learner.training_batch(distribution, size, rng),
            evaluate=lambda tasks: self.evaluate(PERIODIC_EVAL_PART, tasks),
            train=self.config.train,
            run_config=self.config.to_json(),
            figures=self._figures(),
        )

    def _figures(self) -> FigureHook | None:
        """For MAML on a family of functions (sinusoid): a few held-out tasks before and after adaptation,
        drawn to TensorBoard at each evaluation."""
        if not (isinstance(self.learner, MAML) and isinstance(self.train_distribution, CurveFamily)):
            return None
        return adaptation_figures(self.learner, self.distribution(PERIODIC_EVAL_PART),
                                  steps=(0, 1, self.learner.eval_steps))


def run_supervised(config: SupervisedConfig) -> tuple[SupervisedExperiment, EvalResult | None, EvalResult]:
    """Train, then evaluate on held-out tasks; write ``eval.json``.

    Returns the trained experiment and the (untrained, trained) evaluations. Both use the final
    protocol on the same held-out tasks; the untrained one is made before the first update and
    is ``None`` when a run is resumed.
    """
    experiment = SupervisedExperiment(config)
    for part in (PERIODIC_EVAL_PART, FINAL_EVAL_PART):  # loaded now, so missing data fails before the run folder
        experiment.distribution(part)
    trainer = experiment.trainer()  # checks the run folder before any work is done
    print(f"{config.method} on {config.family}: {config.train.iterations} iterations on "
          f"{experiment.device}; run folder {config.train.out}")
    untrained, trained = train_and_evaluate(
        trainer, lambda: experiment.evaluate(FINAL_EVAL_PART, config.train.final_eval_tasks))
    return experiment, untrained, trained


def load_experiment(path: str | Path, device: str | None = None) -> tuple[SupervisedExperiment, int]:
    """Rebuild a run from its folder (or its ``checkpoint.pt``) with the trained parameters."""
    return reload_run(path, tuple(LEARNERS), SupervisedConfig.from_json, SupervisedExperiment, device)
