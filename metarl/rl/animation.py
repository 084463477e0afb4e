"""A GIF of a MuJoCo policy before and after adaptation, rendered offscreen and written with pillow.

MuJoCo renders offscreen through an OpenGL backend chosen by ``MUJOCO_GL`` (``egl`` or ``osmesa`` on a
machine without a display). :func:`renderer_problem` checks that one frame can be rendered before any
work is done, and says what is missing when it cannot.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium
import mujoco
import numpy as np
import torch
from gymnasium.envs.mujoco import MujocoEnv
from PIL import Image, ImageDraw, ImageFont

from metarl.functional import Params, parameters_of
from metarl.rl.experiment import RLExperiment
from metarl.rl.rollouts import adapt_and_sample
from metarl.rl.sampler import action_affine, policy_per_task, stack_params
from metarl.tasks import Task

CAPTION_HEIGHT = 24
"""Pixels of the white strip above a frame that holds its caption."""
TRACKING_CAMERA = "track"
"""The camera that follows the robot in gymnasium's HalfCheetah and Ant models; used when the model has it."""
_PROBE = ("import sys, gymnasium; env = gymnasium.make(sys.argv[1], render_mode='rgb_array', width=32, height=24); "
          "env.reset(seed=0); env.render(); env.close()")


def is_mujoco(experiment: RLExperiment) -> bool:
    """Whether the run's environment is a MuJoCo one (which can be rendered)."""
    return isinstance(experiment.tasks, MujocoEnv)


def renderer_problem(env_id: str, timeout: float = 120.0) -> str | None:
    """None when MuJoCo renders a frame of ``env_id`` offscreen here; otherwise a one-line message that
    says why not and what is needed.

    The probe runs in a child process: PyOpenGL picks its platform once per process, so a failed try
    would leave this one unable to render even after ``MUJOCO_GL`` is fixed.
    """
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE, env_id], capture_output=True, text=True, timeout=timeout,
                               check=False)
    except subprocess.TimeoutExpired:
        reason = f"rendering one frame took more than {timeout:g} s"
    else:
        if probe.returncode == 0:
            return None
        lines = [line.strip() for line in probe.stderr.splitlines() if line.strip()]
        reason = lines[-1][:200] if lines else f"exit status {probe.returncode}"
    return (f"no GIF: MuJoCo cannot render offscreen here (MUJOCO_GL={os.environ.get('MUJOCO_GL', 'unset')}: "
            f"{reason}); set MUJOCO_GL=egl (needs libEGL with a GPU driver or Mesa) or MUJOCO_GL=osmesa "
            "(needs libOSMesa) and run again")


def _episode_frames(env: gymnasium.Env, policy: torch.nn.Module, params: Params, task: Task, horizon: int,
                    every: int, seed: int) -> tuple[list[np.ndarray], float]:
    """Frames of one episode of the policy's mean action (every ``every``-th step) and its return."""
    scale, center = action_affine(env.action_space, policy.log_std.dtype, policy.log_std.device)
    observation, _ = env.reset(seed=seed, options={"task": task})
    frames, total = [env.render()], 0.0
    for t in range(horizon):
        obs = torch.as_tensor(observation, dtype=policy.log_std.dtype, device=policy.log_std.device).view(1, 1, -1)
        with torch.no_grad():
            mean, _ = policy_per_task(policy, params, obs)
        observation, reward, terminated, truncated, _ = env.step((mean.view(-1) * scale + center).cpu().numpy())
        total += float(reward)
        if (t + 1) % every == 0:
            frames.append(env.render())
        if terminated or truncated:
            break
    return frames, total


def _caption(image: Image.Image, text: str, font: ImageFont.ImageFont) -> Image.Image:
    """``image`` under a white strip holding ``text``."""
    captioned = Image.new("RGB", (image.width, image.height + CAPTION_HEIGHT), "white")
    captioned.paste(image, (0, CAPTION_HEIGHT))
    ImageDraw.Draw(captioned).text((6, 4), text, fill="black", font=font)
    return captioned


def write_policy_gif(experiment: RLExperiment, path: str | Path, steps: int | None = None, seed: int = 0,
                     every: int = 4, size: tuple[int, int] = (320, 240)) -> Path:
    """Render one episode of a test task before adaptation and after ``steps`` adaptation steps (the
    evaluation's protocol), side by side, to a GIF at real-time speed. Actions are the policy's mean.
    Call :func:`renderer_problem` first: without an OpenGL backend MuJoCo fails here."""
    learner, config = experiment.learner, experiment.config
    steps = config.maml.eval_inner_steps if steps is None else steps
    task = experiment.tasks.sample_tasks(1, np.random.default_rng([seed, 3]))[0]
    adapted = adapt_and_sample(learner, [task], steps, seed).params
    before = stack_params(parameters_of(learner.policy), 1)
    model = experiment.tasks.model
    camera = {"camera_name": TRACKING_CAMERA} if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA,
                                                                   TRACKING_CAMERA) >= 0 else {}
    env = gymnasium.make(config.env_id, render_mode="rgb_array", width=size[0], height=size[1], **camera)
    try:
        films = [_episode_frames(env, learner.policy, params, task, config.horizon, every, seed)
                 for params in (before, adapted)]
        dt = env.unwrapped.dt
    finally:
        env.close()
    font = ImageFont.load_default(size=14)
    described = ", ".join(f"{name} {value:.2f}" for name, value in task.params.items())
    banner = f"{config.env_id.split(':')[-1]}, task: {described} (the policy's mean action)"
    labels = [f"before adaptation: return {films[0][1]:.1f}",
              f"after {steps} step{'s' * (steps != 1)}: return {films[1][1]:.1f}"]
    pictures = []
    for t in range(max(len(frames) for frames, _ in films)):
        panels = [_caption(Image.fromarray(frames[min(t, len(frames) - 1)]), label, font)
                  for (frames, _), label in zip(films, labels)]
        joined = Image.new("RGB", (sum(p.width for p in panels), panels[0].height))
        for i, panel in enumerate(panels):
            joined.paste(panel, (i * panel.width, 0))
        pictures.append(_caption(joined, banner, font))
    path = Path(path)
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=round(1000 * dt * every), loop=0,
                     optimize=True)
    return path
