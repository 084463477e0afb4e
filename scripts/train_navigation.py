"""MAML-TRPO on 2D navigation (Finn et al. 2017, section 5.3): reach a goal drawn from U[-0.5, 0.5]^2.

Paper settings: horizon 100, 20 tasks per meta-batch, 20 episodes per task, one policy-gradient
step of 0.1, TRPO with max KL 0.01. The paper reports returns -40.4 / -11.7 / -3.2 after 0 / 1 / 3
steps on 40 test tasks.

    python scripts/train_navigation.py --out runs/navigation
"""

from metarl.rl.experiment import RLConfig, train_from_command_line
from metarl.train import TrainConfig

if __name__ == "__main__":
    train_from_command_line(RLConfig(
        env_id="envs:metarl/Navigation2D-v0",
        horizon=100,
        train=TrainConfig(out="runs/navigation", iterations=500, meta_batch_size=20, log_every=1, eval_every=25,
                          eval_tasks=40, final_eval_tasks=40, checkpoint_every=5),
    ), description=__doc__)
