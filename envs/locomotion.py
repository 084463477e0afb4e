"""MuJoCo locomotion task distributions of MAML (Finn et al. 2017, section 5.3) on gymnasium's v5 robots.

Each environment subclasses gymnasium's ``HalfCheetahEnv`` or ``AntEnv`` (v5) and replaces the reward
by overriding ``_get_rew(x_velocity, action)``, never ``step``: dynamics, observations, termination
and ``info`` stay those of v5, with the task reward terms and ``info["task"]`` added.

| id | task | reward per step |
|---|---|---|
| ``metarl/HalfCheetahVel-v0`` | velocity g ~ U[0, 2] | ``-|v_x - g| - 0.05 |a|^2`` |
| ``metarl/HalfCheetahDir-v0`` | direction d in {-1, +1} | ``d v_x - 0.05 |a|^2`` |
| ``metarl/AntVel-v0`` | velocity g ~ U[0, 3] | ``-|v_x - g| + 1 - 0.005 |a|^2 - contact + 0.05`` |
| ``metarl/AntDir-v0`` | direction d in {-1, +1} | ``d v_x - 0.005 |a|^2 - contact + 0.05`` |
| ``metarl/AntGoal-v0`` | goal position p ~ U[-3, 3]^2 | ``-|xy - p|_1 + 4 - 0.005 |a|^2 - contact + 0.05`` |

with ``contact = 0.0005 |clip(cfrc_ext, -1, 1)|^2``. ``metarl/Ant{Vel,Dir,Goal}-v1`` are the same tasks with
``dynamics="rllab"``: gymnasium's Ant model given the start pose, time step and contact impedance of
rllab's ``ant.xml`` (:func:`use_rllab_ant_dynamics`), which the paper's Ant ran with. Episodes last 200
steps; an Ant episode terminates when the torso height leaves [0.2, 1.0] (v5's ``healthy_z_range``). One
step lasts rllab's time step by default: dt = 0.01 s for HalfCheetah (``frame_skip=1``) and 0.02 s for Ant
(v0: ``frame_skip=2`` of 0.01 s; v1: ``frame_skip=1`` of 0.02 s), so a 200-step episode covers 2 s and 4 s
of simulated time as in MAML; ``frame_skip=5`` gives v5's dt = 0.05 s (v0). The control cost is computed
on the action clipped to the action space, the torque MuJoCo applies (rllab's ``normalize`` wrapper, used
by MAML, clipped actions before the environment saw them).

Where these differ from the rllab environments of MAML (cbfinn/maml_rl ``half_cheetah_env_rand*.py``,
``ant_env_rand*.py``):

- Time step: the same dt as rllab; for Ant (v0) not the same integration. rllab's ``MujocoEnv`` took one
  MuJoCo step per environment step (``frame_skip`` 1) of its models' timestep: 0.01 s in
  ``half_cheetah.xml`` and 0.02 s (RK4) in ``ant.xml``. gymnasium's models both have a 0.01 s timestep
  (Ant: RK4 too), so HalfCheetah takes one frame per step and the v0 Ant two frames of 0.01 s, where rllab
  took one RK4 step of 0.02 s, as the v1 Ant does. (gymnasium's v5 default, and pytorch-maml-rl's, is 5
  frames, dt = 0.05 s.)
- Velocity: v5's ``x_velocity`` is the displacement of the torso (HalfCheetah: the ``rootx`` joint)
  over the step divided by dt; rllab used the torso's centre-of-mass velocity at the end of the step.
- Observations: HalfCheetah v5 gives ``qpos[1:]`` and ``qvel`` (17 values; rllab added the torso's
  centre of mass, 20). Ant v5 gives ``qpos[2:]``, ``qvel`` and the clipped contact forces of the 13
  bodies (105 values; AntGoal keeps the torso's x, y: 107); rllab gave all of ``qpos``, ``qvel``, the
  contact forces of the 14 bodies including the world, the torso's rotation matrix and centre of mass (125).
- AntGoal measures the distance from the torso's x, y (``qpos[:2]``, in the observation); rllab used the
  centre of mass of the whole robot.
- Ant survival: v5's ``healthy_reward`` (1 per healthy step) is not used; the constants are rllab's, given
  on every step including the terminal one: +1 (AntVel) or +4 (AntGoal) inside the task term, +0.05
  survival. Termination is rllab's (torso height outside [0.2, 1.0] or a non-finite state).
- Start state: v5 adds U[-0.1, 0.1] noise to ``qpos`` and N(0, 0.1^2) to ``qvel``; rllab added N(0, 0.01^2)
  to ``qpos`` and N(0, 0.1^2) to ``qvel``. The noise is v5's in both versions; the Ant's pose it is added to
  is v5's ``qpos0`` in v0 (torso at 0.75 m, ankles at 0, outside their joint ranges) and rllab's
  ``init_qpos`` in v1 (torso at 0.55 m, ankles bent 1 rad; gymnasium's ``ant.xml`` carries it but v5 does
  not read it).
- Ant contacts: v0 has MuJoCo's default impedance (``solimp`` 0.9, 0.95, 0.001), v1 rllab's (0.8, 0.8, 0.01).
  The MuJoCo models are gymnasium's ``half_cheetah.xml`` and ``ant.xml`` (Ant: joint gear 150
  and controls in [-1, 1], which equals rllab's controls in [-150, 150] with its cost on ``a / 150``).
  ``half_cheetah.xml``'s ``settotalmass="14"``, deprecated in MuJoCo 4, is applied after compilation by
  :func:`envs.mujoco_models.load_model`: the same model, without a warning per environment built.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.utils import EzPickle

from envs.base import TaskEnv
from envs.mujoco_models import load_model
from envs.task_params import (
    check_keys,
    check_range,
    number_in_range,
    point_in_box,
    sign,
    sign_tasks,
    task_info,
    uniform_number_tasks,
    uniform_point_tasks,
)
from metarl.tasks import Task

HALF_CHEETAH_CTRL_COST = 0.05
ANT_CTRL_COST = 0.005
ANT_CONTACT_COST = 0.0005
ANT_SURVIVE_REWARD = 0.05
HALF_CHEETAH_FRAME_SKIP = 1
"""MuJoCo steps per environment step: 1 x 0.01 s, rllab's dt for HalfCheetah."""
ANT_FRAME_SKIP = 2
"""MuJoCo steps per environment step of the v0 Ant: 2 x 0.01 s (gymnasium's ``ant.xml`` timestep), rllab's dt
of 0.02 s for Ant (the v1 Ant takes 1 step of :data:`RLLAB_ANT_TIMESTEP`)."""
ANT_DYNAMICS = ("gymnasium", "rllab")
"""The Ant's simulation settings: gymnasium's ``ant.xml`` as it is, or with rllab's (:func:`use_rllab_ant_dynamics`)."""
RLLAB_ANT_TIMESTEP = 0.02
"""rllab's ``ant.xml`` timestep: one RK4 step of 0.02 s per environment step."""
RLLAB_ANT_SOLIMP = (0.8, 0.8, 0.01)
"""rllab's ``ant.xml`` contact impedance (``solimp`` of every geom; MuJoCo's default is 0.9, 0.95, 0.001)."""


def _check_frame_skip(frame_skip: int, owner: str) -> int:
    """Refuse a ``frame_skip`` that is not a positive integer (MuJoCo would run no step, or fail later)."""
    if not isinstance(frame_skip, (int, np.integer)) or isinstance(frame_skip, bool) or frame_skip < 1:
        raise ValueError(f"{owner} needs frame_skip, the MuJoCo steps per environment step, >= 1; got {frame_skip!r}")
    return int(frame_skip)


def use_rllab_ant_dynamics(model: mujoco.MjModel, data: mujoco.MjData) -> None:
    """Give gymnasium's Ant model the three simulation settings of rllab's ``ant.xml`` that it lacks, and put
    ``data`` in rllab's start pose.

    - the start pose: the model's ``init_qpos`` numeric (torso at 0.55 m, ankles bent 1 rad), which rllab's
      ``MujocoEnv`` read and gymnasium ignores, starting from ``qpos0`` (torso at 0.75 m, ankles at 0, outside
      their joint ranges of 30-70 degrees, so the joint limits kick the legs down on the first steps);
    - one RK4 step of :data:`RLLAB_ANT_TIMESTEP` instead of 0.01 s (MuJoCo keeps a contact's time constant
      at least twice the timestep, so contacts are softer at 0.02 s);
    - the contact impedance :data:`RLLAB_ANT_SOLIMP` of every geom.

    At rest (zero torque) the torso then settles: over 200 steps its height stays under 0.65 m (10 seeds). From
    the same pose with two 0.01 s steps it bounced up to the 1.0 m termination bound (1 episode of 60 ended
    there), and from v5's start to 0.70-0.87 m.
    """
    model.opt.timestep = RLLAB_ANT_TIMESTEP
    model.geom_solimp[:, :3] = RLLAB_ANT_SOLIMP
    data.qpos[:] = model.numeric("init_qpos").data
    mujoco.mj_forward(model, data)


def control_costs(actions: np.ndarray, low: np.ndarray, high: np.ndarray, weight: float) -> np.ndarray:
    """``weight |clip(a, low, high)|^2`` over the last axis: the control cost of the torque MuJoCo applies."""
    return weight * np.sum(np.square(np.clip(actions, low, high)), axis=-1)


def _refuse_kwargs(kwargs: Mapping[str, Any], names: Collection[str], owner: str) -> None:
    """Refuse v5 constructor arguments that the task reward replaces: they would be silently ignored."""
    given = sorted(set(kwargs) & set(names))
    if given:
        raise ValueError(f"{owner} computes its own task reward and does not take {given}")


class _LocomotionTaskEnv(TaskEnv):
    """What the five environments share: the task in the reset ``info``, the clipped control cost,
    pickling (and ``copy.deepcopy``) that keeps the task, and the model compiled without MuJoCo 4's
    ``settotalmass`` deprecation warning (``half_cheetah.xml``; see :mod:`envs.mujoco_models`)."""

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        # gymnasium's MujocoEnv._initialize_simulation with load_model for MjModel.from_xml_path
        model = load_model(self.fullpath)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    def __getstate__(self) -> dict[str, Any]:
        # EzPickle rebuilds the environment from its constructor arguments, which do not hold the task.
        return {**EzPickle.__getstate__(self), "task": self._task.to_dict()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        EzPickle.__setstate__(self, state)
        self.set_task(state["task"])

    def _get_reset_info(self) -> dict[str, Any]:
        return {**super()._get_reset_info(), "task": task_info(self._task)}

    def _clipped_control_cost(self, action: np.ndarray) -> float:
        return float(control_costs(action, self.action_space.low, self.action_space.high, self._ctrl_cost_weight))


class _HalfCheetahTaskEnv(_LocomotionTaskEnv, HalfCheetahEnv):
    """HalfCheetah-v5 whose forward reward is a task term; ``reward = task term - ctrl_cost_weight |a|^2``."""

    def __init__(self, ctrl_cost_weight: float, frame_skip: int, **kwargs: Any) -> None:
        _refuse_kwargs(kwargs, ("forward_reward_weight",), type(self).__name__)
        frame_skip = _check_frame_skip(frame_skip, type(self).__name__)
        HalfCheetahEnv.__init__(self, frame_skip=frame_skip, ctrl_cost_weight=ctrl_cost_weight, **kwargs)
        self.set_default_task()

    @abstractmethod
    def task_vector(self) -> np.ndarray:
        """The current task as the numbers :meth:`forward_rewards` reads (a vector env keeps one row per lane)."""

    @staticmethod
    @abstractmethod
    def forward_rewards(x_velocity: np.ndarray, task_vectors: np.ndarray) -> np.ndarray:
        """The task term of the reward for velocities ``[...]`` under tasks ``[..., k]`` (rows of :meth:`task_vector`)."""

    def _forward_reward(self, x_velocity: float) -> float:
        return float(self.forward_rewards(np.asarray(x_velocity), self.task_vector()))

    def _get_rew(self, x_velocity: float, action: np.ndarray) -> tuple[float, dict[str, Any]]:
        forward_reward = self._forward_reward(x_velocity)
        ctrl_cost = self._clipped_control_cost(action)
        info = {"reward_forward": forward_reward, "reward_ctrl": -ctrl_cost, "task": task_info(self._task)}
        return forward_reward - ctrl_cost, info


class _AntTaskEnv(_LocomotionTaskEnv, AntEnv):
    """Ant-v5 with rllab's reward: ``task term - ctrl cost - contact cost + 0.05`` (no v5 healthy reward)."""

    _task_reward_name = "reward_forward"

    def __init__(self, ctrl_cost_weight: float, contact_cost_weight: float, frame_skip: int | None, dynamics: str,
                 **kwargs: Any) -> None:
        _refuse_kwargs(kwargs, ("forward_reward_weight", "healthy_reward"), type(self).__name__)
        if dynamics not in ANT_DYNAMICS:
            raise ValueError(f"{type(self).__name__} needs dynamics in {ANT_DYNAMICS}; got {dynamics!r}")
        self._dynamics = dynamics  # read by _initialize_simulation, which AntEnv.__init__ calls
        if frame_skip is None:  # rllab's dt of 0.02 s
            frame_skip = 1 if dynamics == "rllab" else ANT_FRAME_SKIP
        frame_skip = _check_frame_skip(frame_skip, type(self).__name__)
        AntEnv.__init__(
            self,
            frame_skip=frame_skip,
            ctrl_cost_weight=ctrl_cost_weight,
            contact_cost_weight=contact_cost_weight,
            **kwargs,
        )
        self.set_default_task()

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        model, data = super()._initialize_simulation()
        if self._dynamics == "rllab":
            use_rllab_ant_dynamics(model, data)  # MujocoEnv takes init_qpos from data after this
        return model, data

    @abstractmethod
    def task_vector(self) -> np.ndarray:
        """The current task as the numbers :meth:`task_rewards` reads (a vector env keeps one row per lane)."""

    @staticmethod
    @abstractmethod
    def task_rewards(x_velocity: np.ndarray, xy: np.ndarray, task_vectors: np.ndarray) -> np.ndarray:
        """The task term of the reward, named ``_task_reward_name`` in ``info``, for torso velocities ``[...]``
        and positions ``xy`` (``qpos[:2]``, ``[..., 2]``) under tasks ``[..., k]`` (rows of :meth:`task_vector`)."""

    def _get_rew(self, x_velocity: float, action: np.ndarray) -> tuple[float, dict[str, Any]]:
        task_reward = float(self.task_rewards(np.asarray(x_velocity), self.data.qpos[:2], self.task_vector()))
        ctrl_cost = self._clipped_control_cost(action)
        contact_cost = self.contact_cost
        info = {
            self._task_reward_name: task_reward,
            "reward_ctrl": -ctrl_cost,
            "reward_contact": -contact_cost,
            "reward_survive": ANT_SURVIVE_REWARD,
            "task": task_info(self._task),
        }
        return task_reward - ctrl_cost - contact_cost + ANT_SURVIVE_REWARD, info


class _VelocityTasks:
    """Tasks ``{"velocity": g}`` with g ~ U[``_velocity_range``], which the subclass sets before the robot's
    ``__init__``; the task vector is ``[g]``."""

    family: str
    _velocity_range: tuple[float, float]

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        return uniform_number_tasks(self.family, "velocity", n, rng, self._velocity_range)

    def _apply_task(self, task: Task) -> None:
        check_keys(task, ("velocity",))
        self._goal_velocity = number_in_range(task, "velocity", *self._velocity_range)

    def task_vector(self) -> np.ndarray:
        return np.array([self._goal_velocity])


class _DirectionTasks:
    """Tasks ``{"direction": d}`` with d = -1 or +1 with equal odds; the task vector is ``[d]``."""

    family: str

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        return sign_tasks(self.family, "direction", n, rng)

    def _apply_task(self, task: Task) -> None:
        check_keys(task, ("direction",))
        self._direction = sign(task, "direction")

    def task_vector(self) -> np.ndarray:
        return np.array([float(self._direction)])


class HalfCheetahVelEnv(_VelocityTasks, _HalfCheetahTaskEnv):
    """Run forward at a target velocity; ``Task("halfcheetah-vel", {"velocity": g})``, g ~ U[velocity_range].

    Observation 17 values, action ``Box(-1, 1, (6,))``, dt = ``frame_skip`` x 0.01 s (default 0.01 s, rllab's).
    ``set_task`` refuses velocities outside ``velocity_range`` (widen it to evaluate outside the training range).
    """

    family = "halfcheetah-vel"

    def __init__(
        self,
        velocity_range: Sequence[float] = (0.0, 2.0),
        ctrl_cost_weight: float = HALF_CHEETAH_CTRL_COST,
        frame_skip: int = HALF_CHEETAH_FRAME_SKIP,
        **kwargs: Any,
    ) -> None:
        self._velocity_range = check_range("velocity_range", velocity_range)
        super().__init__(ctrl_cost_weight, frame_skip, **kwargs)
        EzPickle.__init__(self, velocity_range, ctrl_cost_weight, frame_skip, **kwargs)

    @staticmethod
    def forward_rewards(x_velocity: np.ndarray, task_vectors: np.ndarray) -> np.ndarray:
        return -np.abs(x_velocity - task_vectors[..., 0])


class HalfCheetahDirEnv(_DirectionTasks, _HalfCheetahTaskEnv):
    """Run forward or backward; ``Task("halfcheetah-dir", {"direction": d})``, d = -1 or +1 with equal odds.

    Observation 17 values, action ``Box(-1, 1, (6,))``, dt = ``frame_skip`` x 0.01 s (default 0.01 s, rllab's).
    """

    family = "halfcheetah-dir"

    def __init__(
        self, ctrl_cost_weight: float = HALF_CHEETAH_CTRL_COST, frame_skip: int = HALF_CHEETAH_FRAME_SKIP, **kwargs: Any
    ) -> None:
        super().__init__(ctrl_cost_weight, frame_skip, **kwargs)
        EzPickle.__init__(self, ctrl_cost_weight, frame_skip, **kwargs)

    @staticmethod
    def forward_rewards(x_velocity: np.ndarray, task_vectors: np.ndarray) -> np.ndarray:
        return task_vectors[..., 0] * x_velocity


class AntVelEnv(_VelocityTasks, _AntTaskEnv):
    """Walk forward at a target velocity; ``Task("ant-vel", {"velocity": g})``, g ~ U[velocity_range].

    Observation 105 values, action ``Box(-1, 1, (8,))``, dt = ``frame_skip`` x the model's timestep (default
    0.02 s, rllab's); ``dynamics="rllab"`` is :func:`use_rllab_ant_dynamics` (``metarl/AntVel-v1``).
    ``set_task`` refuses velocities outside ``velocity_range`` (widen it to evaluate outside the training range).
    """

    family = "ant-vel"

    def __init__(
        self,
        velocity_range: Sequence[float] = (0.0, 3.0),
        ctrl_cost_weight: float = ANT_CTRL_COST,
        contact_cost_weight: float = ANT_CONTACT_COST,
        frame_skip: int | None = None,
        dynamics: str = "gymnasium",
        **kwargs: Any,
    ) -> None:
        self._velocity_range = check_range("velocity_range", velocity_range)
        super().__init__(ctrl_cost_weight, contact_cost_weight, frame_skip, dynamics, **kwargs)
        EzPickle.__init__(self, velocity_range, ctrl_cost_weight, contact_cost_weight, frame_skip, dynamics, **kwargs)

    @staticmethod
    def task_rewards(x_velocity: np.ndarray, xy: np.ndarray, task_vectors: np.ndarray) -> np.ndarray:
        return -np.abs(x_velocity - task_vectors[..., 0]) + 1.0


class AntDirEnv(_DirectionTasks, _AntTaskEnv):
    """Walk forward or backward; ``Task("ant-dir", {"direction": d})``, d = -1 or +1 with equal odds.

    Observation 105 values, action ``Box(-1, 1, (8,))``, dt = ``frame_skip`` x the model's timestep (default
    0.02 s, rllab's); ``dynamics="rllab"`` is :func:`use_rllab_ant_dynamics` (``metarl/AntDir-v1``).
    """

    family = "ant-dir"

    def __init__(
        self,
        ctrl_cost_weight: float = ANT_CTRL_COST,
        contact_cost_weight: float = ANT_CONTACT_COST,
        frame_skip: int | None = None,
        dynamics: str = "gymnasium",
        **kwargs: Any,
    ) -> None:
        super().__init__(ctrl_cost_weight, contact_cost_weight, frame_skip, dynamics, **kwargs)
        EzPickle.__init__(self, ctrl_cost_weight, contact_cost_weight, frame_skip, dynamics, **kwargs)

    @staticmethod
    def task_rewards(x_velocity: np.ndarray, xy: np.ndarray, task_vectors: np.ndarray) -> np.ndarray:
        return task_vectors[..., 0] * x_velocity


class AntGoalEnv(_AntTaskEnv):
    """Walk to a goal position; ``Task("ant-goal", {"goal": [x, y]})``, x, y ~ U[goal_range].

    Observation 107 values: the torso's x, y come first (``exclude_current_positions_from_observation``
    is always False here, since the policy needs them), action ``Box(-1, 1, (8,))``, dt = ``frame_skip`` x
    the model's timestep (default 0.02 s, rllab's); ``dynamics="rllab"`` is :func:`use_rllab_ant_dynamics`
    (``metarl/AntGoal-v1``). ``set_task`` refuses goals outside ``goal_range``. The task term
    ``info["reward_goal"]`` is ``-|xy - goal|_1 + 4``.
    """

    family = "ant-goal"
    _task_reward_name = "reward_goal"

    def __init__(
        self,
        goal_range: Sequence[float] = (-3.0, 3.0),
        ctrl_cost_weight: float = ANT_CTRL_COST,
        contact_cost_weight: float = ANT_CONTACT_COST,
        frame_skip: int | None = None,
        dynamics: str = "gymnasium",
        **kwargs: Any,
    ) -> None:
        if kwargs.pop("exclude_current_positions_from_observation", False):
            raise ValueError(
                "AntGoalEnv needs the torso's x, y in the observation: "
                "exclude_current_positions_from_observation must be False"
            )
        self._goal_range = check_range("goal_range", goal_range)
        super().__init__(ctrl_cost_weight, contact_cost_weight, frame_skip, dynamics,
                         exclude_current_positions_from_observation=False, **kwargs)
        EzPickle.__init__(self, goal_range, ctrl_cost_weight, contact_cost_weight, frame_skip, dynamics, **kwargs)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        return uniform_point_tasks(self.family, "goal", 2, n, rng, self._goal_range)

    def _apply_task(self, task: Task) -> None:
        check_keys(task, ("goal",))
        self._goal = point_in_box(task, "goal", 2, *self._goal_range)

    def task_vector(self) -> np.ndarray:
        return np.asarray(self._goal, dtype=np.float64)

    @staticmethod
    def task_rewards(x_velocity: np.ndarray, xy: np.ndarray, task_vectors: np.ndarray) -> np.ndarray:
        return -np.abs(xy - task_vectors).sum(axis=-1) + 4.0
