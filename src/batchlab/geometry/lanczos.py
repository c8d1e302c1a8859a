"""The largest eigenpairs of a symmetric operator by Lanczos with full reorthogonalization, stopped
by a bound on the error.

Algorithm (Lanczos 1950; Golub & Van Loan, "Matrix Computations", 4th ed., ch. 10):
from a unit start q₁, step j computes w = A q_j, α_j = q_jᵀw, w ← w − α_j q_j − β_{j−1} q_{j−1},
then removes from w its components along every earlier q (classical Gram–Schmidt done twice,
which keeps the basis orthogonal to working precision: Giraud, Langou & Rozložník 2005),
β_j = ‖w‖ and q_{j+1} = w/β_j. With Q_m = [q₁ … q_m]
and T_m the m×m tridiagonal matrix of the α's and β's,

    A Q_m = Q_m T_m + β_m q_{m+1} e_mᵀ.

An eigenpair (θ, s) of T_m gives the Ritz pair (θ, y = Q_m s), and the relation above gives its
residual without another product: ‖A y − θ y‖ = β_m |s_m| (s_m the last entry of s).

Stopping rule. The search stops after the first step at which each of the k largest Ritz pairs
has ‖A y − θ y‖ ≤ tol·|θ|. For a symmetric A some eigenvalue λ of A lies within the residual of
θ (|λ − θ| ≤ ‖A y − θ y‖ for a unit y; Parlett, "The Symmetric Eigenvalue Problem", ch. 4), so the
relative error of each reported eigenvalue is at most ``tol`` (and, once θ is separated from the
rest of the spectrum by a gap δ, at most ‖r‖²/δ: usually far smaller). This bounds the error;
a rule on the change of θ between steps does not: θ can change slowly while far from λ. The
Ritz values of the top end rise monotonically towards A's largest eigenvalues, so the pairs
found are the largest ones unless the start vector is (numerically) orthogonal to an
eigenvector; a seeded Gaussian start makes that an event of probability zero.

The search also stops when β_m is below ``BREAKDOWN``·‖T_m‖ (the Krylov space is invariant: the
Ritz values are eigenvalues) or when m reaches the dimension.

Cost and memory. One product per step; the reorthogonalization costs O(m·n) per step, and the
basis Q is kept: ``max_steps`` × n entries of the operator's dtype at most (100 steps of the
670,000-parameter lecture MLP in float32: 270 MB). The tridiagonal eigenproblem is solved in
float64 each step (m ≤ ``max_steps``, negligible). The residual β_m|s_m| is that of the Lanczos
relation as computed; products computed in float32 carry their own rounding (relative ~1e-7),
which no stopping rule can go below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

from batchlab.errors import UserError

# β_m ≤ BREAKDOWN·‖T_m‖: the Krylov space is invariant (to rounding), the Ritz pairs are exact.
BREAKDOWN = 1e-12
_FIRST_CAPACITY = 32


class ConvergenceError(UserError):
    """Lanczos stopped before the asked accuracy was reached."""


@dataclass(frozen=True)
class LanczosResult:
    """The k largest Ritz values (descending), their unit Ritz vectors (columns of an n×k tensor),
    their residual norms ‖A y − θ y‖ and the number of products (= Lanczos steps)."""

    values: np.ndarray
    vectors: torch.Tensor
    residuals: np.ndarray
    steps: int


def lanczos_largest(
    product: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    k: int,
    *,
    tol: float,
    max_steps: int,
) -> LanczosResult:
    """The ``k`` largest eigenpairs of the symmetric operator ``product`` (v ↦ A v) from the vector
    ``start`` (its dtype and device are the basis's), stopped by the rule of the module docstring.

    Raises :class:`ConvergenceError` when ``max_steps`` products do not reach ``tol``.
    """
    n = start.numel()
    max_steps = min(max_steps, n)
    basis = torch.empty((min(_FIRST_CAPACITY, max_steps), n), dtype=start.dtype, device=start.device)
    q = start.reshape(-1) / start.norm()
    alphas: list[float] = []
    betas: list[float] = []
    for step in range(max_steps):
        if step == len(basis):
            grown = torch.empty((min(2 * len(basis), max_steps), n), dtype=basis.dtype, device=basis.device)
            grown[:step] = basis
            basis = grown
        basis[step] = q
        w = product(q).reshape(-1).to(dtype=basis.dtype)
        alpha = float(torch.dot(q, w))
        w = w - alpha * q
        if step > 0:
            w = w - betas[-1] * basis[step - 1]
        previous = basis[: step + 1]
        for _ in range(2):  # full reorthogonalization, twice
            w = w - previous.T @ (previous @ w)
        beta = float(w.norm())
        alphas.append(alpha)
        betas.append(beta)
        values, vectors = eigh_tridiagonal(np.array(alphas), np.array(betas[:-1]))
        order = np.argsort(values)[::-1][:k]
        values, vectors = values[order], vectors[:, order]
        residuals = beta * np.abs(vectors[-1, :])
        scale = float(np.max(np.abs(values))) if len(values) else 0.0
        invariant = beta <= BREAKDOWN * max(scale, np.finfo(float).tiny) or step + 1 == n
        if len(values) == k and (invariant or bool(np.all(residuals <= tol * np.abs(values)))):
            ritz = basis[: step + 1].T @ torch.as_tensor(vectors, dtype=basis.dtype, device=basis.device)
            return LanczosResult(values=values, vectors=ritz, residuals=residuals, steps=step + 1)
        if invariant:
            break  # fewer than k eigenvalues in a Krylov space that cannot grow
        q = w / beta
    found = int(np.sum(residuals <= tol * np.abs(values)))
    raise ConvergenceError(
        f"Lanczos found {found} of {k} eigenvalue(s) to tolerance {tol} (residual ≤ tol·|λ|) in {max_steps} "
        "Hessian-vector products; allowed: a larger max_iter or a looser tol"
    )
