"""Loading gymnasium's MuJoCo models without MuJoCo 4's ``settotalmass`` deprecation warning.

gymnasium's ``half_cheetah.xml`` has ``<compiler ... settotalmass="14"/>``. MuJoCo 4 deprecates that
attribute: compiling it prints ``WARNING: compiler attribute 'settotalmass' is deprecated ...`` and appends
it to ``MUJOCO_LOG.TXT`` in the working directory, once per environment built. :func:`load_model` builds
the same model without the attribute: it parses the XML into an ``MjSpec``, unsets ``settotalmass`` there
(nothing is written to disk; relative asset paths still start from the XML's folder), compiles, then does
what the attribute did, as the warning advises: ``mj_setTotalmass`` (scales every body's mass and
inertia) and ``mj_setConst``. In MuJoCo 4, ``mj_setConst`` leaves ``stat.meanmass`` and
``stat.meaninertia`` at the unscaled model's values (MuJoCo 4 says ``meaninertia`` no longer affects
simulation), so both are recomputed the way the compiler computes them: mean body mass, mean diagonal of
the joint-space inertia at ``qpos0``. Values that the XML sets (``<statistic>``) are kept. The result
equals, array for array, the model that ``MjModel.from_xml_path`` compiles (``tests/test_envs.py`` checks
this and a rollout). No global MuJoCo state, such as the warning handler, is changed.
"""

from __future__ import annotations

import mujoco
import numpy as np


def _mean(values: np.ndarray) -> float:
    """Sum left to right, then divide: the compiler's order, so the result is the same float."""
    total = 0.0
    for value in values:
        total += float(value)
    return total / len(values)


def load_model(path: str) -> mujoco.MjModel:
    """The ``MjModel`` of the MJCF file ``path``, with ``settotalmass`` applied after compilation."""
    spec = mujoco.MjSpec.from_file(path)
    total_mass = spec.compiler.settotalmass
    if not total_mass > 0:
        return mujoco.MjModel.from_xml_path(path)
    spec.compiler.settotalmass = -1.0  # MuJoCo's "unset"
    model = spec.compile()
    mujoco.mj_setTotalmass(model, total_mass)
    mujoco.mj_setConst(model, mujoco.MjData(model))
    # the compiler keeps the values of <statistic meanmass=... meaninertia=...> too
    if model.nbody > 1 and np.isnan(spec.stat.meanmass):
        model.stat.meanmass = _mean(model.body_mass[1:])
    if model.nv > 0 and np.isnan(spec.stat.meaninertia):
        data = mujoco.MjData(model)  # at qpos0
        mujoco.mj_forward(model, data)
        inertia = np.zeros((model.nv, model.nv))
        mujoco.mj_fullM(model, data, inertia)
        model.stat.meaninertia = _mean(np.diag(inertia))
    return model
