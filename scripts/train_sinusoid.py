"""MAML on sinusoid regression (Finn et al. 2017, section 5.1); defaults are the paper's settings.

    python scripts/train_sinusoid.py --out runs/sinusoid --iterations 70000
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from metarl.experiment import SupervisedConfig, run_supervised
from metarl.maml import MAMLConfig
from metarl.script import run_script
from metarl.train import TrainConfig
from supervised.sinusoid import make_sinusoid
from supervised.sinusoid_plot import plot_sinusoid_adaptation


@dataclass
class Args:
    """MAML on sinusoid regression (paper defaults: K=10, 1 inner step of 0.01, meta-batch 25, Adam 1e-3)."""

    shots: int = 10
    """Support points per task (K)."""
    queries: int = 10
    """Query points per task for the meta-update and for evaluation."""
    hidden: tuple[int, ...] = (40, 40)
    """Hidden layer sizes of the ReLU MLP."""
    plot: bool = True
    """Write adaptation.png with a few held-out tasks at the end."""
    maml: MAMLConfig = field(default_factory=MAMLConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        out="runs/sinusoid", iterations=70_000, meta_batch_size=25, eval_every=1000, checkpoint_every=1000))


def main(args: Args) -> None:
    config = SupervisedConfig(
        family="sinusoid",
        task={"shots": args.shots, "queries": args.queries},
        model={"name": "mlp", "sizes": [1, *args.hidden, 1]},
        learner=args.maml,
        train=args.train,
    )
    experiment, untrained, trained = run_supervised(config)
    out = Path(args.train.out)
    print(f"held-out tasks, post-adaptation MSE after {trained.steps[-1]} steps ({trained.tasks} tasks):")
    if untrained is not None:
        print(f"  untrained model: {untrained.describe()}")
    print(f"  trained model:   {trained.describe()}")
    print(f"  after 1 step:    {trained.describe(1)}")
    if args.plot:
        picture = plot_sinusoid_adaptation(experiment.learner, make_sinusoid("test", shots=args.shots),
                                           out / "adaptation.png", steps=(0, 1, args.maml.eval_inner_steps))
        print(f"plot of held-out tasks: {picture}")
    print(f"metrics: {out / 'metrics.jsonl'}, evaluation: {out / 'eval.json'}; "
          f"TensorBoard: tensorboard --logdir {out.parent}")


if __name__ == "__main__":
    run_script(main, Args)
