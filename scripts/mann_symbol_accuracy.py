"""Whole-label and per-symbol accuracy by instance of a trained MANN, LSTM or feed-forward run.

With string labels (five symbols of five values), whole-label accuracy stays near zero until a model binds
classes to labels, and hides what it learned before: this prints, on held-out episodes, the accuracy at
each class's 1st, 2nd, ... presentation of whole labels and of single symbols, next to the symbol accuracy
of the frequency rule (at every position, the symbol most frequent among the episode's labels: what a model
that knows the episode's labels but not which class has which reaches), and writes them to JSON.

    METARL_DATA=../shared/data python scripts/mann_symbol_accuracy.py runs/mann-15-string --out symbols.json
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import tyro

from metarl.mann_experiment import load_mann_experiment
from metarl.sequence_learner import frequency_rule_accuracy


@dataclass
class Args:
    """A run folder (or its checkpoint.pt) and how many held-out episodes to score."""

    checkpoint: tyro.conf.Positional[str]
    """Run folder or checkpoint of scripts/train_mann_omniglot.py."""
    episodes: int = 160
    """Held-out episodes (test classes)."""
    seed: int = 0
    """Seed of the episodes drawn."""
    part: Literal["train", "val", "test"] = "test"
    """Class split the episodes come from."""
    device: str = "cpu"
    """cpu or cuda."""
    out: str | None = None
    """JSON file for the figures (none: print only)."""


def main(args: Args) -> dict[str, Any]:
    if args.episodes < 1:
        print(f"mann_symbol_accuracy.py: error: --episodes must be >= 1, got {args.episodes}", file=sys.stderr)
        raise SystemExit(2)
    experiment, step = load_mann_experiment(args.checkpoint, args.device)
    alphabet, learner = experiment.train_distribution.alphabet, experiment.learner
    whole, symbols, rule = [], [], []
    for episode in experiment.episodes(args.part, args.episodes, np.random.default_rng(args.seed)):
        episode_whole, episode_symbols = learner.evaluate_by_symbol(episode)
        whole.append(episode_whole)
        symbols.append(episode_symbols)
        rule.append(frequency_rule_accuracy(episode.labels, alphabet))
    report = {"checkpoint": args.checkpoint, "checkpoint_step": step, **asdict(args),
              "model": experiment.config.model, **experiment.config.task,
              "instances": list(range(1, whole[0].shape[1] + 1)),
              "label_accuracy": torch.cat(whole).mean(0).tolist(),
              "symbol_accuracy": torch.cat(symbols).mean(0).tolist(),
              "frequency_rule_symbol_accuracy": torch.cat(rule).mean().item()}
    print(f"{report['model']}, {report['ways']} classes, {report['labels']} labels, step {step}: % correct by instance "
          f"on {args.episodes} episodes of the {args.part} classes")
    print("  instance     " + " ".join(f"{i:5d}" for i in report["instances"]))
    for name in ("label_accuracy", "symbol_accuracy"):
        print(f"  {name.split('_')[0]:12s} " + " ".join(f"{100 * a:5.1f}" for a in report[name]))
    print(f"  the frequency rule's symbol accuracy: {100 * report['frequency_rule_symbol_accuracy']:.1f}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main(tyro.cli(Args))
