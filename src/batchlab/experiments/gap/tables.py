"""Keskar et al.'s tables from measured numbers, the paper's own beside them, and a verdict.

Keskar, Mudigere, Nocedal, Smelyanskiy & Tang (ICLR 2017), "On Large-Batch Training for Deep
Learning: Generalization Gap and Sharp Minima":

* Table 2: training and test accuracy (%) of small-batch (SB, B = 256) and large-batch (LB,
  B = 10 % of the training set) Adam runs, trained until the loss stopped improving;
* Table 3: sharpness φ (Metric 2.1) in the full space at ε = 1e-3 and 5e-4;
* Table 4: sharpness in a random 100-dimensional subspace at ε = 1e-3.

The paper's numbers below are their published means (docs/science.md §4). Everything here is pure:
it turns per-seed measurements (:class:`NetworkNumbers`) into table rows and sentences, so it
can be checked on made-up numbers.

How a verdict is reached (per network). SB and LB of one seed start from the same initial
weights, so every comparison is **paired** by seed (:mod:`batchlab.analysis.stats`): the mean of
the per-seed differences SB − LB with its 95 % t interval, d̄ ± t_{0.975, n−1}·s_d/√n over the n
seeds both regimes finished (Welch's interval when they share fewer than two seeds; with one seed
a side, the binomial interval of the two test accuracies). A difference is **within noise**
exactly when its interval contains 0, and each verdict carries a power line: how many paired
seeds would resolve the measured difference at the measured spread.

* **Test gap** g = SB − LB test accuracy, in points: beyond noise and g > 0 agrees with the
  paper (LB tests lower), beyond noise and g < 0 disagrees, else inconclusive. Its size is set
  beside the paper's gap in points.
* **Training accuracy**: the paper's claim is a *generalization* gap, at about equal training
  accuracy. When the training accuracies differ beyond noise and by more than 0.5 points, the
  text says so: LB fitting worse makes part of the test gap an optimization gap (the lecture's
  first point); SB fitting worse makes the comparison favour LB.
* **Sharpness**, for every (space, ε) measured, over the seeds whose SB and LB points both pass
  the at-a-minimum rule (:mod:`batchlab.experiments.gap.minima`; the others are reported as "not
  at a minimum (‖∇f‖ = …)", never as a number): the paired difference of φ decides (LB sharper
  beyond noise agrees), and the ratio r = mean φ_LB / mean φ_SB is set beside the paper's.

Keskar's φ is measured as in the paper (L-BFGS-B from the point itself); the corner start of
:mod:`batchlab.geometry.sharpness` is a different measure and is never used here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from batchlab.analysis.stats import Interval, binomial_interval, compare, power_line

FULL = "full"
SUBSPACE = "random100"

# Table 2: (train SB, train LB, test SB, test LB), accuracy in %.
PAPER_ACCURACY: dict[str, tuple[float, float, float, float]] = {
    "F1": (99.66, 99.92, 98.03, 97.81),
    "F2": (99.99, 98.35, 64.02, 59.45),
    "C1": (99.89, 99.66, 80.04, 77.26),
    "C2": (99.99, 99.99, 89.24, 87.26),
    "C3": (99.56, 99.88, 49.58, 46.45),
    "C4": (99.10, 99.57, 63.08, 57.81),
}
# Tables 3 and 4: (network, space, ε) -> (φ SB, φ LB).
PAPER_SHARPNESS: dict[tuple[str, str, float], tuple[float, float]] = {
    ("F1", FULL, 1e-3): (1.23, 205.14),
    ("F2", FULL, 1e-3): (1.39, 310.64),
    ("C1", FULL, 1e-3): (28.58, 707.23),
    ("C2", FULL, 1e-3): (8.68, 925.32),
    ("C3", FULL, 1e-3): (29.85, 258.75),
    ("C4", FULL, 1e-3): (12.83, 421.84),
    ("F1", FULL, 5e-4): (0.61, 42.90),
    ("C1", FULL, 5e-4): (7.08, 227.31),
    ("F1", SUBSPACE, 1e-3): (0.11, 9.22),
    ("C1", SUBSPACE, 1e-3): (2.18, 137.25),
}

AGREES = "agrees"
DISAGREES = "disagrees"
INCONCLUSIVE = "inconclusive"
# Half a point: the largest SB–LB training-accuracy difference the paper reports for F1 and C1.
TRAINING_FIT_MARGIN = 0.5


@dataclass(frozen=True)
class Stat:
    """Mean ± sample standard deviation of n values (std None for n < 2)."""

    mean: float
    std: float | None
    n: int

    def show(self, digits: int = 2) -> str:
        if not math.isfinite(self.mean):
            return "n/a"
        if self.std is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def summarize(values: Sequence[float]) -> Stat:
    values = [float(v) for v in values]
    if not values:
        return Stat(math.nan, None, 0)
    std = statistics.stdev(values) if len(values) >= 2 else None
    return Stat(statistics.fmean(values), std, len(values))


# The measures set beside φ at each minimum (batchlab.geometry.curvature_measures), and the
# stability bound of the optimizer that found it (batchlab.geometry.stability_bound).
CURVATURE_FIELDS = ("lambda_max", "trace", "adaptive_sharpness", "stability_bound", "stability_rule")


@dataclass(frozen=True)
class RegimeNumbers:
    """One regime (SB or LB) of one network, per finished run in seed order: accuracies (fractions
    0 … 1), Keskar's φ under the keys (space, ε), and the measures of :data:`CURVATURE_FIELDS`.
    ``seeds`` names each run's seed (empty in records made before seeds were kept: then runs pair
    by position); a φ or measure is None where the point is not at a minimum, and
    ``minimum_notes`` says why ("not at a minimum (‖∇f‖ = …)"; None at a minimum)."""

    batch_size: int
    train_acc: tuple[float, ...]
    test_acc: tuple[float, ...]
    sharpness: Mapping[tuple[str, float], tuple[float | None, ...]] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()
    minimum_notes: tuple[str | None, ...] = ()
    gradient_norms: tuple[float | None, ...] = ()
    measures: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def seed_keys(self) -> tuple[int, ...]:
        """The seed of each run (its position in records that kept no seeds)."""
        return self.seeds or tuple(range(len(self.test_acc)))

    def by_seed(self, values: Sequence[Any]) -> dict[int, float]:
        """``{seed: value}`` for the values that were measured (None and non-finite left out)."""
        return {seed: float(v) for seed, v in zip(self.seed_keys, values)
                if isinstance(v, (int, float)) and math.isfinite(v)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "train_acc": list(self.train_acc),
            "test_acc": list(self.test_acc),
            "sharpness": [
                {"space": space, "epsilon": eps, "values": list(values)}
                for (space, eps), values in sorted(self.sharpness.items())
            ],
            "seeds": list(self.seeds),
            "minimum_notes": list(self.minimum_notes),
            "gradient_norms": list(self.gradient_norms),
            "measures": {name: list(values) for name, values in self.measures.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RegimeNumbers":
        return cls(
            int(data["batch_size"]),
            tuple(data["train_acc"]),
            tuple(data["test_acc"]),
            {(row["space"], float(row["epsilon"])): tuple(row["values"]) for row in data["sharpness"]},
            tuple(data.get("seeds", ())),
            tuple(data.get("minimum_notes", ())),
            tuple(data.get("gradient_norms", ())),
            {name: tuple(values) for name, values in data.get("measures", {}).items()},
        )


def measured(values: Sequence[Any]) -> list[float]:
    """The finite numbers among ``values`` (None marks a point not at a minimum)."""
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


@dataclass(frozen=True)
class NetworkNumbers:
    """Both regimes of one network, with what it was (``paper`` is Keskar's name, e.g. "F1") and
    the one optimizer and hyperparameters both regimes trained with."""

    paper: str
    model: str
    dataset: str
    test_examples: int
    sb: RegimeNumbers
    lb: RegimeNumbers
    optimizer: str = "adam"
    lr: float | None = None
    momentum: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.paper} ({self.model} on {self.dataset})"

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k not in ("sb", "lb")},
                "sb": self.sb.to_dict(), "lb": self.lb.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NetworkNumbers":
        return cls(data["paper"], data["model"], data["dataset"], int(data["test_examples"]),
                   RegimeNumbers.from_dict(data["sb"]), RegimeNumbers.from_dict(data["lb"]),
                   data.get("optimizer", "adam"), data.get("lr"), float(data.get("momentum", 0.0)))


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": list(self.columns), "rows": [list(r) for r in self.rows],
                "caption": self.caption}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Table:
        return cls(data["title"], tuple(data["columns"]), tuple(tuple(r) for r in data["rows"]), data.get("caption", ""))

    def render(self) -> str:
        """Plain-text table with aligned columns."""
        widths = [max(len(c), *(len(r[i]) for r in self.rows)) if self.rows else len(c)
                  for i, c in enumerate(self.columns)]
        lines = [self.title,
                 "  ".join(c.ljust(w) for c, w in zip(self.columns, widths)),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in self.rows]
        if self.caption:
            lines.append(self.caption)
        return "\n".join(lines)


@dataclass(frozen=True)
class Finding:
    """One comparison with the paper: its verdict (agrees / disagrees / inconclusive) and a sentence."""

    network: str
    aspect: str
    verdict: str
    text: str
    ours: float | None = None
    paper: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------- tables


def _percent(values: Sequence[float]) -> Stat:
    return summarize([100.0 * v for v in values])


def accuracy_table(networks: Sequence[NetworkNumbers]) -> Table:
    """Keskar's Table 2 layout, ours (mean ± std over seeds, %) with the paper's value beside each,
    and the paired difference of the test accuracies."""
    rows = []
    for net in networks:
        paper = PAPER_ACCURACY.get(net.paper)
        ours = [_percent(net.sb.train_acc), _percent(net.lb.train_acc), _percent(net.sb.test_acc),
                _percent(net.lb.test_acc)]
        cells = [net.paper, f"{net.model} / {net.dataset}", f"{net.sb.batch_size} / {net.lb.batch_size}",
                 str(min(len(net.sb.test_acc), len(net.lb.test_acc)))]
        for i, stat in enumerate(ours):
            cells += [stat.show(), "—" if paper is None else f"{paper[i]:.2f}"]
        cells.append(_interval_cell(accuracy_difference(net, "test")))
        rows.append(tuple(cells))
    columns = ("network", "model / data", "B SB / LB", "seeds",
               "train SB", "paper", "train LB", "paper", "test SB", "paper", "test LB", "paper",
               "test SB − LB, paired (95 %)")
    return Table(
        "Table 2 — accuracy (%), mean ± std over seeds; Keskar et al.'s value to the right of each",
        columns, tuple(rows),
        "Paper: F1 = fully connected on MNIST, C1 = shallow conv net on CIFAR-10; SB = 256, LB = 10 % of the "
        "training set, Adam, trained until the loss stopped improving, 5 seeds. Ours: SB and LB of a seed start from "
        "the same initial weights with the same optimizer and settings; the last column is the mean per-seed "
        "difference with its 95 % t interval (points).",
    )


def sharpness_keys(networks: Sequence[NetworkNumbers]) -> list[tuple[str, float]]:
    """Every (space, ε) measured for any network: full space first, larger ε first."""
    keys = {key for net in networks for key in (*net.sb.sharpness, *net.lb.sharpness)}
    return sorted(keys, key=lambda k: (k[0] != FULL, k[0], -k[1]))


def minimum_rule_text(fraction: float = 0.01) -> str:
    """The at-a-minimum rule as every table states it."""
    return (f"at a minimum: full-batch ‖∇f‖ ≤ {fraction * 100:g} % of ‖∇f(θ₀)‖, θ₀ the run's initial weights; "
            "other points get no number")


def _at_minimum_count(regime: RegimeNumbers) -> str:
    notes = regime.minimum_notes
    if not notes:
        return "—"
    return f"{sum(note is None for note in notes)} of {len(notes)}"


def sharpness_table(networks: Sequence[NetworkNumbers], fraction: float = 0.01) -> Table:
    """Keskar's Tables 3 and 4 layout: φ of SB and LB minima (mean ± std over the points at a
    minimum), the paper's beside them, the paired difference."""
    rows = []
    for net in networks:
        for space, eps in sharpness_keys([net]):
            sb_values, lb_values = net.sb.sharpness.get((space, eps), ()), net.lb.sharpness.get((space, eps), ())
            sb, lb = summarize(measured(sb_values)), summarize(measured(lb_values))
            paper = PAPER_SHARPNESS.get((net.paper, space, eps))
            ratio = lb.mean / sb.mean if sb.n and lb.n and sb.mean > 0 else math.nan
            rows.append((
                net.paper, "full space" if space == FULL else f"random subspace ({space.removeprefix('random')})",
                f"{eps:g}", f"{_at_minimum_count(net.sb)} / {_at_minimum_count(net.lb)}",
                sb.show(3), "—" if paper is None else f"{paper[0]:.2f}",
                lb.show(3), "—" if paper is None else f"{paper[1]:.2f}",
                _ratio(ratio), "—" if paper is None else _ratio(paper[1] / paper[0]),
                _interval_cell(paired_difference(net.sb, net.lb, sb_values, lb_values), digits=3),
            ))
    columns = ("network", "space", "ε", "at a minimum SB / LB", "φ SB", "paper", "φ LB", "paper", "LB/SB", "paper",
               "φ SB − LB, paired (95 %)")
    return Table(
        "Tables 3 & 4 — sharpness φ (Keskar Metric 2.1, 10 L-BFGS-B iterations from the point, as in the paper), "
        "mean ± std over the seeds at a minimum",
        columns, tuple(rows),
        "φ = 100·(max over the box C_ε of f(x + Ay) − f(x)) / (1 + f(x)), f the training cross-entropy. "
        f"Rule: {minimum_rule_text(fraction)}.",
    )


def _fmt(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if isinstance(value, (int, float)) and math.isfinite(value) else "—"


def minima_table(networks: Sequence[NetworkNumbers], fraction: float = 0.01) -> Table:
    """Every SB and LB point, seed by seed: its accuracies, gradient norm, and at a minimum Keskar's
    φ beside λ_max, the Hessian trace, the stability bound of the optimizer that found it and the
    adaptive sharpness; a point not at a minimum gets the rule's note instead of numbers."""
    rows = []
    for net in networks:
        keys = [key for key in sharpness_keys([net]) if key[0] == FULL]
        for name, regime in (("SB", net.sb), ("LB", net.lb)):
            notes = regime.minimum_notes or (None,) * len(regime.test_acc)
            for i, seed in enumerate(regime.seed_keys):
                grad = regime.gradient_norms[i] if i < len(regime.gradient_norms) else None
                head = (net.paper, str(seed), f"{name} {regime.batch_size}", f"{100 * regime.train_acc[i]:.2f}",
                        f"{100 * regime.test_acc[i]:.2f}", _fmt(grad, 3))
                note = notes[i] if i < len(notes) else None
                if note is not None:
                    rows.append(head + (note,) + ("",) * 5)
                    continue
                phi = "; ".join(f"{_fmt(regime.sharpness[key][i])} (ε = {key[1]:g})" for key in keys
                                if i < len(regime.sharpness[key])) or "—"
                value = {k: (regime.measures.get(k) or (None,) * (i + 1))[i] for k in CURVATURE_FIELDS}
                bound = (_fmt(value["stability_bound"]) if value["stability_bound"] is not None
                         else ("does not apply" if value["stability_rule"] else "—"))
                rows.append(head + (phi, _fmt(value["lambda_max"]), _fmt(value["trace"]), bound,
                                    _fmt(value["adaptive_sharpness"]), ""))
    columns = ("network", "seed", "regime, B", "train %", "test %", "‖∇f‖", "φ (full space)", "λ_max",
               "trace", "bound 2(1 + λ)/η", "adaptive sharpness", "")
    return Table(
        "Each minimum, seed by seed: Keskar's φ beside λ_max, the Hessian trace, the stability bound and the "
        "adaptive sharpness",
        columns, tuple(rows),
        f"Rule: {minimum_rule_text(fraction)}. λ_max by Lanczos, the trace by Hutchinson's estimator, the adaptive "
        "sharpness of Kwon et al. 2021 (unchanged when a layer's weights are multiplied by c and the next layer's "
        "divided by c, which φ and λ_max are not; Dinh et al. 2017). The bound 2(1 + λ)/η is the largest λ_max at "
        "which heavy-ball momentum with the run's η and λ is stable; for Adam it does not apply (its stability "
        "depends on the preconditioned Hessian).",
    )


# The quantities of the paired table: label, how to read them from a regime, unit, scale, digits.
def _paired_quantities(net: NetworkNumbers) -> list[tuple[str, Sequence[Any], Sequence[Any], str, float]]:
    quantities: list[tuple[str, Sequence[Any], Sequence[Any], str, float]] = [
        ("test accuracy", net.sb.test_acc, net.lb.test_acc, " points", 100.0),
        ("training accuracy", net.sb.train_acc, net.lb.train_acc, " points", 100.0),
    ]
    for space, eps in sharpness_keys([net]):
        quantities.append((f"φ ({'full space' if space == FULL else space}, ε = {eps:g})",
                           net.sb.sharpness.get((space, eps), ()), net.lb.sharpness.get((space, eps), ()), "", 1.0))
    for name, label in (("lambda_max", "λ_max"), ("trace", "Hessian trace"), ("adaptive_sharpness", "adaptive sharpness")):
        if measured(net.sb.measures.get(name, ())) or measured(net.lb.measures.get(name, ())):
            quantities.append((label, net.sb.measures.get(name, ()), net.lb.measures.get(name, ()), "", 1.0))
    return quantities


def paired_table(networks: Sequence[NetworkNumbers]) -> Table:
    """SB − LB per quantity, paired by seed: the mean difference, its 95 % t interval, within noise
    or not, and how many paired seeds would resolve it."""
    rows = []
    for net in networks:
        for label, sb_values, lb_values, unit, scale in _paired_quantities(net):
            interval = paired_difference(net.sb, net.lb, [_scaled(v, scale) for v in sb_values],
                                         [_scaled(v, scale) for v in lb_values])
            if interval is None:
                rows.append((net.paper, label, "—", "fewer than 2 pairs", "—", "—"))
                continue
            rows.append((net.paper, label, f"{interval.estimate:+.4g}{unit}", _interval_cell(interval),
                         "within noise" if interval.within_noise else "beyond noise",
                         power_line(interval.estimate, interval.spread, interval.n,
                                    paired=interval.method != "Welch t", unit=unit)))
    return Table(
        "SB − LB, paired by seed (SB and LB of a seed start from the same initial weights)",
        ("network", "quantity", "mean difference", "95 % t interval", "", "power"), tuple(rows),
        "Within noise exactly when the interval contains 0. φ and the curvature measures pair only the seeds whose "
        "SB and LB points are both at a minimum.",
    )


def _scaled(value: Any, scale: float) -> Any:
    return value * scale if isinstance(value, (int, float)) else value


def _ratio(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"×{value:.3g}"


def _interval_cell(interval: Interval | None, digits: int = 3) -> str:
    if interval is None:
        return "—"
    return f"{interval.estimate:+.{digits}g} [{interval.low:+.{digits}g}, {interval.high:+.{digits}g}]"


# -------------------------------------------------------------------------------- verdicts


def paired_difference(sb: RegimeNumbers, lb: RegimeNumbers, sb_values: Sequence[Any],
                      lb_values: Sequence[Any]) -> Interval | None:
    """The interval of SB − LB over seeds (:func:`batchlab.analysis.stats.compare`: paired over the
    seeds both measured, Welch when fewer than two are shared), or None."""
    return compare(sb.by_seed(sb_values), lb.by_seed(lb_values))


def accuracy_difference(net: NetworkNumbers, which: str) -> Interval | None:
    """SB − LB of the ``which`` (train or test) accuracy in points, paired by seed; with one seed a
    side, the binomial interval of the two test accuracies."""
    sb = [100.0 * v for v in getattr(net.sb, f"{which}_acc")]
    lb = [100.0 * v for v in getattr(net.lb, f"{which}_acc")]
    interval = paired_difference(net.sb, net.lb, sb, lb)
    if interval is None and which == "test" and len(sb) == 1 and len(lb) == 1:
        binomial = binomial_interval(sb[0] / 100, lb[0] / 100, max(net.test_examples, 1))
        interval = Interval(100 * binomial.estimate, 100 * binomial.low, 100 * binomial.high, binomial.n,
                            100 * binomial.spread, binomial.method, binomial.confidence, binomial.df)
    return interval


def _noise_text(interval: Interval, unit: str = "", digits: int = 3) -> str:
    over = {"paired t": f" over {interval.n} pairs", "Welch t": f" over {interval.n} runs"}.get(interval.method, "")
    return f"95 % {interval.method} interval [{interval.low:+.{digits}g}, {interval.high:+.{digits}g}]{unit}{over}"


def _power(interval: Interval, unit: str) -> str:
    if interval.method not in ("paired t", "Welch t"):
        return ""
    return "; " + power_line(interval.estimate, interval.spread, interval.n, paired=interval.method == "paired t",
                             unit=unit)


def gap_finding(net: NetworkNumbers) -> Finding:
    """Is the LB minimum's test accuracy lower, and by how much against the paper's gap?"""
    if not net.sb.test_acc or not net.lb.test_acc:
        return Finding(net.paper, "test gap", INCONCLUSIVE, "no finished run in one of the regimes, so no test gap")
    interval = accuracy_difference(net, "test")
    paper = PAPER_ACCURACY.get(net.paper)
    paper_gap = None if paper is None else paper[2] - paper[3]
    paper_text = "" if paper_gap is None else f"; the paper's gap is {paper_gap:.2f} points"
    sb, lb = _percent(net.sb.test_acc), _percent(net.lb.test_acc)
    head = f"test accuracy SB {sb.show()} % vs LB {lb.show()} %"
    if interval is None:
        return Finding(net.paper, "test gap", INCONCLUSIVE, f"{head}: no interval, so no verdict{paper_text}")
    gap = interval.estimate
    noise = _noise_text(interval, " points", 2)
    if not interval.within_noise and gap > 0:
        verdict = AGREES
        size = "" if paper_gap is None else f" (paper: {paper_gap:.2f} points; ours is {_size(gap, paper_gap)})"
        text = f"{head}: LB tests lower by {gap:.2f} points ({noise}), as in the paper{size}"
    elif not interval.within_noise:
        verdict = DISAGREES
        text = f"{head}: LB tests higher by {-gap:.2f} points ({noise}), unlike the paper{paper_text}"
    else:
        verdict = INCONCLUSIVE
        text = f"{head}: a gap of {gap:+.2f} points, within noise ({noise}), so no gap is shown{paper_text}"
        if paper_gap is not None and interval.low <= paper_gap <= interval.high:
            text += ", which this interval cannot tell from ours"
    return Finding(net.paper, "test gap", verdict, text + _power(interval, " points"), gap, paper_gap)


def training_fit_finding(net: NetworkNumbers) -> Finding:
    """Did both regimes fit the training set about equally well (the paper's premise)?

    A difference beyond noise and above :data:`TRAINING_FIT_MARGIN` points is reported, whichever
    regime fit worse."""
    if not net.sb.train_acc or not net.lb.train_acc:
        return Finding(net.paper, "training fit", INCONCLUSIVE, "no finished run in one of the regimes")
    interval = accuracy_difference(net, "train")
    gap = 100.0 * (statistics.fmean(net.sb.train_acc) - statistics.fmean(net.lb.train_acc))
    beyond = abs(gap) > TRAINING_FIT_MARGIN and (interval is None or not interval.within_noise)
    paper = PAPER_ACCURACY.get(net.paper)
    paper_gap = None if paper is None else paper[0] - paper[1]
    sb, lb = _percent(net.sb.train_acc), _percent(net.lb.train_acc)
    head = f"training accuracy SB {sb.show()} % vs LB {lb.show()} %"
    if beyond and gap > 0:
        verdict = DISAGREES
        text = (f"{head}: LB fit the training set {gap:.2f} points worse, so part of any test gap is an "
                "optimization gap (the lecture's first point), not the paper's gap at equal training accuracy")
    elif beyond:
        verdict = DISAGREES
        text = (f"{head}: SB fit the training set {-gap:.2f} points worse, so the comparison is not at equal "
                "training accuracy and favours LB")
    else:
        verdict = AGREES
        text = f"{head}: both fit the training set about equally, as in the paper"
    return Finding(net.paper, "training fit", verdict, text, gap, paper_gap)


def sharpness_findings(net: NetworkNumbers) -> list[Finding]:
    """LB sharper than SB? One finding per (space, ε) measured at minima, paired by seed, its size
    against the paper's ratio."""
    findings = []
    for space, eps in sharpness_keys([net]):
        sb_raw, lb_raw = net.sb.sharpness.get((space, eps), ()), net.lb.sharpness.get((space, eps), ())
        sb_values, lb_values = measured(sb_raw), measured(lb_raw)
        if not sb_values or not lb_values:
            continue
        sb, lb = statistics.fmean(sb_values), statistics.fmean(lb_values)
        ratio = lb / sb if sb > 0 else math.inf if lb > 0 else math.nan
        a, b = net.sb.by_seed(sb_raw), net.lb.by_seed(lb_raw)
        shared = sorted(set(a) & set(b))
        sharper = sum(b[s] > a[s] for s in shared)
        paper = PAPER_SHARPNESS.get((net.paper, space, eps))
        paper_ratio = None if paper is None else paper[1] / paper[0]
        where = "full space" if space == FULL else f"random {space.removeprefix('random')}-dim subspace"
        head = f"sharpness at minima ({where}, ε = {eps:g}) SB {sb:.3g} vs LB {lb:.3g}"
        seeds = f"LB sharper in {sharper} of {len(shared)} seed{'s' if len(shared) != 1 else ''} with both at a minimum"
        size = "" if paper_ratio is None else f" (paper ×{paper_ratio:.3g}; ours is {_size(ratio, paper_ratio)})"
        interval = paired_difference(net.sb, net.lb, sb_raw, lb_raw)
        if interval is None:
            verdict = INCONCLUSIVE
            text = f"{head} (×{ratio:.3g}{size}), {seeds}: too few points at a minimum for an interval"
        elif interval.within_noise:
            verdict = INCONCLUSIVE
            text = (f"{head}: SB − LB = {interval.estimate:+.3g} (×{ratio:.3g}), within noise "
                    f"({_noise_text(interval)}), {seeds}, so neither minimum is shown to be sharper{size}")
        elif interval.estimate < 0:
            verdict = AGREES
            text = f"{head}: LB minima are sharper by ×{ratio:.3g}{size} ({_noise_text(interval)}), {seeds}, as in the paper"
        else:
            verdict = DISAGREES
            text = (f"{head}: LB minima are flatter (×{ratio:.3g}{size}; {_noise_text(interval)}), {seeds}, "
                    "unlike the paper")
        if interval is not None:
            text += _power(interval, "")
        findings.append(Finding(net.paper, f"sharpness {space} {eps:g}", verdict, text, ratio, paper_ratio))
    return findings


def network_findings(net: NetworkNumbers) -> list[Finding]:
    return [gap_finding(net), training_fit_finding(net), *sharpness_findings(net)]


def _size(ours: float, paper: float) -> str:
    """How a measured size compares with the paper's: "about the paper's size" within a factor
    1.25 either way, else "N× the paper's"."""
    if not (math.isfinite(ours) and math.isfinite(paper)) or paper == 0:
        return "not comparable with the paper's"
    factor = ours / paper
    if 0.8 <= factor <= 1.25:
        return "about the paper's size"
    return f"{factor:.2g}× the paper's"


def _count(n: int, singular_verb: str, plural_verb: str) -> str:
    return f"{n} {singular_verb if n == 1 else plural_verb}"


def findings_paragraph(networks: Sequence[NetworkNumbers], findings: Sequence[Finding]) -> str:
    """The automatic verdict: one paragraph per network saying what agreed or disagreed with the
    paper, then a tally; paragraphs are separated by a blank line."""
    sentences = []
    for net in networks:
        own = [f for f in findings if f.network == net.paper]
        seeds = min(len(net.sb.test_acc), len(net.lb.test_acc))
        parts = "; ".join(f.text for f in own)
        optimizer = net.optimizer + ("" if net.lr is None else f" η = {net.lr:g}") + (
            f" λ = {net.momentum:g}" if net.momentum else "")
        minima = ""
        if net.sb.minimum_notes or net.lb.minimum_notes:
            minima = (f"; at a minimum: {_at_minimum_count(net.sb)} SB and {_at_minimum_count(net.lb)} LB points "
                      f"(the others have no sharpness)")
        sentences.append(
            f"{net.label}, SB = {net.sb.batch_size} vs LB = {net.lb.batch_size}, both {optimizer}, {seeds} paired "
            f"seed{'s' if seeds != 1 else ''}{minima}: {parts}."
        )
    checks = [f for f in findings if f.aspect != "training fit"]
    tally = {v: sum(f.verdict == v for f in checks) for v in (AGREES, DISAGREES, INCONCLUSIVE)}
    sentences.append(
        f"In all, {tally[AGREES]} of {len(checks)} comparisons with the paper agree in direction, "
        f"{_count(tally[DISAGREES], 'disagrees', 'disagree')} and "
        f"{_count(tally[INCONCLUSIVE], 'is', 'are')} inconclusive (within noise, or too few points)."
    )
    return "\n\n".join(sentences)
