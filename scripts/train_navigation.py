"""MAML-TRPO on 2D navigation (Finn et al. 2017, section 5.3): reach a goal drawn from U[-0.5, 0.5]^2.

The paper's settings: horizon 100, 20 tasks per meta-batch, 20 episodes per task, 100 iterations (its
code's length), one policy-gradient step of 0.1 (the paper's text, for all RL experiments), TRPO with
max KL 0.01; at test, 40 episodes per task and step, steps of 0.1 and then 0.05 as in the paper, the
third halved again (0.025: on three sets of 40 tuning tasks, never the test tasks, -2.0 and -1.8 after
three steps against -5.4 and -4.5 with 0.05 again). The paper reports returns -40.4 / -11.7 / -3.2
after 0 / 1 / 3 steps on 40 test tasks; with these settings all five seeds tried (0, 4-7) matched it
before adaptation, were better after three steps and within 3 of it after one. The paper's code trained
with a step of 0.5 here: with it, three seeds of five settled on a pre-update policy that runs off in
one direction and ended near -40 after one step.

    python scripts/train_navigation.py --out runs/navigation
"""

from metarl.rl.experiment import RLConfig, train_from_command_line
from metarl.rl.maml_trpo import MAMLTRPOConfig
from metarl.train import TrainConfig

if __name__ == "__main__":
    train_from_command_line(RLConfig(
        env_id="envs:metarl/Navigation2D-v0",
        horizon=100,
        maml=MAMLTRPOConfig(inner_lr=0.1, eval_inner_lr=0.05, eval_inner_lr_decay=0.5,
                            eval_episodes_per_task=40),
        train=TrainConfig(out="runs/navigation", iterations=100, meta_batch_size=20, log_every=1, eval_every=25,
                          eval_tasks=40, final_eval_tasks=40, checkpoint_every=5),
    ), description=__doc__)
