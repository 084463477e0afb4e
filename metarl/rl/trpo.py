"""The pieces of a trust-region policy step (Schulman et al. 2015) over a flat parameter vector.

The natural-gradient direction solves ``F s = -g`` by conjugate gradient using only Fisher-vector
products; the step is scaled to the KL bound and shortened by a backtracking line search until the
surrogate loss improves and the KL stays inside the bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


def conjugate_gradient(
    matrix_vector: Callable[[Tensor], Tensor], b: Tensor, iterations: int = 10, residual_tol: float = 1e-10
) -> Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given only ``A @ v``."""
    x = torch.zeros_like(b)
    residual = b.clone()
    direction = b.clone()
    residual_sq = residual @ residual
    for _ in range(iterations):
        a_direction = matrix_vector(direction)
        alpha = residual_sq / (direction @ a_direction)
        x += alpha * direction
        residual -= alpha * a_direction
        new_residual_sq = residual @ residual
        if new_residual_sq < residual_tol:
            break
        direction = residual + (new_residual_sq / residual_sq) * direction
        residual_sq = new_residual_sq
    return x


@dataclass
class LineSearchResult:
    accepted: bool
    steps: int
    """Backtracking steps tried (1 = the full step was accepted)."""
    fraction: float
    """Fraction of the full step taken (0 when nothing was accepted)."""
    loss: float
    kl: float


def backtracking_line_search(
    evaluate: Callable[[Tensor], tuple[float, float]],
    old_params: Tensor,
    full_step: Tensor,
    old_loss: float,
    max_kl: float,
    max_steps: int = 15,
    ratio: float = 0.8,
) -> tuple[Tensor, LineSearchResult]:
    """The first ``old + ratio^k * full_step`` (k = 0, 1, ...) whose loss is below ``old_loss`` with KL <= ``max_kl``.

    ``evaluate(params)`` returns ``(loss, kl)``. If no step qualifies the old parameters are returned,
    as in rllab and pytorch-maml-rl.
    """
    for k in range(max_steps):
        fraction = ratio**k
        candidate = old_params + fraction * full_step
        loss, kl = evaluate(candidate)
        if loss < old_loss and kl <= max_kl:
            return candidate, LineSearchResult(True, k + 1, fraction, loss, kl)
    loss, kl = evaluate(old_params)
    return old_params, LineSearchResult(False, max_steps, 0.0, loss, kl)
