"""MAML-TRPO on 2D navigation (Finn et al. 2017, section 5.3): reach a goal drawn from U[-0.5, 0.5]^2.

Settings of the paper's own run (cbfinn/maml_rl maml_trpo_point.py and test_maml_point.py, whose
"ICML values" produced the paper's figures): horizon 100, 20 tasks per meta-batch, 20 episodes per
task, 100 iterations, one policy-gradient step of 0.5 (the paper's text says 0.1 for all RL
experiments; its code used 0.5 here), TRPO with max KL 0.01; at test, 40 episodes per task and step
and a first step of 0.5. The paper's code took 0.25 for the later steps; here that made the second
step diverge on some tuning tasks (-13.6 +- 2.8 after two steps against -6.3 +- 0.8 with 0.1). The later
steps are 0.15 and then halved each step (0.15, 0.075), chosen on three sets of 40 tuning tasks (seeds
1-3, never the test tasks) among constant and decaying schedules. The paper reports returns -40.4 /
-11.7 / -3.2 after 0 / 1 / 3 steps on 40 test tasks.

    python scripts/train_navigation.py --out runs/navigation
"""

from metarl.rl.experiment import RLConfig, train_from_command_line
from metarl.rl.maml_trpo import MAMLTRPOConfig
from metarl.train import TrainConfig

if __name__ == "__main__":
    train_from_command_line(RLConfig(
        env_id="envs:metarl/Navigation2D-v0",
        horizon=100,
        maml=MAMLTRPOConfig(inner_lr=0.5, eval_inner_lr=0.15, eval_inner_lr_decay=0.5,
                            eval_episodes_per_task=40),
        train=TrainConfig(out="runs/navigation", iterations=100, meta_batch_size=20, log_every=1, eval_every=25,
                          eval_tasks=40, final_eval_tasks=40, checkpoint_every=5),
    ), description=__doc__)
