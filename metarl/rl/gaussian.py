"""Diagonal Gaussian log-densities and KL divergences, written with plain tensor operations.

``torch.distributions`` objects do not pass through ``torch.func.vmap``; these few formulas do, so
the same policy-gradient code runs batched over tasks and in a per-task loop.
"""

from __future__ import annotations

import math

from torch import Tensor

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def log_prob(mean: Tensor, log_std: Tensor, action: Tensor) -> Tensor:
    """log N(action; mean, exp(log_std)^2), summed over the last (action) dimension."""
    z = (action - mean) * (-log_std).exp()
    return (-0.5 * z.pow(2) - log_std - _LOG_SQRT_2PI).sum(-1)


def kl_divergence(mean_p: Tensor, log_std_p: Tensor, mean_q: Tensor, log_std_q: Tensor) -> Tensor:
    """KL(p || q) of two diagonal Gaussians, summed over the last dimension."""
    var_ratio = (2 * (log_std_p - log_std_q)).exp()
    mean_term = (mean_p - mean_q).pow(2) * (-2 * log_std_q).exp()
    return 0.5 * (var_ratio + mean_term - 1).sum(-1) - (log_std_p - log_std_q).sum(-1)
