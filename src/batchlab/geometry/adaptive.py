"""Adaptive sharpness: a sharpness that does not change when a ReLU network's layers are rescaled.

Why. A ReLU network computes the same function after one layer's weights and biases are
multiplied by c > 0 and the next layer's weights divided by c, yet its Hessian eigenvalues and
Keskar's φ (whose box ε(|x_i| + 1) is not proportional to the weights) change with c: Dinh et al.
(ICML 2017, "Sharp Minima Can Generalize For Deep Nets") use this to make any minimum as sharp
as one likes without changing what it predicts. Kwon et al. (ICML 2021, "ASAM: Adaptive
Sharpness-Aware Minimization for Scale-Invariant Learning of Deep Neural Networks") measure the
sharpness in coordinates normalized by an operator T_w that rescales with the weights.

The variant implemented. Kwon et al.'s adaptive sharpness with the element-wise normalization
T_w = diag(|w_1| + η₀, …, |w_n| + η₀) (their element-wise T_w, plus the small η they add so that
weights at 0 can move) and the ∞-norm ball (p = ∞; the worst-case adaptive ℓ∞ sharpness that Andriushchenko et
al., ICML 2023, "A Modern Look at the Relationship between Sharpness and Generalization",
measure):

    S_ρ(x) = max_{|u_i| ≤ ρ} f(x + T_x u) − f(x),   (T_x u)_i = (|x_i| + η₀)·u_i,

i.e. every parameter may move by at most ρ(|x_i| + η₀): Keskar's box with the "+1" replaced by
η₀ and ε by ρ. Every trainable parameter is normalized, biases included (ASAM's code leaves
biases unnormalized; here a layer's bias is rescaled with its weights, so it must be normalized
for the invariance). The default η₀ = 0 makes S_ρ exactly invariant under positive rescalings
of parameters that leave f unchanged: if f(Dw) = f(w) for a positive diagonal D, then
f(Dx + T_{Dx} u) = f(D(x + T_x u)) = f(x + T_x u) for every u, so the maximization problem in u is
the same function. η₀ > 0 keeps parameters at zero from being frozen, at the cost of exact
invariance.

The maximum is searched as Keskar's is (:func:`batchlab.geometry.sharpness.maximize_over_box`):
L-BFGS-B from u = 0 with SciPy's tolerances at 0 and a budget of ``iterations``, the largest f
evaluated taken as the maximum, so the value is a lower bound of S_ρ. The search runs in the
normalized coordinates u (gradient T_x ∇f), so its steps, not only its objective, are the same
after a rescaling (exactly for η₀ = 0 and powers of two; to rounding otherwise).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from batchlab.errors import ConfigError
from batchlab.geometry.functional import DEFAULT_CHUNK_SIZE, FlatLoss, LossFunction
from batchlab.geometry.sharpness import Objective, check_sharpness_options, maximize_over_box

DEFAULT_RHO = 0.01
DEFAULT_ETA = 0.0
SOURCE = "Kwon et al. 2021 element-wise T_w = |w| + η₀, ∞-norm ball, L-BFGS-B from u = 0"


@dataclass(frozen=True)
class AdaptiveSharpnessResult:
    """S_ρ = ``max_loss`` − ``loss`` (``value``) with ρ, η₀ and the search's cost."""

    value: float
    loss: float
    max_loss: float
    rho: float
    eta: float
    iterations: int
    iterations_run: int
    evaluations: int
    definition: str = SOURCE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def adaptive_sharpness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    rho: float = DEFAULT_RHO,
    eta: float = DEFAULT_ETA,
    iterations: int = 10,
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
    mode: str = "eval",
    loss: LossFunction | None = None,
) -> AdaptiveSharpnessResult:
    """S_ρ at the model's current weights, f the mean loss on ``(x, y)`` (``loss``, default cross-entropy); the model's
    weights and mode are left unchanged."""
    flat = FlatLoss(model, x, y, chunk_size=chunk_size, mode=mode, loss=loss)
    return adaptive_sharpness_of_objective(flat.value_and_grad, flat.point(), rho=rho, eta=eta, iterations=iterations)


def adaptive_sharpness_of_objective(
    objective: Objective,
    point: torch.Tensor,
    *,
    rho: float = DEFAULT_RHO,
    eta: float = DEFAULT_ETA,
    iterations: int = 10,
) -> AdaptiveSharpnessResult:
    """S_ρ for any ``objective(w) -> (f(w), ∇f(w))`` at the flat ``point`` x."""
    point = point.detach().reshape(-1)
    check_adaptive_options(rho, eta, iterations)
    scale = point.abs() + eta  # the diagonal of T_x, in the parameters' dtype and device
    radius = np.full(point.numel(), float(rho))

    def in_normalized_coordinates(u: np.ndarray) -> tuple[float, np.ndarray]:
        u_tensor = torch.from_numpy(np.asarray(u, dtype=np.float64)).to(device=point.device, dtype=point.dtype)
        value, gradient = objective(point + scale * u_tensor)
        return value, (scale * gradient).detach().to("cpu", torch.float64).numpy()

    base_loss, _ = objective(point)
    search = maximize_over_box(in_normalized_coordinates, radius, np.zeros(point.numel()), iterations)
    max_loss = max(search.max_loss, base_loss)
    return AdaptiveSharpnessResult(
        value=max_loss - base_loss,
        loss=float(base_loss),
        max_loss=max_loss,
        rho=float(rho),
        eta=float(eta),
        iterations=iterations,
        iterations_run=search.iterations_run,
        evaluations=search.evaluations,
    )


def check_adaptive_options(rho: float, eta: float, iterations: int) -> None:
    """ConfigError unless ρ > 0, η₀ ≥ 0 and iterations ≥ 1."""
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not (math.isfinite(rho) and rho > 0):
        raise ConfigError(f"ρ {rho!r} is invalid; allowed: a number > 0 (the largest move of a parameter, relative to it)")
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not (math.isfinite(eta) and eta >= 0):
        raise ConfigError(f"η₀ {eta!r} is invalid; allowed: a number ≥ 0 (0 keeps the measure exactly scale-invariant)")
    check_sharpness_options(1, 1.0, None, iterations)  # the iteration budget, checked as Keskar's
