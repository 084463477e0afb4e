"""MAML-TRPO on HalfCheetahVel-v0 (Finn et al. 2017, section 5.3): the MuJoCo HalfCheetah must run at a
target velocity drawn from U[0, 2].

Paper settings: horizon 200, 40 tasks per meta-batch, 20 episodes per task, one policy-gradient step
of 0.1, TRPO with max KL 0.01, 1000 iterations (cbfinn/maml_rl). The paper reports returns -129.5 /
-78.6 / -60.8 after 0 / 1 / 3 steps on 40 test tasks. Each iteration samples 2 x 40 x 20 episodes of
200 steps (320,000 environment steps).

    python scripts/train_halfcheetah_vel.py --out runs/halfcheetah_vel
"""

from metarl.rl.experiment import locomotion_config, train_from_command_line

if __name__ == "__main__":
    config = locomotion_config("envs:metarl/HalfCheetahVel-v0", out="runs/halfcheetah_vel")
    train_from_command_line(config, description=__doc__)
