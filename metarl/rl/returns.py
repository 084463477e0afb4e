"""Returns, the linear feature baseline and generalised advantage estimates of a batch of episodes.

Tensors are laid out ``[..., time, lanes]`` (time on the second-to-last axis), with a ``mask`` of the
same shape that is 1 for the steps of an episode and 0 where a lane has none; leading axes (tasks) are
batched, so one call handles a whole meta-batch. A lane may hold several episodes if a masked step
separates each from the next (:class:`metarl.rl.sampler.Trajectories` has the step on which the
environment restarts the lane), so nothing is carried from one into the other; the baseline's time
feature then needs ``timesteps``, each step's index within its episode.
"""

from __future__ import annotations

import torch
from torch import Tensor


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """``R_t = sum_k gamma^k r_{t+k}`` within each episode (0 where the mask is)."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0, :])
    for t in reversed(range(rewards.shape[-2])):
        running = (rewards[..., t, :] + gamma * running) * mask[..., t, :]
        returns[..., t, :] = running
    return returns


def baseline_features(observations: Tensor, mask: Tensor, timesteps: Tensor | None = None) -> Tensor:
    """rllab's ``LinearFeatureBaseline`` features: clipped obs, obs^2, t/100 and its powers, 1, with t the
    step's index in its episode."""
    obs = observations.clamp(-10, 10)
    if timesteps is None:   # one episode per lane, from time 0
        horizon = observations.shape[-3]
        timesteps = torch.arange(horizon, device=obs.device).view(horizon, 1).expand(obs.shape[:-1])
    time = timesteps.to(obs.dtype).unsqueeze(-1) / 100.0
    features = torch.cat([obs, obs.pow(2), time, time.pow(2), time.pow(3), torch.ones_like(time)], dim=-1)
    return features * mask.unsqueeze(-1)


def linear_baseline(observations: Tensor, returns: Tensor, mask: Tensor, reg: float = 1e-5,
                    timesteps: Tensor | None = None) -> Tensor:
    """Values of a ridge regression of ``returns`` on :func:`baseline_features`, fitted per leading index.

    Each task's fit is on the episodes it then predicts (as pytorch-maml-rl). rllab's sampler, which MAML's
    code used, predicted with the fit of its previous call and then refitted; in cbfinn/maml_rl's per-task
    loop that is the previous task's episodes. As in rllab (Duan et al. 2016), the ridge coefficient grows
    tenfold (up to five times) while the solution is not finite. The normal
    equations are solved by Cholesky in float64: ``torch.linalg.lstsq`` gave different answers for
    the same input on the CPU, which broke run-to-run reproducibility.
    """
    features = baseline_features(observations, mask, timesteps)
    flat = features.flatten(-3, -2).double()                 # [..., horizon * episodes, features]
    gram = flat.transpose(-1, -2) @ flat
    target = flat.transpose(-1, -2) @ returns.flatten(-2).double().unsqueeze(-1)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    for _ in range(5):
        factor, info = torch.linalg.cholesky_ex(gram + reg * eye)
        weights = torch.cholesky_solve(target, factor)
        if (info == 0).all() and torch.isfinite(weights).all():
            break
        reg *= 10
    else:
        raise FloatingPointError("the linear baseline's regression has no finite solution")
    return (features @ weights.to(features.dtype).unsqueeze(-3)).squeeze(-1) * mask


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalised advantage estimates (Schulman et al. 2016); ``lam=1`` gives returns minus values."""
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0, :])
    next_value = torch.zeros_like(running)
    for t in reversed(range(rewards.shape[-2])):
        delta = rewards[..., t, :] + gamma * next_value - values[..., t, :]
        running = (delta + gamma * lam * running) * mask[..., t, :]
        advantages[..., t, :] = running
        next_value = values[..., t, :] * mask[..., t, :]
    return advantages


def normalize(values: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Zero mean, unit variance over the masked steps of each leading index (rllab's ``center_adv``)."""
    count = mask.sum(dim=(-2, -1), keepdim=True)
    mean = (values * mask).sum(dim=(-2, -1), keepdim=True) / count
    var = ((values - mean).pow(2) * mask).sum(dim=(-2, -1), keepdim=True) / count
    return (values - mean) / (var.sqrt() + eps) * mask
