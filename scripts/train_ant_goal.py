"""MAML-TRPO on AntGoal-v1 (Finn et al. 2017, section 5.3): the MuJoCo Ant must reach a goal position
drawn from U[-3, 3]^2.

Paper settings: horizon 200, 40 tasks per meta-batch, 20 episodes per task, one policy-gradient step
of 0.1, TRPO with max KL 0.01, 1000 iterations (cbfinn/maml_rl). The MAML paper reports no AntGoal
figure (it comes from later work, e.g. ProMP). Each iteration samples 2 x 40 x 20 episodes of 200
steps (320,000 environment steps).

    python scripts/train_ant_goal.py --out runs/ant_goal

``metarl/AntGoal-v1``, the default, is the Ant on rllab's dynamics, as MAML ran it (start pose, 0.02 s step,
contacts; see ``envs.locomotion``). On gymnasium's v5 Ant instead:

    python scripts/train_ant_goal.py --env-id envs:metarl/AntGoal-v0 --out runs/ant_goal_v0
"""

from metarl.rl.experiment import locomotion_config, train_from_command_line

if __name__ == "__main__":
    train_from_command_line(locomotion_config("envs:metarl/AntGoal-v1", out="runs/ant_goal"), description=__doc__)
