"""Hessian-vector products of the training loss, its extreme eigenvalues and its trace.

Hessian-vector product. H v = ∇_θ (∇_θ L(θ) · v), computed by double backward
(reverse-over-reverse): one backward pass with ``create_graph=True`` gives ∇L as a differentiable
function of θ, a second backward of that gradient with ``grad_outputs=v`` gives vᵀH = (Hv)ᵀ
(H is symmetric). Measured on a 2-core CPU for the lecture MLP 784-512-512-10 on 5,000
examples (float32, best of 3): double backward 0.33 s per product, forward-over-reverse
(``torch.func.jvp`` of ``torch.func.grad``) 0.42 s, ``torch.autograd.functional.hvp`` 0.52 s.
Every product at the same point needs the same first backward graph, so :class:`HessianOperator`
keeps it (``cache_graph``) and then pays only the second backward: 0.19 s per product.

Over the full data the products of the chunks are summed with weights |chunk|/N, which equals
the full-batch product exactly (see :mod:`batchlab.geometry.functional`); a single batch is the
case ``chunk_size=None``.

Eigenvalues. Models with more than :data:`DENSE_LIMIT` parameters use Lanczos with full
reorthogonalization (:mod:`batchlab.geometry.lanczos`) on the product, stopped when every asked
Ritz pair has a residual ‖Hv − θv‖ ≤ ``tol``·|θ|: a bound on the error of each eigenvalue, not a
rule on its change between iterations; the residuals are reported with the eigenvalues.
``max_iter`` caps the Hessian-vector products of one run (the Lanczos basis keeps that many
vectors). The most negative eigenvalue is found as λ_min = λ_max − μ, where μ is the largest
eigenvalue of λ_max·I − H (all of its eigenvalues are ≥ 0): that makes the stopping rule relative
to the width of the spectrum, so a λ_min near zero is resolved to about tol·(λ_max − λ_min)
instead of chasing a tiny relative error. Smaller models build the dense Hessian from p products
with the unit vectors and use :func:`numpy.linalg.eigh` (exact, and cheaper there). Eigenvectors
are unit-norm, with the sign fixed so the largest-magnitude entry is positive.

Why Lanczos for one eigenvalue too. Power iteration (PyHessian's method, Yao et al.,
"PyHessian", 2020) stops when the relative change of λ between two products is below tol; its
error falls like (λ₂/λ₁)^(2i), so a slow change can stop it far from λ₁ (on the lecture MLP at
tol 1e-3, PyHessian 0.1 stopped 2.4e-3 and 3.5e-3 from λ₁ at N = 1,000 and 4,000 after 13 and 15
products; Lanczos stopped 8e-6 and 7e-6 from it after 8 and 9: ``benchmarks/hvp.py``). Lanczos
converges much faster for the same products (its error falls like a Chebyshev polynomial of the gap, Kaniel–Paige theory), checks
its residual after every product (ARPACK, by contrast, fills a first Krylov basis of ~20 vectors
before its first check), and its rule bounds the error. ``method="power"`` keeps power
iteration with PyHessian's rule (plus a residual guard, :func:`power_iteration`) for comparison;
``auto`` and ``lanczos`` use Lanczos.

Trace. Hutchinson's estimator tr(H) = E[vᵀHv] with Rademacher v (entries ±1 with probability ½),
averaged over ``n_samples`` draws; its standard error is the sample standard deviation / √n.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from batchlab.errors import ConfigError
from batchlab.geometry.functional import DEFAULT_CHUNK_SIZE, FlatLoss
from batchlab.geometry.lanczos import ConvergenceError, LanczosResult, lanczos_largest  # noqa: F401 (ConvergenceError re-exported)

DENSE_LIMIT = 64
# PyHessian's guard against dividing by a zero eigenvalue in its relative change.
POWER_DENOMINATOR_FLOOR = 1e-6
AUTO, POWER, LANCZOS = "auto", "power", "lanczos"
EIGEN_METHODS = (AUTO, POWER, LANCZOS)
# "auto" keeps the first backward graph when the tensors it saves for all chunks fit here.
GRAPH_CACHE_BYTES = 2 * 1024**3

CacheChoice = bool | Literal["auto"]


class HessianOperator:
    """v ↦ H v with H = ∇²L(θ₀), the Hessian of a :class:`FlatLoss` at one point θ₀.

    ``cache_graph``: True keeps the first backward graph of every chunk for the life of the
    operator (each product is then one backward pass); False rebuilds it for every product (memory
    of one chunk only); "auto" measures the bytes the first chunk's graph saves
    (``torch.autograd.graph.saved_tensors_hooks``) and caches when all chunks are estimated to fit
    in ``cache_bytes``. ``calls`` counts the products computed so far.
    """

    def __init__(
        self,
        loss: FlatLoss,
        point: torch.Tensor | None = None,
        *,
        cache_graph: CacheChoice = "auto",
        cache_bytes: int = GRAPH_CACHE_BYTES,
    ) -> None:
        if cache_graph not in (True, False, "auto"):
            raise ConfigError(f"cache_graph {cache_graph!r} is invalid; allowed: True, False, 'auto'")
        self.loss = loss
        self.point = (loss.point() if point is None else loss.check_vector(point, "point")).detach()
        self.dim = loss.dim
        self.calls = 0
        self._theta: torch.Tensor | None = None
        self._gradients: list[torch.Tensor] = []
        self._weights: list[float] = []
        self._value: float | None = None
        if cache_graph is not False:
            self._build_cache(limit=None if cache_graph is True else cache_bytes)

    @property
    def graph_cached(self) -> bool:
        return self._theta is not None

    def _build_cache(self, limit: int | None) -> None:
        theta = self.point.clone().requires_grad_(True)
        chunks = list(self.loss.chunks())
        gradients: list[torch.Tensor] = []
        value = 0.0
        saved = _SavedBytes()
        with self.loss.mode_context():
            for index, (xb, yb, weight) in enumerate(chunks):
                hooks = saved.hooks() if index == 0 else contextlib.nullcontext()
                with hooks:
                    loss = self.loss.chunk_loss(theta, xb, yb)
                    (g,) = torch.autograd.grad(loss, theta, create_graph=True)
                gradients.append(g)
                value += weight * float(loss.detach())
                if index == 0 and limit is not None and saved.total * len(chunks) > limit:
                    return  # too big: fall back to rebuilding the graph per product
        self._theta = theta
        self._gradients = gradients
        self._weights = [weight for _, _, weight in chunks]
        self._value = value

    def value_and_grad(self) -> tuple[float, torch.Tensor]:
        """L(θ₀) and ∇L(θ₀) (free when the graph is cached)."""
        if self._theta is None:
            return self.loss.value_and_grad(self.point)
        gradient = torch.zeros_like(self.point)
        for g, weight in zip(self._gradients, self._weights):
            gradient.add_(g.detach(), alpha=weight)
        assert self._value is not None
        return self._value, gradient

    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        """H v for a flat ``vector`` of length p (returned with θ's dtype and device)."""
        v = self.loss.check_vector(vector).detach()
        self.calls += 1
        if self._theta is not None:
            # One backward through every chunk's cached gradient graph; autograd sums the chunks.
            (hv,) = torch.autograd.grad(
                self._gradients,
                self._theta,
                grad_outputs=[v * weight for weight in self._weights],
                retain_graph=True,
            )
            return hv.detach()
        result = torch.zeros_like(self.point)
        with self.loss.mode_context():
            for xb, yb, weight in self.loss.chunks():
                theta = self.point.clone().requires_grad_(True)
                loss = self.loss.chunk_loss(theta, xb, yb)
                (g,) = torch.autograd.grad(loss, theta, create_graph=True)
                (hv,) = torch.autograd.grad(g, theta, grad_outputs=v)
                result.add_(hv.detach(), alpha=weight)
        return result

    def dense(self) -> torch.Tensor:
        """The p×p Hessian from p products with the unit vectors, symmetrized (small models only)."""
        columns = [self.matvec(unit) for unit in torch.eye(self.dim, dtype=self.point.dtype, device=self.point.device)]
        matrix = torch.stack(columns, dim=1)
        return (matrix + matrix.T) / 2


class _SavedBytes:
    """Counts the bytes of distinct storages autograd saves while its hooks are active."""

    def __init__(self) -> None:
        self.total = 0
        self._seen: set[int] = set()

    def hooks(self) -> torch.autograd.graph.saved_tensors_hooks:
        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in self._seen:
                self._seen.add(storage.data_ptr())
                self.total += storage.nbytes()
            return tensor

        return torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor)


@dataclass(frozen=True)
class EigenResult:
    """Eigenvalues (descending) and unit eigenvectors (columns of a p×k tensor) of the Hessian."""

    values: tuple[float, ...]
    vectors: torch.Tensor
    num_hvps: int
    # "lanczos", "power" (power iteration), "power+lanczos" (Lanczos after power iteration did not
    # settle) or "dense" (numpy eigh of the full Hessian)
    method: str
    # ‖Hv − λv‖ of each pair: Lanczos's residual bound (|λ − true eigenvalue| ≤ it), the computed
    # residual of power iteration's last product, 0 for the dense path
    residuals: tuple[float, ...] = ()


@dataclass(frozen=True)
class ExtremeEigenvalues:
    """λ_max and λ_min of the Hessian with their unit eigenvectors."""

    largest: float
    smallest: float
    largest_vector: torch.Tensor
    smallest_vector: torch.Tensor
    num_hvps: int
    method: str


@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson's estimate of tr(H): mean of vᵀHv over Rademacher v, with its standard error."""

    value: float
    stderr: float
    n_samples: int


def hvp(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    vector: torch.Tensor,
    *,
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
    mode: str = "eval",
) -> torch.Tensor:
    """H v, H the Hessian of the mean cross-entropy of ``model`` on ``(x, y)`` at its current weights.

    ``vector`` is flat, in ``named_parameters()`` order. ``chunk_size=None`` treats ``(x, y)`` as one
    batch; any chunk size gives the same product (in ``mode="eval"``).
    """
    operator = HessianOperator(FlatLoss(model, x, y, chunk_size=chunk_size, mode=mode), cache_graph=False)
    return operator.matvec(vector)


def top_eigenvalues(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    k: int = 1,
    *,
    tol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
    mode: str = "eval",
    cache_graph: CacheChoice = "auto",
    method: str = AUTO,
) -> EigenResult:
    """The ``k`` largest (algebraic) Hessian eigenvalues with eigenvectors, by Lanczos (``auto``,
    ``lanczos``; each stopped at residual ≤ tol·|λ|) or power iteration (``power``, k = 1).
    ``max_iter`` caps the Hessian-vector products."""
    loss = FlatLoss(model, x, y, chunk_size=chunk_size, mode=mode)
    _check_solver_options(loss.dim, k, tol, max_iter, method)  # before the graph is built
    operator = HessianOperator(loss, cache_graph=cache_graph)
    return top_eigenpairs(operator, k, tol=tol, max_iter=max_iter, seed=seed, method=method)


def extreme_eigenvalues(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    tol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
    mode: str = "eval",
    cache_graph: CacheChoice = "auto",
) -> ExtremeEigenvalues:
    """λ_max and λ_min (the most negative when there is one) of the Hessian, with eigenvectors."""
    operator = HessianOperator(FlatLoss(model, x, y, chunk_size=chunk_size, mode=mode), cache_graph=cache_graph)
    return extreme_eigenpairs(operator, tol=tol, max_iter=max_iter, seed=seed)


def hessian_trace(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    n_samples: int = 100,
    seed: int = 0,
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
    mode: str = "eval",
    cache_graph: CacheChoice = "auto",
) -> TraceEstimate:
    """Hutchinson's estimate of tr(H) from ``n_samples`` Rademacher vectors drawn with ``seed``."""
    operator = HessianOperator(FlatLoss(model, x, y, chunk_size=chunk_size, mode=mode), cache_graph=cache_graph)
    return trace_estimate(operator, n_samples=n_samples, seed=seed)


def top_eigenpairs(
    operator: HessianOperator,
    k: int = 1,
    *,
    tol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
    method: str = AUTO,
) -> EigenResult:
    """:func:`top_eigenvalues` on an existing operator (so several analyses can share its graph)."""
    _check_solver_options(operator.dim, k, tol, max_iter, method)
    start = operator.calls
    if operator.dim <= DENSE_LIMIT:
        values, vectors = _dense_eigh(operator)
        order = np.argsort(values)[::-1][:k]
        values, vectors, residuals = values[order], vectors[:, order], np.zeros(k)
        method = "dense"
    elif choose_eigen_method(k, tol, method) == POWER:
        value, vector, residual = power_iteration(operator, tol=tol, max_products=max_iter, seed=seed)
        if value is not None:
            values, vectors, residuals, method = np.array([value]), vector[:, None], np.array([residual]), POWER
        else:
            # Not settled, or settled on a negative eigenvalue of larger magnitude: Lanczos, from there.
            found = _lanczos(operator, 1, tol=tol, max_iter=max_iter, seed=seed, shift=None, start=vector)
            values, vectors, residuals = found.values, found.vectors, found.residuals
            method = "power+lanczos"
    else:
        found = _lanczos(operator, k, tol=tol, max_iter=max_iter, seed=seed, shift=None)
        values, vectors, residuals = found.values, found.vectors, found.residuals
        method = LANCZOS
    return EigenResult(
        values=tuple(float(v) for v in values),
        vectors=_as_vectors(vectors, operator),
        num_hvps=operator.calls - start,
        method=method,
        residuals=tuple(float(r) for r in residuals),
    )


def extreme_eigenpairs(
    operator: HessianOperator,
    *,
    tol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
    top: EigenResult | None = None,
) -> ExtremeEigenvalues:
    """:func:`extreme_eigenvalues` on an existing operator; ``top`` (from :func:`top_eigenpairs` on
    the same operator) supplies λ_max and saves its Lanczos run."""
    _check_solver_options(operator.dim, 1, tol, max_iter)
    start = operator.calls
    if operator.dim <= DENSE_LIMIT:
        values, vectors = _dense_eigh(operator)
        high, low = int(np.argmax(values)), int(np.argmin(values))
        largest, smallest = float(values[high]), float(values[low])
        largest_vector, smallest_vector = vectors[:, high : high + 1], vectors[:, low : low + 1]
        method = "dense"
    else:
        if top is not None:
            largest, largest_vector = top.values[0], top.vectors[:, :1]
        else:
            found = _lanczos(operator, 1, tol=tol, max_iter=max_iter, seed=seed, shift=None)
            largest, largest_vector = float(found.values[0]), found.vectors
        # Largest eigenvalue μ of λ_max·I − H; λ_min = λ_max − μ (see the module docstring).
        shifted = _lanczos(operator, 1, tol=tol, max_iter=max_iter, seed=seed + 1, shift=largest)
        smallest, smallest_vector = min(largest - float(shifted.values[0]), largest), shifted.vectors
        method = "lanczos"
    return ExtremeEigenvalues(
        largest=largest,
        smallest=smallest,
        largest_vector=_as_vectors(largest_vector, operator)[:, 0],
        smallest_vector=_as_vectors(smallest_vector, operator)[:, 0],
        num_hvps=operator.calls - start,
        method=method,
    )


def trace_estimate(operator: HessianOperator, *, n_samples: int = 100, seed: int = 0) -> TraceEstimate:
    """:func:`hessian_trace` on an existing operator."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ConfigError(f"trace samples {n_samples!r} is invalid; allowed: an integer ≥ 2 (for a standard error)")
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n_samples):
        signs = torch.randint(0, 2, (operator.dim,), generator=generator).mul_(2).sub_(1)
        v = signs.to(device=operator.point.device, dtype=operator.point.dtype)
        samples.append(float(torch.dot(v, operator.matvec(v))))
    values = np.asarray(samples, dtype=np.float64)
    return TraceEstimate(
        value=float(values.mean()),
        stderr=float(values.std(ddof=1) / math.sqrt(n_samples)),
        n_samples=n_samples,
    )


def choose_eigen_method(k: int, tol: float, method: str = AUTO) -> str:
    """``power`` or ``lanczos`` for the top ``k`` eigenvalues at relative tolerance ``tol``.

    ``auto`` is Lanczos at every k and tol (module docstring: its stopping rule bounds the error).
    ``power`` for k > 1 is refused: it finds one eigenvalue.
    """
    if method not in EIGEN_METHODS:
        raise ConfigError(f"eigenvalue method {method!r} is unknown; allowed: {', '.join(EIGEN_METHODS)}")
    if method == POWER and k != 1:
        raise ConfigError(f"power iteration finds one eigenvalue, not k={k}; allowed: k=1, or method 'lanczos'/'auto'")
    if method == AUTO:
        return LANCZOS
    return method


def power_iteration(
    operator: HessianOperator, *, tol: float, max_products: int, seed: int = 0
) -> tuple[float | None, torch.Tensor, float]:
    """The Hessian's eigenvalue of largest magnitude by power iteration, its unit vector and the
    residual ‖Hv − λv‖ of the last product.

    Stops when the relative change of λ = vᵀHv is below ``tol`` (PyHessian's rule,
    |λ_i − λ_{i−1}| / (|λ_{i−1}| + 1e-6) < tol) and the residual is at most √tol·|λ|: with λ's error
    ≈ ‖r‖²/gap, this keeps an iteration that stalls between eigenvalues of equal magnitude (λ and
    −λ give a constant Rayleigh quotient) from stopping. Neither part bounds λ's error by tol.
    Returns (λ, Hv/‖Hv‖, residual) of the last product — PyHessian returns the λ before it — or
    (None, last vector, residual) when it did not stop within ``max_products`` products or stopped
    on λ ≤ 0 (then the largest algebraic eigenvalue is not the one found). The start is the
    seeded vector Lanczos starts from.
    """
    dtype, device = operator.point.dtype, operator.point.device
    start = torch.randn(operator.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    v = (start / start.norm()).to(device=device, dtype=dtype)
    previous: float | None = None
    residual = math.inf
    for _ in range(max_products):
        hv = operator.matvec(v)
        value = float(torch.dot(v.double(), hv.double()))
        residual = float((hv.double() - value * v.double()).norm())
        norm = hv.norm()
        if norm == 0:
            return None, v, residual  # v is in the null space: no direction to follow
        settled = (
            previous is not None
            and abs(value - previous) / (abs(previous) + POWER_DENOMINATOR_FLOOR) < tol
            and residual <= math.sqrt(tol) * abs(value)
        )
        v = hv / norm
        if settled:
            return (value, v, residual) if value > 0 else (None, v, residual)
        previous = value
    return None, v, residual


def _check_solver_options(dim: int, k: int, tol: float, max_iter: int, method: str = AUTO) -> None:
    limit = dim if dim <= DENSE_LIMIT else dim - 1  # k = p would be the whole space: the dense path's job
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= limit:
        raise ConfigError(f"number of eigenvalues k={k!r} is invalid; allowed: 1 … {limit} for this model")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (tol > 0 and math.isfinite(tol)):
        raise ConfigError(f"tolerance {tol!r} is invalid; allowed: a number > 0 (relative accuracy, e.g. 1e-3)")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ConfigError(f"max_iter {max_iter!r} is invalid; allowed: an integer ≥ 1 (Hessian-vector products)")
    choose_eigen_method(k, tol, method)


def _dense_eigh(operator: HessianOperator) -> tuple[np.ndarray, np.ndarray]:
    matrix = operator.dense().detach().to("cpu", torch.float64).numpy()
    return np.linalg.eigh(matrix)


def _lanczos(
    operator: HessianOperator,
    k: int,
    *,
    tol: float,
    max_iter: int,
    seed: int,
    shift: float | None,
    start: torch.Tensor | None = None,
) -> LanczosResult:
    """k largest eigenpairs of H (or of shift·I − H), descending, by
    :func:`~batchlab.geometry.lanczos.lanczos_largest`, from ``start`` (default: the Gaussian
    vector drawn in float64 with ``seed``)."""
    dtype, device = operator.point.dtype, operator.point.device

    def product(v: torch.Tensor) -> torch.Tensor:
        hv = operator.matvec(v)
        return hv if shift is None else shift * v - hv

    if start is None:
        start = torch.randn(operator.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return lanczos_largest(product, start.to(device=device, dtype=dtype), k, tol=tol, max_steps=max_iter)


def _as_vectors(vectors: np.ndarray | torch.Tensor, operator: HessianOperator) -> torch.Tensor:
    """Columns normalized to unit length, sign fixed so the largest-magnitude entry is positive."""
    matrix = torch.as_tensor(vectors).to("cpu", torch.float64)
    matrix = matrix / matrix.norm(dim=0, keepdim=True)
    pivots = matrix.abs().argmax(dim=0)
    signs = torch.sign(matrix[pivots, torch.arange(matrix.shape[1])])
    signs[signs == 0] = 1
    matrix = matrix * signs
    return matrix.to(device=operator.point.device, dtype=operator.point.dtype)
