"""Why noisy gradients help, measured: mini-batch losses and gradients where the full gradient is small.

The lecture ("Batch and Momentum"): every batch i defines its own loss
``L^i(θ) = (1/|B_i|) Σ_{n∈B_i} ℓ_n(θ)``; where the full-batch loss L has a zero gradient (a
critical point, where full-batch gradient descent stops), L^i generally does not, so training with
mini-batches keeps moving. :func:`measure_noise` measures this at a given point θ of a real
network on real data:

* ``G = ∇L(θ)`` over all N training examples, and ``g_i = ∇L^i(θ)`` for mini-batches of size B
  drawn exactly as training draws them: consecutive slices of
  ``batchlab.data.epoch_permutation(N, e, seed, "epoch")`` for epochs e = 0, 1, … (only full
  slices of B examples are used);
* the gradient noise ``noise(B) = mean_i ‖g_i − G‖²`` with its standard error over batches;
* the per-example gradient covariance ``Σ = (1/N) Σ_n (∇ℓ_n − G)(∇ℓ_n − G)ᵀ``, whose trace
  ``tr Σ = mean_n ‖∇ℓ_n‖² − ‖G‖²`` is computed from per-example gradients (on all N examples, or
  on a seeded random subset of ``trace_examples`` of them — then an unbiased estimate of the mean);
* for a batch of B examples drawn *without replacement* from N,
  ``E‖g_B − G‖² = c_B · tr Σ`` with ``c_B = (N − B) / (B (N − 1))`` (the finite-population
  correction of sampling without replacement), reported as the *predicted* noise beside the
  measured one;
* McCandlish et al. 2018, "An Empirical Model of Large-Batch Training", the simple noise scale
  ``B_simple = tr Σ / |G|²`` and its cheap estimate from the mean squared gradient norms at two
  batch sizes b < B. Their formulas, ``|G|² ≈ (B|G_B|² − b|G_b|²)/(B − b)`` and
  ``tr Σ ≈ (|G_b|² − |G_B|²)/(1/b − 1/B)``, solve ``E|G_B|² = |G|² + tr Σ / B`` (sampling with
  replacement). The batches here are drawn without replacement, so the same two equations are
  solved with ``c_B`` in place of ``1/B``: ``tr Σ ≈ (|G_b|² − |G_B|²)/(c_b − c_B)`` and
  ``|G|² ≈ |G_b|² − c_b · tr Σ``, which reduce to McCandlish's when B ≪ N;
* a one-dimensional scan: the full loss ``L(θ + α d)`` and the batch losses ``L^i(θ + α d)``
  along ``d = g_1 / ‖g_1‖`` (the normalized gradient of the first small batch), α ∈ [−a, a] — the
  lecture's L¹ / L² picture drawn from real data.

Everything is evaluated in eval mode at fixed θ (see :mod:`batchlab.analysis.gradients`); the
model's weights and mode are left as they were.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from batchlab.analysis.gradients import (
    FlatParameters,
    loss_and_gradient,
    loss_at,
    per_example_sq_norms,
)
from batchlab.data import epoch_permutation
from batchlab.errors import ConfigError

DEFAULT_BATCHES = 32
DEFAULT_SCAN_BATCHES = 4
DEFAULT_SCAN_POINTS = 41
DEFAULT_TRACE_EXAMPLES = 4000


@dataclass
class BatchSizeNoise:
    """Mini-batch losses and gradients of one batch size at θ.

    ``losses`` and ``grad_norms`` hold ``L^i`` and ``‖g_i‖`` for every batch measured;
    ``noise`` is ``mean ‖g_i − G‖²`` and ``noise_se`` its standard error over the batches;
    ``predicted_noise`` is ``c_B · tr Σ`` (None when tr Σ was not computed).
    """

    batch_size: int
    losses: list[float]
    grad_norms: list[float]
    noise: float
    noise_se: float
    mean_sq_norm: float
    predicted_noise: float | None = None

    @property
    def n_batches(self) -> int:
        return len(self.grad_norms)

    @property
    def median_grad_norm(self) -> float:
        return statistics.median(self.grad_norms)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"n_batches": self.n_batches, "median_grad_norm": self.median_grad_norm}


@dataclass
class NoiseScale:
    """McCandlish's simple noise scale ``B_simple = tr Σ / |G|²``, estimated two ways.

    ``two_batch_*``: from the mean squared batch-gradient norms at ``small_batch`` and
    ``large_batch`` (see the module docstring). ``exact_*``: ``|G|²`` from the full gradient and
    ``tr Σ`` from per-example gradients on ``trace_examples`` examples (None when not computed).
    """

    small_batch: int
    large_batch: int
    two_batch_grad_sq: float
    two_batch_trace: float
    exact_grad_sq: float
    exact_trace: float | None
    trace_examples: int | None

    @property
    def two_batch_b_simple(self) -> float | None:
        return self.two_batch_trace / self.two_batch_grad_sq if self.two_batch_grad_sq > 0 else None

    @property
    def exact_b_simple(self) -> float | None:
        if self.exact_trace is None or self.exact_grad_sq <= 0:
            return None
        return self.exact_trace / self.exact_grad_sq

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"two_batch_b_simple": self.two_batch_b_simple,
                               "exact_b_simple": self.exact_b_simple}


@dataclass
class DirectionScan:
    """``L(θ + αd)`` and ``L^i(θ + αd)`` along ``d = g_1/‖g_1‖`` for batches of ``batch_size``.

    ``full_slope`` = ``G·d`` and ``batch_slopes[i]`` = ``g_i·d`` are the slopes at α = 0.
    """

    batch_size: int
    alphas: list[float]
    full_loss: list[float]
    batch_losses: list[list[float]]
    full_slope: float
    batch_slopes: list[float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NoiseReport:
    """Everything :func:`measure_noise` found at one point θ (JSON round trip by to/from_dict)."""

    n_train: int
    n_parameters: int
    full_loss: float
    full_grad_norm: float
    batch_sizes: list[BatchSizeNoise]
    scale: NoiseScale | None
    scan: DirectionScan | None
    settings: dict[str, Any] = field(default_factory=dict)
    point: dict[str, Any] = field(default_factory=dict)

    def at(self, batch_size: int) -> BatchSizeNoise | None:
        return next((b for b in self.batch_sizes if b.batch_size == batch_size), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_train": self.n_train,
            "n_parameters": self.n_parameters,
            "full_loss": self.full_loss,
            "full_grad_norm": self.full_grad_norm,
            "batch_sizes": [b.to_dict() for b in self.batch_sizes],
            "scale": None if self.scale is None else self.scale.to_dict(),
            "scan": None if self.scan is None else self.scan.to_dict(),
            "settings": dict(self.settings),
            "point": dict(self.point),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NoiseReport":
        def pick(kind: type, values: dict[str, Any]) -> Any:
            names = kind.__dataclass_fields__
            return kind(**{k: v for k, v in values.items() if k in names})

        return cls(
            n_train=int(data["n_train"]),
            n_parameters=int(data["n_parameters"]),
            full_loss=float(data["full_loss"]),
            full_grad_norm=float(data["full_grad_norm"]),
            batch_sizes=[pick(BatchSizeNoise, b) for b in data["batch_sizes"]],
            scale=None if data.get("scale") is None else pick(NoiseScale, data["scale"]),
            scan=None if data.get("scan") is None else pick(DirectionScan, data["scan"]),
            settings=dict(data.get("settings") or {}),
            point=dict(data.get("point") or {}),
        )


def finite_population_factor(batch_size: int, n: int) -> float:
    """``c_B = (N − B) / (B (N − 1))``: ``E‖g_B − G‖² = c_B · tr Σ`` for B of N drawn without
    replacement (``1/B`` when N is infinite, 0 for the full batch)."""
    if n <= 1:
        return 0.0
    return (n - batch_size) / (batch_size * (n - 1))


def two_batch_noise_scale(small_batch: int, small_sq: float, large_batch: int, large_sq: float,
                          n: int) -> tuple[float, float]:
    """``(|G|², tr Σ)`` from the mean squared gradient norms at two batch sizes b < B of N.

    Solves ``E|G_b|² = |G|² + c_b tr Σ`` for both sizes (``c`` from
    :func:`finite_population_factor`); with N → ∞ this is McCandlish et al.'s estimator.
    """
    c_small = finite_population_factor(small_batch, n)
    c_large = finite_population_factor(large_batch, n)
    if not c_small > c_large:
        raise ConfigError(
            f"the two batch sizes must differ with b < B ≤ N; got b={small_batch}, B={large_batch}, N={n}")
    trace = (small_sq - large_sq) / (c_small - c_large)
    return small_sq - c_small * trace, trace


def batch_indices(n: int, batch_size: int, n_batches: int, seed: int) -> list[torch.Tensor]:
    """The first ``n_batches`` full batches SGD with ``seed`` would draw: consecutive slices of
    ``epoch_permutation(n, e, seed, "epoch")`` for e = 0, 1, … (a partial last slice is skipped)."""
    if not 1 <= batch_size <= n:
        raise ConfigError(f"batch size {batch_size} is outside 1 … {n} (the training-set size)")
    if n_batches < 1:
        raise ConfigError(f"number of batches {n_batches} is too small; allowed: ≥ 1")
    batches: list[torch.Tensor] = []
    epoch = 0
    while len(batches) < n_batches:
        order = epoch_permutation(n, epoch, seed, "epoch")
        for start in range(0, n - batch_size + 1, batch_size):
            batches.append(order[start : start + batch_size])
            if len(batches) == n_batches:
                break
        epoch += 1
    return batches


def measure_noise(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_sizes: Sequence[int],
    *,
    n_batches: int = DEFAULT_BATCHES,
    seed: int = 0,
    scan_batches: int = DEFAULT_SCAN_BATCHES,
    scan_radius: float | None = None,
    scan_points: int = DEFAULT_SCAN_POINTS,
    trace_examples: int | None = DEFAULT_TRACE_EXAMPLES,
    point: dict[str, Any] | None = None,
) -> NoiseReport:
    """Full-batch vs mini-batch losses and gradients of ``model`` on the training data ``(x, y)``.

    Args:
        batch_sizes: the mini-batch sizes to measure (each 1 … N); the smallest is scanned.
        n_batches: batches measured per batch size.
        seed: the data-order seed the batches are drawn with (and of the trace subset).
        scan_batches: how many batch losses ``L^i`` the direction scan draws (0: no scan).
        scan_radius: a in α ∈ [−a, a]; default: the distance at which the first batch's linear
            change ``a‖g_1‖`` reaches the full loss ``L(θ)``, so the curves visibly move.
        scan_points: α values in the scan (odd, so α = 0 is one of them).
        trace_examples: examples whose per-example gradients give tr Σ (None or 0: skip; more
            than N: all N).
        point: what θ is (run id, config …), kept in the report.
    """
    sizes = sorted({int(b) for b in batch_sizes})
    n = len(y)
    if not sizes:
        raise ConfigError("no batch size given; allowed: one or more integers 1 … N")
    for size in sizes:
        if not 1 <= size <= n:
            raise ConfigError(f"batch size {size} is outside 1 … {n} (the training-set size)")
    if scan_points < 3:
        raise ConfigError(f"scan points {scan_points} is too small; allowed: ≥ 3")

    full_loss, full_grad = loss_and_gradient(model, x, y)
    grad_sq = float(full_grad.dot(full_grad))

    trace, used = None, None
    if trace_examples:
        used = min(int(trace_examples), n)
        subset = torch.arange(n) if used == n else torch.randperm(
            n, generator=torch.Generator().manual_seed(seed))[:used]
        subset = subset.to(x.device)
        # tr Σ = mean_n ‖∇ℓ_n‖² − ‖G‖² (exact on all N; unbiased mean estimate on a subset).
        trace = float(per_example_sq_norms(model, x[subset], y[subset]).mean()) - grad_sq

    measured: list[BatchSizeNoise] = []
    gradients_of_smallest: list[torch.Tensor] = []
    batches_of_smallest: list[torch.Tensor] = []
    for size in sizes:
        losses, norms, sq_norms, distances = [], [], [], []
        for index in batch_indices(n, size, n_batches, seed):
            index = index.to(x.device)
            loss, g = loss_and_gradient(model, x[index], y[index])
            losses.append(loss)
            norms.append(float(g.norm()))
            sq_norms.append(float(g.dot(g)))
            distances.append(float((g - full_grad).pow(2).sum()))
            if size == sizes[0] and len(gradients_of_smallest) < max(scan_batches, 1):
                gradients_of_smallest.append(g)
                batches_of_smallest.append(index)
        spread = statistics.stdev(distances) / math.sqrt(len(distances)) if len(distances) > 1 else 0.0
        measured.append(BatchSizeNoise(
            batch_size=size,
            losses=losses,
            grad_norms=norms,
            noise=statistics.fmean(distances),
            noise_se=spread,
            mean_sq_norm=statistics.fmean(sq_norms),
            predicted_noise=None if trace is None else finite_population_factor(size, n) * trace,
        ))

    scale = None
    if len(sizes) >= 2 and finite_population_factor(sizes[0], n) > finite_population_factor(sizes[-1], n):
        est_grad_sq, est_trace = two_batch_noise_scale(
            sizes[0], measured[0].mean_sq_norm, sizes[-1], measured[-1].mean_sq_norm, n)
        scale = NoiseScale(sizes[0], sizes[-1], est_grad_sq, est_trace, grad_sq, trace, used)

    scan = None
    if scan_batches > 0:
        scan = scan_direction(model, x, y, full_loss, full_grad, gradients_of_smallest[:scan_batches],
                              batches_of_smallest[:scan_batches], sizes[0], scan_radius, scan_points)

    settings = {"batch_sizes": sizes, "n_batches": n_batches, "seed": seed, "scan_batches": scan_batches,
                "scan_radius": None if scan is None else max(scan.alphas), "scan_points": scan_points,
                "trace_examples": used, "mode": "eval"}
    return NoiseReport(n, int(full_grad.numel()), full_loss, math.sqrt(grad_sq), measured, scale, scan,
                       settings, dict(point or {}))


def scan_direction(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    full_loss: float,
    full_grad: torch.Tensor,
    batch_gradients: list[torch.Tensor],
    batch_index: list[torch.Tensor],
    batch_size: int,
    radius: float | None,
    points: int,
) -> DirectionScan:
    """Losses along ``d = g_1/‖g_1‖`` (see :class:`DirectionScan`); θ itself is not changed."""
    first = batch_gradients[0]
    norm = float(first.norm())
    if norm == 0:
        raise ConfigError("the first mini-batch gradient is exactly zero; no direction to scan along")
    direction = first / norm
    if radius is None:
        radius = max(full_loss, 1e-3) / norm
    alphas = [radius * (2 * k / (points - 1) - 1) for k in range(points)]
    params = FlatParameters(model)
    step = direction.to(params.theta.dtype)
    full_curve, batch_curves = [], [[] for _ in batch_index]
    for alpha in alphas:
        theta = params.theta + alpha * step
        full_curve.append(loss_at(model, x, y, theta))
        for curve, index in zip(batch_curves, batch_index):
            curve.append(loss_at(model, x[index], y[index], theta))
    return DirectionScan(
        batch_size=batch_size,
        alphas=alphas,
        full_loss=full_curve,
        batch_losses=batch_curves,
        full_slope=float(full_grad.dot(direction)),
        batch_slopes=[float(g.dot(direction)) for g in batch_gradients],
    )
