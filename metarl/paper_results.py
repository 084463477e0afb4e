"""The published figures our runs are compared with, looked up from a run's ``config.json``.

The numbers are those cited in the README's Results section. Each one applies only to runs with the
same task family (or environment), method and task settings, because a figure for 5-shot sinusoid
regression says nothing about a 10-shot run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gymnasium.envs.registration import parse_env_id

from metarl.sequence_models import SEQUENCE_MODELS


@dataclass(frozen=True)
class PaperResult:
    """A paper's metric after ``steps`` adaptation steps (or at those instances of a class, for MANN)."""

    source: str
    metric: str
    steps: tuple[int, ...]
    values: tuple[float, ...]
    step_kind: str = "step"
    """``step`` (gradient steps), ``instance`` (MANN: the n-th presentation of a class) or ``none``."""

    def value_at(self, step: int) -> float | None:
        return dict(zip(self.steps, self.values)).get(step)


@dataclass(frozen=True)
class _Entry:
    match: dict[str, Any]
    result: PaperResult


_FINN = "Finn et al. 2017"
_SANTORO = "Santoro et al. 2016, Table 1"
_VINYALS = "Vinyals et al. 2016, Table 1"
_RAVI = "Ravi & Larochelle 2017, Table 1"
_MATCHING_OMNIGLOT = {(5, 1): 0.981, (5, 5): 0.989, (20, 1): 0.938, (20, 5): 0.985}
_MINI_IMAGENET = {  # (method, shots): 5-way accuracy
    ("nearest_neighbour", 1): 0.4108, ("nearest_neighbour", 5): 0.5104,
    ("matching_net", 1): 0.4340, ("matching_net", 5): 0.5109,
    ("meta_lstm", 1): 0.4344, ("meta_lstm", 5): 0.6060,
}
_TABLE = (
    _Entry({"task": "sinusoid", "method": "maml", "shots": 5},
           PaperResult(_FINN, "mse", (1, 5, 10), (0.67, 0.38, 0.35))),
    _Entry({"task": "omniglot", "method": "maml", "class_split": "maml", "ways": 5, "shots": 1},
           PaperResult(_FINN, "accuracy", (3,), (0.987,))),
    _Entry({"task": "omniglot", "method": "maml", "class_split": "maml", "ways": 20, "shots": 1},
           PaperResult(_FINN, "accuracy", (5,), (0.958,))),
    _Entry({"task": "Navigation2D"},
           PaperResult(_FINN, "return", (0, 1, 2, 3), (-40.4, -11.7, -3.3, -3.2))),
    _Entry({"task": "HalfCheetahVel"},
           PaperResult(_FINN, "return", (0, 1, 3), (-129.5, -78.6, -60.8))),
    _Entry({"task": "HalfCheetahDir"},
           PaperResult(_FINN, "return", (0, 1, 3), (-50.7, 293.2, 315.7))),
    # the Ant figures hold for rllab's Ant dynamics (v1), not for gymnasium's v5 Ant (v0)
    _Entry({"task": "AntVel", "version": "v1"},
           PaperResult(_FINN, "return", (0, 1, 3), (30.6, 96.7, 101.4))),
    _Entry({"task": "AntDir", "version": "v1"},
           PaperResult(_FINN, "return", (0, 1, 3), (8.7, 499.2, 499.1))),
    _Entry({"task": "omniglot-sequences", "method": "mann", "ways": 5, "labels": "one_hot"},
           PaperResult(_SANTORO, "accuracy", (1, 2, 3, 4, 5, 10), (0.364, 0.828, 0.910, 0.926, 0.949, 0.981),
                       "instance")),
    _Entry({"task": "omniglot-sequences", "method": "lstm", "ways": 5, "labels": "one_hot"},
           PaperResult(_SANTORO, "accuracy", (1, 2, 3, 4, 5, 10), (0.244, 0.495, 0.553, 0.610, 0.636, 0.625),
                       "instance")),
    _Entry({"task": "omniglot-sequences", "method": "mann", "ways": 15, "labels": "string"},
           PaperResult(_SANTORO, "accuracy", (2, 3, 4, 5, 10), (0.626, 0.793, 0.866, 0.887, 0.953), "instance")),
    *(_Entry({"task": "omniglot", "method": "matching_net", "fce": False, "ways": ways, "shots": shots},
             PaperResult(_VINYALS, "accuracy", (0,), (value,), "none"))
      for (ways, shots), value in _MATCHING_OMNIGLOT.items()),
    *(_Entry({"task": "miniimagenet", "method": method, "ways": 5, "shots": shots},
             PaperResult(_RAVI, "accuracy", (0,) if method != "meta_lstm" else (12 if shots == 1 else 8,), (value,),
                         "none" if method != "meta_lstm" else "step"))
      for (method, shots), value in _MINI_IMAGENET.items()),
)


def run_key(config: dict[str, Any]) -> dict[str, Any]:
    """What identifies a run's problem: ``task`` (family, or the environment's name without namespace and
    version, e.g. ``Navigation2D``, with the ``version`` apart, e.g. ``v1``), ``method`` and the family's
    options (ways, shots, split, labels).

    Reads the three kinds of ``config.json``: supervised (``method``, or the older ``maml`` entry),
    MANN (``model`` is mann, lstm or ff) and MAML-TRPO (``env_id``).
    """
    if "env_id" in config:
        _, task, version = parse_env_id(config["env_id"].split(":")[-1])
        return {"task": task, "version": None if version is None else f"v{version}",
                "method": "oracle" if config.get("oracle") else "maml_trpo"}
    if config.get("model") in SEQUENCE_MODELS:
        method = config["model"]
    elif "method" in config:
        method = config["method"]
    elif "maml" in config:
        method = "maml"
    else:
        raise ValueError("config.json names no method (no 'method', 'model' or 'env_id' entry): is this a metarl run?")
    return {"task": config["family"], "method": method, **config.get("task", {}), **config.get("learner", {})}


def paper_result(config: dict[str, Any]) -> PaperResult | None:
    """The published figure for the run's problem and method, or None when the README cites none."""
    key = run_key(config)
    for entry in _TABLE:
        if all(key.get(name) == value for name, value in entry.match.items()):
            return entry.result
    return None


def describe_run(config: dict[str, Any]) -> str:
    """A short title, e.g. ``"sinusoid, maml, 5 shots"`` or ``"omniglot, maml, 20-way 1-shot"``."""
    key = run_key(config)
    parts = [key["task"], key["method"]]
    if "ways" in key and "shots" in key:
        parts.append(f"{key['ways']}-way {key['shots']}-shot")
    elif "ways" in key:
        parts.append(f"{key['ways']} classes, {key.get('labels', 'one_hot').replace('_', '-')} labels")
    elif "shots" in key:
        parts.append(f"{key['shots']} shots")
    return ", ".join(parts)
