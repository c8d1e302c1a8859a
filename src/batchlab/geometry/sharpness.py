"""Keskar et al.'s sharpness of a minimum (ICLR 2017, "On Large-Batch Training for Deep
Learning: Generalization Gap and Sharp Minima", Metric 2.1).

For a point x ∈ Rⁿ (the flat parameters), a loss f, a size ε > 0 and a matrix A ∈ R^{n×p}:

    C_ε = { z ∈ R^p : −ε(|(A⁺x)_i| + 1) ≤ z_i ≤ ε(|(A⁺x)_i| + 1) },
    φ_{x,f}(ε, A) = 100 · (max_{y ∈ C_ε} f(x + A y) − f(x)) / (1 + f(x)),

A⁺ the Moore–Penrose pseudo-inverse. A = I gives the full-space measure (their Table 3), a
random n×p matrix the subspace measure (Table 4, p = 100). The paper does not say how A is
drawn. Here its entries are independent N(0, 1/n), so every column has unit length in
expectation, like the columns of A = I: one box coordinate then moves the weights by
ε(|(A⁺x)_j| + 1) along a (nearly) unit direction, exactly as a coordinate of the full-space box
does, and the subspace measure sees p such directions instead of n, which is why the paper's
Table 4 values are far below its Table 3 values. (Only the "+1" part of the box depends on this
scale: A → cA turns the step along column j into ε(|(A⁺x)_j| + c)·(unit column). With N(0, 1)
entries, c = √n, a 100-dimensional box already moves the weights farther than the full-space
box does.) A is drawn in float32 on the CPU from ``torch.Generator().manual_seed(seed)``, then
cast to the parameters' dtype. A⁺x is
computed once, in float64: by ``torch.linalg.pinv`` when n·p ≤ :data:`PINV_LIMIT`, else by the
p×p normal equations (AᵀA) z = Aᵀx accumulated over row blocks (A has full column rank with
probability 1, and AᵀA of a tall Gaussian matrix is well conditioned: close to I here).

The maximum is found inexactly, as in the paper ("we solve it inexactly, 10 iterations of
L-BFGS-B"): :func:`scipy.optimize.minimize` with ``method="L-BFGS-B"``, the box as bounds,
``options={"maxiter": iterations}``, on −f(x + Ay) with its gradient −Aᵀ∇f from autograd,
starting at y = 0. The largest f seen at any evaluated point is taken as the maximum (every
L-BFGS-B iterate is inside the box). Being a local method started at y = 0, it leaves a
coordinate with exactly zero gradient where it is.

f is the mean cross-entropy over the given data (chunked, ``mode="eval"`` by default: running
batch-norm statistics, no dropout; see :mod:`batchlab.geometry.functional`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import Bounds, minimize
from torch import nn

from batchlab.errors import ConfigError
from batchlab.geometry.functional import DEFAULT_CHUNK_SIZE, FlatLoss

PINV_LIMIT = 10_000_000
_ROW_BLOCK = 65_536

Objective = Callable[[torch.Tensor], tuple[float, torch.Tensor]]


@dataclass(frozen=True)
class SharpnessResult:
    """φ_{x,f}(ε, A) and what went into it.

    ``p`` is the dimension of the box (n for the full space, where ``full_space`` is True);
    ``iterations`` is the L-BFGS-B budget, ``iterations_run`` what it used, ``evaluations`` the
    number of f-and-gradient evaluations.
    """

    value: float
    loss: float
    max_loss: float
    epsilon: float
    p: int
    full_space: bool
    iterations: int
    iterations_run: int
    evaluations: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def keskar_sharpness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float = 1e-3,
    subspace_dim: int | None = None,
    iterations: int = 10,
    seed: int = 0,
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
    mode: str = "eval",
) -> SharpnessResult:
    """Keskar's φ at the model's current weights, f the mean cross-entropy on ``(x, y)``.

    ``subspace_dim=None`` is the full space (A = I); an integer p uses a random n×p matrix drawn
    with ``seed``. The model's weights and mode are left unchanged.
    """
    loss = FlatLoss(model, x, y, chunk_size=chunk_size, mode=mode)
    return sharpness_of_objective(
        loss.value_and_grad,
        loss.point(),
        epsilon=epsilon,
        subspace_dim=subspace_dim,
        iterations=iterations,
        seed=seed,
    )


def sharpness_of_objective(
    objective: Objective,
    point: torch.Tensor,
    *,
    epsilon: float = 1e-3,
    subspace_dim: int | None = None,
    iterations: int = 10,
    seed: int = 0,
) -> SharpnessResult:
    """Keskar's φ for any ``objective(w) -> (f(w), ∇f(w))`` at the flat ``point`` x."""
    point = point.detach().reshape(-1)
    n = point.numel()
    check_sharpness_options(n, epsilon, subspace_dim, iterations)
    if subspace_dim is None:
        matrix = None
        coordinates = point.cpu().to(torch.float64)  # A⁺x = x
    else:
        matrix = random_subspace(n, subspace_dim, seed=seed, dtype=point.dtype, device=point.device)
        coordinates = pseudo_inverse_apply(matrix, point)
    radius = (epsilon * (coordinates.abs() + 1)).cpu().numpy()
    bounds = Bounds(-radius, radius)

    base_loss, _ = objective(point)
    best = {"loss": base_loss, "evaluations": 0}

    def negative_objective(z: np.ndarray) -> tuple[float, np.ndarray]:
        z_tensor = torch.from_numpy(np.asarray(z, dtype=np.float64)).to(device=point.device, dtype=point.dtype)
        shifted = point + (z_tensor if matrix is None else matrix @ z_tensor)
        value, gradient = objective(shifted)
        best["evaluations"] += 1
        if value > best["loss"]:
            best["loss"] = value
        reduced = gradient if matrix is None else matrix.T @ gradient  # chain rule: ∇_z f = Aᵀ∇f
        return -value, -reduced.detach().to("cpu", torch.float64).numpy()

    result = minimize(
        negative_objective,
        np.zeros(len(radius)),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": iterations},
    )
    max_loss = float(best["loss"])
    return SharpnessResult(
        value=100.0 * (max_loss - base_loss) / (1.0 + base_loss),
        loss=float(base_loss),
        max_loss=max_loss,
        epsilon=float(epsilon),
        p=len(radius),
        full_space=matrix is None,
        iterations=iterations,
        iterations_run=int(result.nit),
        evaluations=int(best["evaluations"]),
        seed=seed,
    )


def random_subspace(
    n: int, p: int, *, seed: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The random n×p matrix A: N(0, 1/n) entries drawn in float32 on the CPU with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.randn(n, p, generator=generator, dtype=torch.float32).div_(math.sqrt(n))
    return matrix.to(device=device, dtype=dtype)


def pseudo_inverse_apply(matrix: torch.Tensor, point: torch.Tensor, *, pinv_limit: int = PINV_LIMIT) -> torch.Tensor:
    """A⁺x in float64 on the CPU (p entries), by ``torch.linalg.pinv`` or the normal equations
    (module docstring)."""
    n, p = matrix.shape
    # On the CPU: once per measurement, and float64 is not available on every accelerator.
    x64 = point.detach().reshape(-1).cpu().to(torch.float64)
    if n * p <= pinv_limit:
        return torch.linalg.pinv(matrix.cpu().to(torch.float64)) @ x64
    gram = torch.zeros(p, p, dtype=torch.float64)
    rhs = torch.zeros(p, dtype=torch.float64)
    for start in range(0, n, _ROW_BLOCK):
        block = matrix[start : start + _ROW_BLOCK].cpu().to(torch.float64)
        gram += block.T @ block
        rhs += block.T @ x64[start : start + _ROW_BLOCK]
    return torch.linalg.solve(gram, rhs)


def check_sharpness_options(n: int, epsilon: float, subspace_dim: int | None, iterations: int) -> None:
    """ConfigError unless ε > 0, 1 ≤ p ≤ n (or None for the full space) and iterations ≥ 1."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not math.isfinite(epsilon) or epsilon <= 0:
        raise ConfigError(f"epsilon {epsilon!r} is invalid; allowed: a number > 0 (Keskar et al. use 1e-3 and 5e-4)")
    if subspace_dim is not None and (
        isinstance(subspace_dim, bool) or not isinstance(subspace_dim, int) or not 1 <= subspace_dim <= n
    ):
        raise ConfigError(
            f"subspace dimension {subspace_dim!r} is invalid; allowed: an integer 1 … {n} (the number of parameters)"
        )
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ConfigError(f"iterations {iterations!r} is invalid; allowed: an integer ≥ 1 (L-BFGS-B iterations)")
