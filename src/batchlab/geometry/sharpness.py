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

The maximum is found as in the paper ("we solve it inexactly, 10 iterations of L-BFGS-B", §2.2.2):
:func:`scipy.optimize.minimize` with ``method="L-BFGS-B"``, the box as bounds, on −f(x + Ay)
with its gradient −Aᵀ∇f from autograd, from y = 0 (the point itself). The largest f seen at
any evaluated point is taken as the maximum (every L-BFGS-B iterate is inside the box), so φ
never decreases with the budget. ``value`` is this φ, the one to set beside the paper's Tables 3
and 4.

Stopping. SciPy's default tolerances (``ftol`` ≈ 2.2e-9 relative, ``gtol`` = 1e-5 on the
projected gradient) end the search at once at a trained minimum, where the gradient is tiny: on
f(w) = ½‖w‖² + 1.1e-5·Σw + 0.1 at w = 0 (5 dimensions, ε = 1e-2) they gave φ = 8.25e-8 after
one iteration instead of the box maximum 0.0228. Here ``ftol = gtol = 0``, so a run ends only
on its iteration budget (the paper's 10), on a projected gradient exactly zero (a vertex of the
box at which every coordinate's ascent direction points out of the box: a local maximum; or an
exact critical point, where the search from y = 0 cannot move and φ = 0), or when the line search
can make no progress in floating point.

The corner start (``corner_start=True``, not the paper's). Near a minimum f is close to convex,
so its maximum over the box is at a vertex, and from y = 0 L-BFGS-B needs many iterations to get
there: the BFGS update is skipped on negative curvature (−f is concave), and each line search
stops at the first bound it meets, so about one coordinate reaches its bound per iteration. The
option adds a second run of the same budget from the vertex along the sign of the ascent
direction, y_j = sign((Aᵀ∇f(x))_j)·ε(|(A⁺x)_j| + 1) (sign(0) taken as +1: the maximizer over the
box of the first-order model), and reports φ of the larger maximum of both runs as
``corner_value``. That start moves every weight at once and gave the maximum in most
measurements (a 784-128-10 network at 100 % training accuracy, full space, ε = 1e-3: 0.070 from
the vertex against 0.0126 from y = 0 after 10 iterations), so ``corner_value`` is a different
measure from the paper's: it is reported in its own field and never set beside Tables 3 and 4.

What it does not do. Both runs are local: maximizing a convex function over a box is NP-hard
in general (max-cut is a special case), and on quadratics whose curvature is spread over many
rotated directions either run can stop at a vertex well below the best one. In the full space
of a large network the budget is far below the number of coordinates, so φ is a lower bound
that keeps growing with ``iterations``; the subspace measure, with p = 100 coordinates,
converges within the paper's 10 iterations.

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
from batchlab.geometry.functional import DEFAULT_CHUNK_SIZE, FlatLoss, LossFunction

PINV_LIMIT = 10_000_000
_ROW_BLOCK = 65_536

# L-BFGS-B evaluates f at most maxls = 20 times per iteration (SciPy's default line search limit).
MAX_EVALUATIONS_PER_ITERATION = 25
ORIGIN = "origin"
GRADIENT_VERTEX = "gradient vertex"
# Stored with every record, so that numbers from an earlier search rule are never reused as these:
# the paper's search, from y = 0 only (the corner start's numbers have fields of their own).
SEARCH_RULE = "lbfgsb-tol0-origin"

Objective = Callable[[torch.Tensor], tuple[float, torch.Tensor]]
# f and its gradient as functions of the box coordinates, in float64 numpy for SciPy.
BoxObjective = Callable[[np.ndarray], tuple[float, np.ndarray]]


@dataclass(frozen=True)
class BoxSearch:
    """One L-BFGS-B run of :func:`maximize_over_box`: the largest f it evaluated (−inf when it
    evaluated none), its iterations and its evaluations of f."""

    max_loss: float
    iterations_run: int
    evaluations: int


def maximize_over_box(objective: BoxObjective, radius: np.ndarray, start: np.ndarray, iterations: int) -> BoxSearch:
    """Maximize ``objective`` over the box |z_i| ≤ ``radius``_i by L-BFGS-B from ``start`` with a
    budget of ``iterations`` (module docstring: Stopping); the maximum is the largest f evaluated."""
    best = {"loss": -math.inf, "evaluations": 0}

    def negative(z: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = objective(z)
        best["evaluations"] += 1
        best["loss"] = max(best["loss"], value)
        return -value, -gradient

    result = minimize(negative, start, jac=True, method="L-BFGS-B", bounds=Bounds(-radius, radius),
                      options=lbfgsb_options(iterations))
    return BoxSearch(max_loss=float(best["loss"]), iterations_run=int(result.nit), evaluations=int(best["evaluations"]))


@dataclass(frozen=True)
class SharpnessResult:
    """φ_{x,f}(ε, A) and what went into it.

    ``value`` and ``max_loss`` come from the paper's search from y = 0 alone. ``p`` is the
    dimension of the box (n for the full space, where ``full_space`` is True); ``iterations`` is
    the L-BFGS-B budget, ``iterations_run`` and ``evaluations`` what the search from y = 0 used.
    With ``corner_start`` (module docstring), ``corner_value`` and ``corner_max_loss`` are φ and
    max f over both runs, ``corner_iterations_run`` and ``corner_evaluations`` the second run's
    cost, and ``best_start`` the run that found the larger maximum ("origin" or "gradient
    vertex"; "origin" also when neither rose above f(x), and always without the option); without
    it they are None. ``search_rule`` names the rule of ``value``. ``gradient_norm`` is ‖∇f(x)‖
    and ``first_order_gain`` the maximum of the first-order model over the box,
    Σ_j |(Aᵀ∇f(x))_j|·ε(|(A⁺x)_j| + 1), reached at the gradient vertex: when it is a large part
    of max f − f(x), φ measures the slope at x rather than the curvature of a minimum.
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
    best_start: str
    gradient_norm: float
    first_order_gain: float
    corner_start: bool = False
    corner_value: float | None = None
    corner_max_loss: float | None = None
    corner_iterations_run: int | None = None
    corner_evaluations: int | None = None
    search_rule: str = SEARCH_RULE

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
    loss: LossFunction | None = None,
    corner_start: bool = False,
) -> SharpnessResult:
    """Keskar's φ at the model's current weights, f the mean loss on ``(x, y)`` (``loss``, default cross-entropy).

    ``subspace_dim=None`` is the full space (A = I); an integer p uses a random n×p matrix drawn
    with ``seed``. ``corner_start`` adds the second run of the module docstring (its own fields).
    The model's weights and mode are left unchanged.
    """
    flat = FlatLoss(model, x, y, chunk_size=chunk_size, mode=mode, loss=loss)
    return sharpness_of_objective(
        flat.value_and_grad,
        flat.point(),
        epsilon=epsilon,
        subspace_dim=subspace_dim,
        iterations=iterations,
        seed=seed,
        corner_start=corner_start,
    )


def sharpness_of_objective(
    objective: Objective,
    point: torch.Tensor,
    *,
    epsilon: float = 1e-3,
    subspace_dim: int | None = None,
    iterations: int = 10,
    seed: int = 0,
    corner_start: bool = False,
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

    def in_box(z: np.ndarray) -> tuple[float, np.ndarray]:
        z_tensor = torch.from_numpy(np.asarray(z, dtype=np.float64)).to(device=point.device, dtype=point.dtype)
        value, gradient = objective(point + (z_tensor if matrix is None else matrix @ z_tensor))
        return value, _reduced_gradient(gradient, matrix)

    base_loss, base_gradient = objective(point)
    ascent = _reduced_gradient(base_gradient, matrix)
    paper = maximize_over_box(in_box, radius, np.zeros(len(radius)), iterations)
    max_loss = max(paper.max_loss, base_loss)
    corner: dict[str, Any] = {}
    best_start = ORIGIN
    if corner_start:
        vertex = maximize_over_box(in_box, radius, np.where(ascent >= 0, radius, -radius), iterations)
        corner_max = max(max_loss, vertex.max_loss)
        best_start = GRADIENT_VERTEX if vertex.max_loss > max_loss else ORIGIN
        corner = dict(corner_value=_phi(corner_max, base_loss), corner_max_loss=corner_max,
                      corner_iterations_run=vertex.iterations_run, corner_evaluations=vertex.evaluations)
    return SharpnessResult(
        value=_phi(max_loss, base_loss),
        loss=float(base_loss),
        max_loss=max_loss,
        epsilon=float(epsilon),
        p=len(radius),
        full_space=matrix is None,
        iterations=iterations,
        iterations_run=paper.iterations_run,
        evaluations=paper.evaluations,
        seed=seed,
        best_start=best_start,
        gradient_norm=float(base_gradient.norm()),
        first_order_gain=float(np.abs(ascent) @ radius),
        corner_start=corner_start,
        **corner,
    )


def _phi(max_loss: float, loss: float) -> float:
    """Keskar's φ = 100·(max f − f(x)) / (1 + f(x))."""
    return 100.0 * (max_loss - loss) / (1.0 + loss)


def lbfgsb_options(iterations: int) -> dict[str, Any]:
    """SciPy L-BFGS-B options that spend the iteration budget (module docstring: Stopping)."""
    return {"maxiter": iterations, "maxfun": MAX_EVALUATIONS_PER_ITERATION * iterations, "ftol": 0.0, "gtol": 0.0}


def _reduced_gradient(gradient: torch.Tensor, matrix: torch.Tensor | None) -> np.ndarray:
    """∇_y f(x + Ay) = Aᵀ∇f (chain rule), as float64 numpy for SciPy."""
    reduced = gradient if matrix is None else matrix.T @ gradient
    return reduced.detach().to("cpu", torch.float64).numpy()


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
