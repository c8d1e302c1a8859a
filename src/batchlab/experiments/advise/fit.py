"""McCandlish et al.'s steps–examples trade-off fitted to measured steps to a target, and
Shallue et al.'s three regimes read from it.

McCandlish, Kaplan, Amodei et al. 2018, "An Empirical Model of Large-Batch Training" (eq. 2.11):
to reach a given result, S steps at batch B use E = B·S examples, and

    (S / S_min − 1)(E / E_min − 1) = 1,   equivalently   S(B) = S_min (1 + B_crit / B),

with S_min the steps at infinitely large batches, E_min the examples at infinitely small ones and
the critical batch size B_crit = E_min / S_min, where both cost twice their minimum.

:func:`fit_tradeoff` fits log S_min and log E_min by least squares in log space,
Σ_B (log S(B) − log(S_min + E_min/B))², so every batch size weighs the same whatever its S.
Uncertainty two ways: the covariance of the fit, σ² (JᵀJ)⁻¹ with σ² the residual variance
(given as multiplicative 1σ factors, since the fit is in logs; it needs three or more batch
sizes), and, when each batch size has several seeds, a bootstrap over seeds (seeds resampled
with replacement within each batch size, the fit repeated; 2.5–97.5 % percentiles).

Regimes (Shallue et al. 2019, §4: perfect scaling, diminishing returns, maximal data
parallelism), from the fitted curve: **perfect scaling** where E(B) = E_min (1 + B/B_crit) is
within 25 % of E_min, i.e. B ≤ B_crit/4 (doubling B there still cuts the steps by ≥ 1.8×);
**maximal data parallelism** where S(B) is within 25 % of S_min, i.e. B ≥ 4·B_crit; **diminishing
returns** in between.

**A B_crit beyond the measured batch sizes is a bound, not a number.** The curve bends at B_crit;
a fit whose B_crit lies above the largest measured B (or below the smallest) has not seen the
bend and only extrapolates the straight part: S ∝ 1/B measured up to B = 16 with 3 % noise fits
B_crit in the thousands (or anywhere from hundreds to tens of thousands over the bootstrap). The
rule: B_crit is reported as a number only when the fit's value lies within [smallest, largest
measured B]; above the largest it is the lower bound "B_crit > largest" (every measured B may still
be in perfect scaling: measure larger batches to find it), below the smallest the upper bound
"B_crit < smallest". A bound leaves the regimes unread (:func:`regime` returns None) and is
:attr:`TradeoffFit.unresolved`, with the side in :attr:`TradeoffFit.b_crit_bound`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from batchlab.errors import ConfigError

PERFECT_SCALING = "perfect scaling"
DIMINISHING_RETURNS = "diminishing returns"
MAXIMAL_PARALLELISM = "maximal data parallelism"
# Regime boundary: within 25 % of the minimum examples (perfect scaling) or steps (maximal
# data parallelism): B ≤ B_crit · REGIME_FRACTION or B ≥ B_crit / REGIME_FRACTION.
REGIME_FRACTION = 0.25
MIN_POINTS = 3
BOOTSTRAP_SAMPLES = 200
# How far the fitted S_min and E_min may go beyond the measured S and E (a fit that ends on
# this bound is reported as unresolved, not as a number).
BOUND_FACTOR = 1e4


@dataclass
class TradeoffFit:
    """S_min, E_min and B_crit with their uncertainty (see the module docstring).

    ``*_factor``: 1σ multiplicative errors from the fit's covariance (None with two points).
    ``*_interval``: bootstrap 2.5–97.5 % over seeds (None with one seed per batch size).
    ``unresolved``: why a value is only a bound (``S_min`` at its lower bound means every batch
    measured is in perfect scaling, so B_crit is beyond the largest; a fitted B_crit outside the
    measured batch sizes, see the module docstring), else None. ``b_crit_bound``: then
    ``(">", largest B)`` or ``("<", smallest B)``.
    """

    s_min: float
    e_min: float
    b_crit: float
    s_min_factor: float | None
    e_min_factor: float | None
    b_crit_factor: float | None
    residual_rms: float
    points: int
    s_min_interval: tuple[float, float] | None = None
    e_min_interval: tuple[float, float] | None = None
    b_crit_interval: tuple[float, float] | None = None
    bootstrap_samples: int = 0
    unresolved: str | None = None
    batch_sizes: list[int] = field(default_factory=list)
    b_crit_bound: tuple[str, int] | None = None

    @property
    def b_crit_text(self) -> str:
        """``B_crit = 64``, or the bound: ``B_crit > 16``."""
        if self.b_crit_bound is not None:
            side, batch_size = self.b_crit_bound
            return f"B_crit {side} {batch_size}"
        return f"B_crit = {self.b_crit:.3g}"

    def steps(self, batch_size: float) -> float:
        """S(B) = S_min (1 + B_crit / B)."""
        return self.s_min * (1.0 + self.b_crit / batch_size)

    def examples(self, batch_size: float) -> float:
        """E(B) = B·S(B) = E_min (1 + B / B_crit)."""
        return self.e_min * (1.0 + batch_size / self.b_crit)

    @property
    def perfect_scaling_limit(self) -> float:
        """The largest B of the perfect-scaling regime: B_crit · REGIME_FRACTION."""
        return self.b_crit * REGIME_FRACTION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"perfect_scaling_limit": self.perfect_scaling_limit}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TradeoffFit":
        names = cls.__dataclass_fields__
        values = {k: v for k, v in data.items() if k in names}
        for key in ("s_min_interval", "e_min_interval", "b_crit_interval", "b_crit_bound"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)


def fit_tradeoff(
    steps: Mapping[int, Sequence[float]],
    *,
    bootstrap: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> TradeoffFit:
    """Fit S(B) = S_min + E_min / B to ``steps``: batch size → S of each seed (the mean is fitted).

    Raises :class:`ConfigError` with fewer than :data:`MIN_POINTS` batch sizes or a
    non-positive S.
    """
    sizes = sorted(int(b) for b in steps)
    if len(sizes) < MIN_POINTS:
        raise ConfigError(
            f"the fit needs steps at {MIN_POINTS} or more batch sizes; got {len(sizes)}")
    per_size = {b: [float(s) for s in steps[b]] for b in sizes}
    for b, values in per_size.items():
        if not values or any(not (math.isfinite(s) and s > 0) for s in values):
            raise ConfigError(f"steps at B = {b} must be finite and > 0; got {values}")
    batch = np.array(sizes, dtype=float)
    mean_steps = np.array([statistics.fmean(per_size[b]) for b in sizes])
    log_s, log_e, covariance, rms, unresolved = _least_squares(batch, mean_steps)
    factors = [None, None, None]
    if covariance is not None:
        var_b = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
        factors = [math.exp(math.sqrt(max(v, 0.0))) for v in (covariance[0, 0], covariance[1, 1], var_b)]
    result = TradeoffFit(
        s_min=math.exp(log_s), e_min=math.exp(log_e), b_crit=math.exp(log_e - log_s),
        s_min_factor=factors[0], e_min_factor=factors[1], b_crit_factor=factors[2],
        residual_rms=rms, points=len(sizes), unresolved=unresolved, batch_sizes=sizes,
    )
    if bootstrap > 0 and any(len(v) > 1 for v in per_size.values()):
        _bootstrap(result, batch, per_size, sizes, bootstrap, seed)
    _bound(result)
    return result


def _bound(fit: TradeoffFit) -> None:
    """B_crit outside the measured batch sizes is a bound (module docstring)."""
    smallest, largest = fit.batch_sizes[0], fit.batch_sizes[-1]
    if fit.unresolved is not None:
        fit.b_crit_bound = (">", largest) if fit.unresolved.startswith("S_min") else ("<", smallest)
    elif fit.b_crit > largest:
        fit.b_crit_bound = (">", largest)
        fit.unresolved = (f"B_crit > {largest}: the fit's B_crit = {fit.b_crit:.3g} lies beyond the largest measured "
                          "batch size, where the curve has not yet bent; measure larger batches to find it")
    elif fit.b_crit < smallest:
        fit.b_crit_bound = ("<", smallest)
        fit.unresolved = (f"B_crit < {smallest}: the fit's B_crit = {fit.b_crit:.3g} lies below the smallest measured "
                          "batch size; measure smaller batches to find it")


def _least_squares(batch: np.ndarray, steps: np.ndarray):
    """(log S_min, log E_min, covariance or None, rms residual, unresolved reason or None)."""
    from scipy.optimize import least_squares

    log_steps = np.log(steps)
    examples = steps * batch
    lower = np.array([math.log(steps.min() / BOUND_FACTOR), math.log(examples.min() / BOUND_FACTOR)])
    upper = np.array([math.log(steps.max() * BOUND_FACTOR), math.log(examples.max() * BOUND_FACTOR)])

    def residuals(p: np.ndarray) -> np.ndarray:
        return log_steps - np.logaddexp(p[0], p[1] - np.log(batch))

    def jacobian(p: np.ndarray) -> np.ndarray:
        s_part = np.exp(p[0] - np.logaddexp(p[0], p[1] - np.log(batch)))  # S_min / S(B)
        return -np.stack([s_part, 1.0 - s_part], axis=1)

    start = np.clip([math.log(steps.min()), math.log(examples.min())], lower + 1e-9, upper - 1e-9)
    solution = least_squares(residuals, start, jac=jacobian, bounds=(lower, upper), method="trf",
                             x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-12)
    p = solution.x
    r = residuals(p)
    rms = float(math.sqrt(float(np.mean(r ** 2))))
    unresolved = None
    if p[0] - lower[0] < 1e-3:
        unresolved = ("S_min is not resolved: every measured batch size is still in perfect scaling, so B_crit "
                      "lies beyond the largest one")
    elif p[1] - lower[1] < 1e-3:
        unresolved = ("E_min is not resolved: every measured batch size is already at maximal data parallelism, so "
                      "B_crit lies below the smallest one")
    covariance = None
    dof = len(batch) - 2
    if dof > 0 and unresolved is None:
        j = jacobian(p)
        sigma2 = float(np.sum(r ** 2)) / dof
        try:
            covariance = sigma2 * np.linalg.inv(j.T @ j)
        except np.linalg.LinAlgError:
            covariance = None
    return float(p[0]), float(p[1]), covariance, rms, unresolved


def _bootstrap(result: TradeoffFit, batch: np.ndarray, per_size: dict[int, list[float]], sizes: list[int],
               samples: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    s_values, e_values, b_values = [], [], []
    for _ in range(samples):
        means = np.array([np.mean(rng.choice(per_size[b], size=len(per_size[b]), replace=True)) for b in sizes])
        log_s, log_e, _, _, unresolved = _least_squares(batch, means)
        if unresolved is None:
            s_values.append(math.exp(log_s))
            e_values.append(math.exp(log_e))
            b_values.append(math.exp(log_e - log_s))
    if len(b_values) < samples // 2:
        return  # most resamples did not resolve the curve: no interval is honest
    result.bootstrap_samples = len(b_values)
    result.s_min_interval = _interval(s_values)
    result.e_min_interval = _interval(e_values)
    result.b_crit_interval = _interval(b_values)


def _interval(values: list[float]) -> tuple[float, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def regime(batch_size: float, fit: TradeoffFit | None) -> str | None:
    """Shallue's regime of ``batch_size`` under ``fit`` (module docstring); None without a fit
    or where the fit does not resolve B_crit."""
    if fit is None or fit.unresolved is not None:
        return None
    if batch_size <= fit.b_crit * REGIME_FRACTION:
        return PERFECT_SCALING
    if batch_size >= fit.b_crit / REGIME_FRACTION:
        return MAXIMAL_PARALLELISM
    return DIMINISHING_RETURNS
