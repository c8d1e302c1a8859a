"""The large-batch methods side by side: one table, a verdict per method, the papers' claims.

Everything here is pure: per-seed numbers of each method (:class:`MethodNumbers`) become table
rows and sentences, so the rules can be checked on made-up numbers.

**Verdict rule** (per method m, on test accuracy in points, means over seeds):

* the *margin* between two rows a and b is max(2·SE, 0.5 points), SE the standard error of
  mean(a) − mean(b): √(s²_a/n_a + s²_b/n_b) from the seeds' sample standard deviations when
  both have ≥ 2 seeds, else the binomial √(p(1−p)/N_test) of each accuracy (the rule of
  :mod:`batchlab.experiments.gap.tables`); half a point is the smallest difference called real whatever the
  seeds say;
* **no gap to close**: plain large batch (LB) is within the margin of the small-batch baseline
  (SB), mean(SB) − mean(LB) ≤ margin(SB, LB); every method then gets this verdict;
* **closes the gap**: mean(m) ≥ mean(SB) − margin(m, SB), i.e. |mean(m) − mean(SB)| below the
  margin, or m better than SB;
* **narrows it**: not closed, but mean(m) − mean(LB) > margin(m, LB): better than plain LB
  beyond the noise;
* **not here**: neither; also when m is worse than plain LB.
* **no result**: no seed of m finished (every run diverged or stopped).

Training accuracy is shown beside it and not judged: a method that tests like SB while fitting
the training set worse is reported as it is.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# The gap experiment's standard error of a difference of two means (same rule, written once).
from batchlab.experiments.gap.tables import NOISE_FACTOR, Table, difference_noise, summarize

SB_KEY = "sb"
LB_KEY = "lb"
MIN_MARGIN_POINTS = 0.5

BASELINE = "baseline"
THE_GAP = "the gap"
CLOSES = "closes the gap"
NARROWS = "narrows it"
NOT_HERE = "not here"
NO_GAP = "no gap to close"
NO_RESULT = "no result"

# What each paper claims, in its own setting (docs/science.md §7).
PAPER_CLAIMS: dict[str, str] = {
    SB_KEY: "—",
    LB_KEY: "Keskar et al. 2017: LB (10 % of the data) tests 0.2–5.3 points lower at about equal training accuracy",
    "linear-warmup": "Goyal et al. 2017: ResNet-50/ImageNet at B = 8k within 0.14 % top-1 error of B = 256 "
                     "(23.60 %); worse beyond 8k",
    "sqrt": "Hoffer et al. 2017: √(B ratio) scaling keeps the update noise; with ghost BN and longer training "
            "the gap closes",
    "lars": "You et al. 2017: AlexNet to B = 8K, ResNet-50 to B = 32K at the baseline's accuracy",
    "lamb": "You et al. 2020: BERT pre-training at B = 32k (76 minutes) at the baseline's accuracy",
    "ghost-bn": "Hoffer et al. 2017: batch norm over small ghost batches is part of closing the gap",
    "akiba": "Akiba et al. 2017: ResNet-50/ImageNet at B = 32k, 74.9 % top-1 in 15 minutes",
    "swap": "Gupta et al. 2020: generalizes like small-batch training at close to large-batch speed",
    "longer": "Hoffer et al. 2017: with as many updates as the small batch, the gap closes",
}


@dataclass(frozen=True)
class MethodNumbers:
    """One row: a method's per-seed results (accuracies as fractions 0 … 1), over its finished
    seeds; ``failed`` counts seeds that did not finish (diverged or stopped)."""

    key: str
    label: str
    batch_size: int
    epochs: tuple[float, ...]
    updates: tuple[int, ...]
    train_acc: tuple[float, ...]
    test_acc: tuple[float, ...]
    sharpness: tuple[float, ...]
    seconds: tuple[float, ...]
    failed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MethodNumbers":
        return cls(data["key"], data["label"], int(data["batch_size"]),
                   *(tuple(data[k]) for k in ("epochs", "updates", "train_acc", "test_acc", "sharpness", "seconds")),
                   failed=int(data.get("failed", 0)))


@dataclass(frozen=True)
class Verdict:
    """A method's verdict and the numbers behind it (points; None where not defined)."""

    key: str
    verdict: str
    text: str
    vs_sb: float | None = None
    margin_sb: float | None = None
    vs_lb: float | None = None
    margin_lb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def margin(a: Sequence[float], b: Sequence[float], test_examples: int) -> float:
    """max(2·SE of mean(a) − mean(b), 0.5) in points (module docstring); inputs are fractions."""
    return max(NOISE_FACTOR * difference_noise(a, b, test_examples), MIN_MARGIN_POINTS)


def _mean_points(values: Sequence[float]) -> float:
    return 100.0 * statistics.fmean(values)


def verdict_for(method: MethodNumbers, sb: MethodNumbers, lb: MethodNumbers, test_examples: int) -> Verdict:
    """The module docstring's rule for one method (SB and LB themselves get their own labels)."""
    if method.key == SB_KEY:
        return Verdict(method.key, BASELINE, "the small-batch baseline")
    if not method.test_acc:
        return Verdict(method.key, NO_RESULT, f"{method.label}: no seed finished, so no verdict")
    if not sb.test_acc or not lb.test_acc:
        return Verdict(method.key, NO_RESULT, f"{method.label}: a baseline has no finished seed, so no verdict")
    gap = _mean_points(sb.test_acc) - _mean_points(lb.test_acc)
    gap_margin = margin(sb.test_acc, lb.test_acc, test_examples)
    vs_sb = _mean_points(method.test_acc) - _mean_points(sb.test_acc)
    vs_lb = _mean_points(method.test_acc) - _mean_points(lb.test_acc)
    margin_sb = margin(method.test_acc, sb.test_acc, test_examples)
    margin_lb = margin(method.test_acc, lb.test_acc, test_examples)
    numbers = dict(vs_sb=vs_sb, margin_sb=margin_sb, vs_lb=vs_lb, margin_lb=margin_lb)
    if method.key == LB_KEY:
        shown = "a gap to close" if gap > gap_margin else "no gap beyond the margin"
        return Verdict(method.key, THE_GAP, f"plain LB tests {vs_sb:+.2f} points against SB "
                       f"(margin ±{gap_margin:.2f}): {shown}", **numbers)
    if gap <= gap_margin:
        return Verdict(method.key, NO_GAP, f"{method.label} tests {vs_sb:+.2f} points against SB, but with no gap "
                       "to close there is no verdict on closing it", **numbers)
    if vs_sb >= -margin_sb:
        where = "above" if vs_sb > margin_sb else "within the margin of"
        return Verdict(method.key, CLOSES, f"{method.label} tests {vs_sb:+.2f} points against SB, {where} SB "
                       f"(margin ±{margin_sb:.2f}): it closes the {gap:.2f}-point gap", **numbers)
    if vs_lb > margin_lb:
        return Verdict(method.key, NARROWS, f"{method.label} tests {vs_lb:+.2f} points above plain LB "
                       f"(margin ±{margin_lb:.2f}) but {-vs_sb:.2f} below SB: it narrows the {gap:.2f}-point gap",
                       **numbers)
    return Verdict(method.key, NOT_HERE, f"{method.label} tests {vs_lb:+.2f} points against plain LB "
                   f"(margin ±{margin_lb:.2f}) and {vs_sb:+.2f} against SB: it does not close the {gap:.2f}-point gap "
                   "here", **numbers)


def verdicts(methods: Sequence[MethodNumbers], test_examples: int) -> list[Verdict]:
    """A verdict for every row; needs the ``sb`` and ``lb`` rows."""
    by_key = {m.key: m for m in methods}
    if SB_KEY not in by_key or LB_KEY not in by_key:
        raise ValueError("the table needs both the small-batch (sb) and the plain large-batch (lb) rows")
    return [verdict_for(m, by_key[SB_KEY], by_key[LB_KEY], test_examples) for m in methods]


def _stat_points(values: Sequence[float]) -> str:
    return summarize([100.0 * v for v in values]).show()


def _mean_text(values: Sequence[float], digits: str) -> str:
    stat = summarize(values)
    return "n/a" if not math.isfinite(stat.mean) else format(stat.mean, digits)


def methods_table(methods: Sequence[MethodNumbers], found: Sequence[Verdict], *, setting: str) -> Table:
    """One row per method: B, epochs, updates, training and test accuracy (mean ± std over seeds,
    %), test accuracy against SB, Keskar sharpness φ, wall time, verdict and the paper's claim."""
    by_key = {v.key: v for v in found}
    rows = []
    for method in methods:
        verdict = by_key[method.key]
        seeds = f"{len(method.test_acc)}" + (f" (+{method.failed} failed)" if method.failed else "")
        rows.append((
            method.label, str(method.batch_size), _mean_text(method.epochs, ".3g"), _mean_text(method.updates, ".0f"),
            seeds, _stat_points(method.train_acc), _stat_points(method.test_acc),
            "—" if verdict.vs_sb is None or method.key == SB_KEY else f"{verdict.vs_sb:+.2f}",
            summarize(method.sharpness).show(3) if method.sharpness else "n/a",
            _mean_text(method.seconds, ".1f"), verdict.verdict, PAPER_CLAIMS.get(method.key, "—"),
        ))
    columns = ("method", "B", "epochs", "updates", "seeds", "train acc %", "test acc %", "Δ test vs SB",
               "sharpness φ", "time s", "verdict", "paper's claim (their setting)")
    return Table(
        "Large batches without the gap — mean ± std over seeds",
        columns, tuple(rows),
        f"{setting}. Verdict: closes the gap when the test accuracy is within max(2·SE, 0.5 points) of SB or above "
        "it; narrows it when above plain LB by more than that margin; not here otherwise. φ = Keskar's sharpness "
        "(full space) of the minimum found; time = training seconds per run (SWAP: all three phases, the W "
        "copies one after another).",
    )


def verdict_paragraph(found: Sequence[Verdict]) -> str:
    """The automatic summary: the gap, then each method's verdict, then a tally."""
    sentences = [v.text for v in found if v.verdict not in (BASELINE,)]
    judged = [v for v in found if v.verdict in (CLOSES, NARROWS, NOT_HERE, NO_GAP, NO_RESULT)]
    tally = {name: sum(v.verdict == name for v in judged) for name in (CLOSES, NARROWS, NOT_HERE, NO_GAP, NO_RESULT)}
    counted = ", ".join(f"{n} {name}" for name, n in tally.items() if n)
    sentences.append(f"In all, of {len(judged)} methods: {counted or 'none judged'}")
    return ". ".join(s.rstrip(".") for s in sentences) + "."
