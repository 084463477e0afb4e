"""Episodes and adapted policies of MAML-TRPO's evaluation protocol, kept for pictures.

:meth:`MAMLTRPO.evaluate` reduces the same rollouts to mean returns; figures need the trajectories
themselves (Navigation2D paths) and the adapted parameters (a rendered episode).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from metarl.functional import Params
from metarl.rl.maml_trpo import MAMLTRPO, RLBatch
from metarl.rl.sampler import Trajectories
from metarl.tasks import Task


@dataclass
class AdaptationRollouts:
    """``episodes[k]``: the episodes sampled after ``k`` adaptation steps (``episodes[0]``: before
    adaptation); ``params``: each task's policy after the last step, on a leading task axis."""

    episodes: list[Trajectories]
    params: Params


def adapt_and_sample(learner: MAMLTRPO, tasks: Sequence[Task], steps: int, seed: int) -> AdaptationRollouts:
    """Adapt the learner's policy to each task by ``steps`` policy-gradient steps of the run's schedule, as
    :meth:`MAMLTRPO.evaluate` does (:meth:`MAMLTRPO.adapt_for_evaluation`), and sample the adapted policies
    once more."""
    episodes, params = learner.adapt_for_evaluation(RLBatch(list(tasks), seed), learner.evaluation_step_sizes(steps))
    return AdaptationRollouts(episodes, params)


def trajectory_stages(learner: MAMLTRPO, tasks: Sequence[Task], steps: int, seed: int = 0
                      ) -> list[tuple[str, Trajectories]]:
    """The episodes before adaptation, after one step and after ``steps`` steps, each with its label: what
    :func:`metarl.plots.navigation_figure` draws."""
    episodes = adapt_and_sample(learner, tasks, steps, seed).episodes
    shown = sorted({0, min(1, steps), steps})
    return [("before adaptation" if k == 0 else f"after {k} step{'s' * (k != 1)}", episodes[k]) for k in shown]
