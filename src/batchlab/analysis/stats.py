"""Confidence intervals for a small-batch vs large-batch difference, and how many seeds resolve it.

batchlab compares two arms (a small batch and a large batch) over a handful of seeds. A run with
seed s builds its model right after ``torch.manual_seed(s)``, so the small- and the large-batch
run of one seed start from the same initial weights: they form a **pair**, and the per-seed
difference ``d_s = a_s − b_s`` removes what the two runs share (the initialization, the data
split). Everything here is pure and works on plain numbers.

* :func:`paired_interval` — the mean difference d̄ of the pairs with its t interval
  ``d̄ ± t_{1−α/2, n−1} · s_d / √n`` (s_d: the sample standard deviation of the differences,
  n pairs, n − 1 degrees of freedom; the interval of ``scipy.stats.ttest_rel``).
* :func:`welch_interval` — when the arms do not share seeds: the difference of the means with
  Welch's interval ``(ā − b̄) ± t_{1−α/2, ν} · √(s_a²/n_a + s_b²/n_b)``, ν the
  Welch–Satterthwaite degrees of freedom (the interval of ``scipy.stats.ttest_ind(…,
  equal_var=False)``).
* :func:`bootstrap_interval` — the percentile bootstrap of the mean of the paired differences
  (Efron & Tibshirani 1993, §13.3), from a seeded generator, for readers who distrust the t
  interval's normality with few seeds.
* :func:`compare` — the best interval the data allow: paired with at least two shared seeds,
  else Welch with at least two seeds per arm, else None.

A difference is **within noise** exactly when its interval contains 0 (:attr:`Interval.within_noise`);
with fewer than two pairs (or seeds per arm) there is no interval and nothing is within noise or
beyond it.

:func:`seeds_needed` answers the power question "how many seeds resolve a difference d at this
spread s?" (see its docstring and ``docs/science.md`` §9).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
# The power a seed count is sized for: the chance that a real difference d gives an interval that
# excludes 0 (the conventional 0.8 of Cohen 1988).
POWER = 0.8
BOOTSTRAP_RESAMPLES = 10_000
# Above this many seeds seeds_needed stops searching and reports the bound.
MAX_SEEDS = 100_000

PAIRED = "paired t"
WELCH = "Welch t"
BOOTSTRAP = "paired bootstrap"
BINOMIAL = "binomial (one seed a side)"


@dataclass(frozen=True)
class Interval:
    """A difference ``a − b`` (``estimate``) with its ``confidence`` interval [low, high].

    ``n`` is the number of pairs (paired methods) or ``(n_a, n_b)`` summed (Welch); ``spread`` the
    standard deviation the interval came from (of the differences, or ``√(s_a² + s_b²)/√2``, the
    arms' pooled per-seed spread, for Welch); ``df`` the t degrees of freedom (None: bootstrap)."""

    estimate: float
    low: float
    high: float
    n: int
    spread: float
    method: str
    confidence: float = CONFIDENCE
    df: float | None = None

    @property
    def within_noise(self) -> bool:
        """True exactly when the interval contains 0."""
        return self.low <= 0.0 <= self.high

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"within_noise": self.within_noise}


def paired_differences(a: Mapping[int, float], b: Mapping[int, float]) -> dict[int, float]:
    """``{seed: a[seed] − b[seed]}`` for the seeds both arms ran (non-finite values left out),
    in seed order."""
    shared = sorted(set(a) & set(b))
    return {s: float(a[s]) - float(b[s]) for s in shared
            if math.isfinite(float(a[s])) and math.isfinite(float(b[s]))}


def _t_quantile(confidence: float, df: float) -> float:
    _check_confidence(confidence)
    return float(scipy_stats.t.ppf(1 - (1 - confidence) / 2, df))


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, not {confidence!r}")


def interval_of_differences(differences: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """The paired t interval of the mean of ``differences`` (one per pair; at least two)."""
    values = [float(d) for d in differences]
    if len(values) < 2:
        raise ValueError(f"a paired interval needs at least 2 pairs, got {len(values)}")
    n = len(values)
    mean, spread = statistics.fmean(values), statistics.stdev(values)
    half = _t_quantile(confidence, n - 1) * spread / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, spread, PAIRED, confidence, float(n - 1))


def paired_interval(a: Mapping[int, float], b: Mapping[int, float], confidence: float = CONFIDENCE) -> Interval:
    """The t interval of the mean per-seed difference ``a − b`` over the seeds both arms ran
    (``a``, ``b``: seed → value; at least two shared seeds)."""
    return interval_of_differences(list(paired_differences(a, b).values()), confidence)


def welch_interval(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Welch's interval of ``mean(a) − mean(b)`` for unpaired arms (at least two values each);
    see :func:`welch_interval_from_summary`."""
    a, b = [float(v) for v in a if math.isfinite(float(v))], [float(v) for v in b if math.isfinite(float(v))]
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"a Welch interval needs at least 2 values per arm, got {len(a)} and {len(b)}")
    return welch_interval_from_summary(statistics.fmean(a), statistics.stdev(a), len(a),
                                       statistics.fmean(b), statistics.stdev(b), len(b), confidence)


def welch_interval_from_summary(mean_a: float, std_a: float, n_a: int, mean_b: float, std_b: float, n_b: int,
                                confidence: float = CONFIDENCE) -> Interval:
    """Welch's interval from each arm's mean, sample standard deviation and count (at least two):
    ``se = √(s_a²/n_a + s_b²/n_b)``, ``ν = se⁴ / ((s_a²/n_a)²/(n_a − 1) + (s_b²/n_b)²/(n_b − 1))``
    (Welch 1947); with both spreads zero the interval is the point itself."""
    if n_a < 2 or n_b < 2:
        raise ValueError(f"a Welch interval needs at least 2 values per arm, got {n_a} and {n_b}")
    va, vb = std_a**2 / n_a, std_b**2 / n_b
    estimate = mean_a - mean_b
    spread = math.sqrt((std_a**2 + std_b**2) / 2)
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(estimate, estimate, estimate, n_a + n_b, 0.0, WELCH, confidence, None)
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    half = _t_quantile(confidence, df) * se
    return Interval(estimate, estimate - half, estimate + half, n_a + n_b, spread, WELCH, confidence, df)


def binomial_interval(p_a: float, p_b: float, examples: int, confidence: float = CONFIDENCE) -> Interval:
    """The interval of a difference of two accuracies ``p_a − p_b`` measured once each on
    ``examples`` test examples: ``± z_{1−α/2} · √(p_a(1 − p_a)/N + p_b(1 − p_b)/N)`` (the normal
    approximation to each binomial). It covers the test set's sampling noise only, not the
    seed-to-seed spread: the interval for a single seed per arm."""
    _check_confidence(confidence)
    if examples < 1:
        raise ValueError(f"a binomial interval needs at least 1 example, not {examples}")
    se = math.sqrt(max(p_a * (1 - p_a), 0.0) / examples + max(p_b * (1 - p_b), 0.0) / examples)
    half = float(scipy_stats.norm.ppf(1 - (1 - confidence) / 2)) * se
    return Interval(p_a - p_b, p_a - p_b - half, p_a - p_b + half, 2, se * math.sqrt(examples), BINOMIAL,
                    confidence, None)


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The t interval ``mean ± t_{1−α/2, n−1} · s/√n`` of one arm's mean (None below two values)."""
    values = [float(v) for v in values if math.isfinite(float(v))]
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    half = _t_quantile(confidence, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean - half, mean + half


def bootstrap_interval(differences: Sequence[float], confidence: float = CONFIDENCE,
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> Interval:
    """The percentile bootstrap interval of the mean of paired ``differences`` (at least two).

    ``resamples`` times, draw n differences with replacement (``numpy.random.default_rng(seed)``,
    so the interval is reproducible) and take their mean; the interval runs from the α/2 to the
    1 − α/2 quantile of those means (linear interpolation, numpy's default)."""
    _check_confidence(confidence)
    values = np.asarray([float(d) for d in differences], dtype=float)
    if values.size < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 pairs, got {values.size}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, not {resamples}")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(float(values.mean()), float(low), float(high), int(values.size),
                    float(values.std(ddof=1)), BOOTSTRAP, confidence, None)


def compare(a: Mapping[int, float], b: Mapping[int, float], confidence: float = CONFIDENCE) -> Interval | None:
    """The interval of ``a − b`` (seed → value for each arm) the data allow: paired when the arms
    share at least two seeds, else Welch when each arm has at least two values, else None."""
    if len(paired_differences(a, b)) >= 2:
        return paired_interval(a, b, confidence)
    if len(a) >= 2 and len(b) >= 2:
        return welch_interval(list(a.values()), list(b.values()), confidence)
    return None


def seeds_needed(difference: float, spread: float, *, paired: bool = True, power: float = POWER,
                 confidence: float = CONFIDENCE) -> int:
    """The smallest number of seeds n (pairs, or seeds per arm when unpaired) that resolves a true
    difference ``difference`` at a per-seed ``spread`` with probability ``power``.

    The rule is the normal-approximation sample size with its t correction (e.g. Chow, Shao &
    Wang, *Sample Size Calculations in Clinical Research*, §3.2): the smallest n ≥ 2 with

        n ≥ k · ((t_{1−α/2, ν} + t_{power, ν}) · s / |d|)²,

    k = 1 and ν = n − 1 for pairs (s: the spread of the per-seed differences), k = 2 and ν = 2n − 2
    per arm for two unpaired arms (s: the spread within an arm). For large n the t quantiles become
    the normal ones and this is ``k · ((z_{1−α/2} + z_{power}) · s / d)²`` (1.96 + 0.84 at 95 %
    and power 0.8). With ``power = 0.5`` (t_{0.5} = 0) it is the rule "the interval
    d ± t_{1−α/2, n−1} · s/√n just excludes 0 when the mean difference is exactly d". Returns
    :data:`MAX_SEEDS` when even that many do not suffice, and 2 for a zero spread."""
    _check_confidence(confidence)
    if not 0 < power < 1:
        raise ValueError(f"power must lie strictly between 0 and 1, not {power!r}")
    if not (math.isfinite(difference) and difference != 0):
        raise ValueError(f"the difference to resolve must be finite and non-zero, not {difference!r}")
    if not (math.isfinite(spread) and spread >= 0):
        raise ValueError(f"the spread must be finite and non-negative, not {spread!r}")
    k = 1 if paired else 2
    z = scipy_stats.norm.ppf(1 - (1 - confidence) / 2) + scipy_stats.norm.ppf(power)
    n = max(2, math.ceil(k * (z * spread / abs(difference)) ** 2))  # the normal answer is a lower bound
    while n < MAX_SEEDS:
        df = n - 1 if paired else 2 * n - 2
        quantiles = _t_quantile(confidence, df) + float(scipy_stats.t.ppf(power, df))
        if n >= k * (quantiles * spread / abs(difference)) ** 2:
            return n
        n += 1
    return MAX_SEEDS


def power_line(difference: float, spread: float, seeds_run: int, *, paired: bool = True, unit: str = "",
               digits: int = 3, power: float = POWER, confidence: float = CONFIDENCE) -> str:
    """One sentence: "to resolve a difference of d at this spread (s), n seeds are needed …".

    ``unit`` follows the numbers (e.g. " points"); ``seeds_run`` is what was measured."""
    if not (math.isfinite(difference) and difference != 0):
        return f"no difference was measured, so no seed count resolves it ({_seeds(seeds_run, paired)} run)"
    n = seeds_needed(difference, spread, paired=paired, power=power, confidence=confidence)
    count = f"{n:,}" if n < MAX_SEEDS else f"more than {MAX_SEEDS:,}"
    d, s = f"{abs(difference):.{digits}g}", f"{spread:.{digits}g}"
    return (f"to resolve a difference of {d}{_unit(d, unit)} at this spread "
            f"(s = {s}{_unit(s, unit)}), {count} {'paired seeds' if paired else 'seeds per batch size'} "
            f"are needed ({confidence * 100:g} % interval, power {power:g}); {_seeds(seeds_run, paired)} run")


def _unit(number: str, unit: str) -> str:
    """``unit`` in the singular after the number 1 (" points" → " point")."""
    return unit[:-1] if number == "1" and unit.endswith("s") else unit


def _seeds(n: int, paired: bool) -> str:
    noun = ("pair" if paired else "seed") + ("" if n == 1 else "s")
    return f"{n} {noun} {'was' if n == 1 else 'were'}"
