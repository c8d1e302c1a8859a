"""The large-batch methods side by side: one table, a verdict per method, the papers' claims.

Everything here is pure: per-seed numbers of each method (:class:`MethodNumbers`) become table
rows and sentences, so the rules can be checked on made-up numbers.

**Two gaps, two protocols.** A large batch can test worse than a small one for two reasons, and
the table keeps them apart:

* the **equal-epochs gap** (``lb``: plain LB for the small batch's epochs): LB makes k times fewer
  updates and usually ends at a lower *training* accuracy, so its test deficit is first of all an
  optimization gap — the lecture's "optimization fails" at equal epochs;
* the **generalization gap** (``lb-train-acc``: plain LB trained on until it reaches SB's training
  accuracy, seed by seed, or an update cap): Keskar et al.'s protocol, "at about equal training
  accuracy"; whatever test deficit is left is a generalization gap. A seed that reaches the cap
  below SB's training accuracy leaves the row *not at equal training accuracy*, with no verdict.

Each method is judged against the gap it claims to close (:data:`GAP_OF_METHOD`): the recipes
that keep the epoch budget (Goyal's linear scaling and warm-up, √ scaling, LARS, LAMB, Akiba's
recipe, SWAP) against the equal-epochs gap and the plain LB row; Hoffer et al.'s ghost batch norm
and "train longer", which claim to close the generalization gap, against the generalization gap
and the ``lb-train-acc`` row.

**Verdict rule** (per method m with reference row R — plain LB or LB at SB's training accuracy —
on test accuracy in points, means over seeds):

* the *margin* between two rows a and b is max(2·SE, 0.5 points), SE the standard error of
  mean(a) − mean(b): √(s²_a/n_a + s²_b/n_b) from the seeds' sample standard deviations when
  both have ≥ 2 seeds, else the binomial √(p(1−p)/N_test) of each accuracy (the rule of
  :mod:`batchlab.experiments.gap.tables`); half a point is the smallest difference called real whatever the
  seeds say;
* **no gap to close**: R is within the margin of the small-batch baseline (SB),
  mean(SB) − mean(R) ≤ margin(SB, R);
* **not at equal training accuracy**: m claims the generalization gap and R did not reach SB's
  training accuracy: there is no measured gap to judge against;
* **closes the gap**: mean(m) ≥ mean(SB) − margin(m, SB), i.e. |mean(m) − mean(SB)| below the
  margin, or m better than SB;
* **narrows it**: not closed, but mean(m) − mean(R) > margin(m, R): better than R beyond the
  noise;
* **not here**: neither; also when m is worse than R.
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
# Plain LB trained on until it reaches SB's training accuracy (or an update cap): Keskar's protocol.
LB_TRAIN_KEY = "lb-train-acc"
BASELINES = (SB_KEY, LB_KEY, LB_TRAIN_KEY)
MIN_MARGIN_POINTS = 0.5

# The two gaps and the protocols that measure them.
EQUAL_EPOCHS_GAP = "equal-epochs gap"
GENERALIZATION_GAP = "generalization gap"
# The gap each method claims to close (module docstring); a method not named keeps the epoch budget.
GAP_OF_METHOD: dict[str, str] = {"ghost-bn": GENERALIZATION_GAP, "longer": GENERALIZATION_GAP}
# The row that measures each gap's large-batch side.
REFERENCE_OF_GAP = {EQUAL_EPOCHS_GAP: LB_KEY, GENERALIZATION_GAP: LB_TRAIN_KEY}
# The protocol each row trained under, as the table names it.
PROTOCOL_OF_ROW: dict[str, str] = {
    SB_KEY: "baseline (E epochs)",
    LB_KEY: "equal epochs",
    LB_TRAIN_KEY: "equal training accuracy (SB's)",
    "longer": "equal updates (SB's)",
    "swap": "equal epochs (per worker)",
}
EQUAL_EPOCHS = "equal epochs"

BASELINE = "baseline"
# The verdicts of the two gap rows.
GAP = "a gap"
NO_GAP_FOUND = "no gap beyond the margin"
NOT_AT_EQUAL_TRAIN = "not at equal training accuracy"
CLOSES = "closes the gap"
NARROWS = "narrows it"
NOT_HERE = "not here"
NO_GAP = "no gap to close"
NO_RESULT = "no result"

# What each paper claims, in its own setting (docs/science.md §7).
PAPER_CLAIMS: dict[str, str] = {
    SB_KEY: "—",
    LB_KEY: "the lecture: in the same epochs the large batch trains worse (\"optimization fails\")",
    LB_TRAIN_KEY: "Keskar et al. 2017: LB (10 % of the data) tests 0.2–5.3 points lower at about equal training "
                  "accuracy",
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
    """A method's verdict, the gap it was judged against (``gap``: :data:`EQUAL_EPOCHS_GAP` or
    :data:`GENERALIZATION_GAP`; empty for SB) and the numbers behind it (points; None where not
    defined): against SB, and against the reference row of its gap (``vs_lb``, ``margin_lb``)."""

    key: str
    verdict: str
    text: str
    vs_sb: float | None = None
    margin_sb: float | None = None
    vs_lb: float | None = None
    margin_lb: float | None = None
    gap: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gap_of(key: str) -> str:
    """The gap row ``key`` measures (plain LB, LB at SB's training accuracy) or claims to close."""
    if key == LB_TRAIN_KEY:
        return GENERALIZATION_GAP
    return GAP_OF_METHOD.get(key, EQUAL_EPOCHS_GAP)


def protocol_of_row(key: str) -> str:
    return PROTOCOL_OF_ROW.get(key, EQUAL_EPOCHS)


def margin(a: Sequence[float], b: Sequence[float], test_examples: int) -> float:
    """max(2·SE of mean(a) − mean(b), 0.5) in points (module docstring); inputs are fractions."""
    return max(NOISE_FACTOR * difference_noise(a, b, test_examples), MIN_MARGIN_POINTS)


def _mean_points(values: Sequence[float]) -> float:
    return 100.0 * statistics.fmean(values)


def verdict_for(method: MethodNumbers, sb: MethodNumbers, lb: MethodNumbers, test_examples: int,
                lb_train: MethodNumbers | None = None, missed_target: int = 0) -> Verdict:
    """The module docstring's rule for one row. ``lb`` is plain LB at equal epochs, ``lb_train``
    plain LB trained to SB's training accuracy (None: not run), ``missed_target`` how many of its
    seeds reached the update cap below that accuracy."""
    if method.key == SB_KEY:
        return Verdict(method.key, BASELINE, "the small-batch baseline")
    gap_name = gap_of(method.key)
    reference = lb if gap_name == EQUAL_EPOCHS_GAP else lb_train
    if method.key in (LB_KEY, LB_TRAIN_KEY):
        return _gap_verdict(method, sb, test_examples, gap_name, missed_target if method.key == LB_TRAIN_KEY else 0)
    if not method.test_acc:
        return Verdict(method.key, NO_RESULT, f"{method.label}: no seed finished, so no verdict", gap=gap_name)
    if reference is None or not sb.test_acc or not reference.test_acc:
        return Verdict(method.key, NO_RESULT, f"{method.label}: the {gap_name}'s baselines have no finished seed, "
                       "so no verdict", gap=gap_name)
    if gap_name == GENERALIZATION_GAP and missed_target:
        return Verdict(method.key, NOT_AT_EQUAL_TRAIN, f"{method.label} claims to close the generalization gap, but "
                       "plain LB did not reach SB's training accuracy within its update cap, so that gap was not "
                       "measured", gap=gap_name)
    gap = _mean_points(sb.test_acc) - _mean_points(reference.test_acc)
    gap_margin = margin(sb.test_acc, reference.test_acc, test_examples)
    vs_sb = _mean_points(method.test_acc) - _mean_points(sb.test_acc)
    vs_lb = _mean_points(method.test_acc) - _mean_points(reference.test_acc)
    margin_sb = margin(method.test_acc, sb.test_acc, test_examples)
    margin_lb = margin(method.test_acc, reference.test_acc, test_examples)
    numbers = dict(vs_sb=vs_sb, margin_sb=margin_sb, vs_lb=vs_lb, margin_lb=margin_lb, gap=gap_name)
    if gap <= gap_margin:
        return Verdict(method.key, NO_GAP, f"{method.label} tests {vs_sb:+.2f} points against SB, but with no "
                       f"{gap_name} to close there is no verdict on closing it", **numbers)
    if vs_sb >= -margin_sb:
        where = "above" if vs_sb > margin_sb else "within the margin of"
        return Verdict(method.key, CLOSES, f"{method.label} tests {vs_sb:+.2f} points against SB, {where} SB "
                       f"(margin ±{margin_sb:.2f}): it closes the {gap:.2f}-point {gap_name}", **numbers)
    if vs_lb > margin_lb:
        return Verdict(method.key, NARROWS, f"{method.label} tests {vs_lb:+.2f} points above {reference.label} "
                       f"(margin ±{margin_lb:.2f}) but {-vs_sb:.2f} below SB: it narrows the {gap:.2f}-point "
                       f"{gap_name}",
                       **numbers)
    return Verdict(method.key, NOT_HERE, f"{method.label} tests {vs_lb:+.2f} points against {reference.label} "
                   f"(margin ±{margin_lb:.2f}) and {vs_sb:+.2f} against SB: it does not close the {gap:.2f}-point "
                   f"{gap_name} here", **numbers)


def _gap_verdict(row: MethodNumbers, sb: MethodNumbers, test_examples: int, gap_name: str,
                 missed_target: int) -> Verdict:
    """Plain LB's row at equal epochs (the equal-epochs gap, with both training accuracies: mostly
    an optimization gap when LB fits the training set worse) or at SB's training accuracy (the
    generalization gap; none measured when a seed missed that accuracy)."""
    if not row.test_acc or not sb.test_acc:
        return Verdict(row.key, NO_RESULT, f"{row.label}: no seed finished, so the {gap_name} was not measured",
                       gap=gap_name)
    if missed_target:
        return Verdict(row.key, NOT_AT_EQUAL_TRAIN, f"{row.label}: {missed_target} seed"
                       f"{'s' if missed_target != 1 else ''} reached the update cap below SB's training accuracy, "
                       "so the generalization gap was not measured", gap=gap_name)
    vs_sb = _mean_points(row.test_acc) - _mean_points(sb.test_acc)
    gap_margin = margin(sb.test_acc, row.test_acc, test_examples)
    word = GAP if -vs_sb > gap_margin else NO_GAP_FOUND
    fits = (f"training accuracy {_mean_points(row.train_acc):.2f} % after {statistics.fmean(row.updates):.0f} updates "
            f"against SB's {_mean_points(sb.train_acc):.2f} % after {statistics.fmean(sb.updates):.0f}")
    if gap_name == EQUAL_EPOCHS_GAP:
        train_gap = _mean_points(sb.train_acc) - _mean_points(row.train_acc)
        kind = ("mostly an optimization gap: LB fits the training set worse in the same epochs"
                if train_gap > margin(sb.train_acc, row.train_acc, test_examples) else
                "at about equal training accuracy, so a generalization gap")
        found = f"a {-vs_sb:.2f}-point equal-epochs gap ({kind})" if word == GAP else "no equal-epochs gap beyond it"
        text = (f"Plain LB at equal epochs tests {vs_sb:+.2f} points against SB (margin ±{gap_margin:.2f}), "
                f"{fits}: {found}")
    else:
        found = (f"a {-vs_sb:.2f}-point generalization gap, as Keskar et al. report" if word == GAP else
                 "no generalization gap beyond the margin, against Keskar et al.'s claim")
        text = (f"Plain LB trained to SB's training accuracy tests {vs_sb:+.2f} points against SB "
                f"(margin ±{gap_margin:.2f}), {fits}: {found}")
    return Verdict(row.key, word, text, vs_sb=vs_sb, margin_sb=gap_margin, gap=gap_name)


def verdicts(methods: Sequence[MethodNumbers], test_examples: int, missed_target: int = 0) -> list[Verdict]:
    """A verdict for every row; needs the ``sb`` and ``lb`` rows (``lb-train-acc`` when present is
    the generalization gap's reference; ``missed_target``: its seeds that stopped below SB's
    training accuracy)."""
    by_key = {m.key: m for m in methods}
    if SB_KEY not in by_key or LB_KEY not in by_key:
        raise ValueError("the table needs both the small-batch (sb) and the plain large-batch (lb) rows")
    return [verdict_for(m, by_key[SB_KEY], by_key[LB_KEY], test_examples, by_key.get(LB_TRAIN_KEY), missed_target)
            for m in methods]


def _stat_points(values: Sequence[float]) -> str:
    return summarize([100.0 * v for v in values]).show()


def _mean_text(values: Sequence[float], digits: str) -> str:
    stat = summarize(values)
    return "n/a" if not math.isfinite(stat.mean) else format(stat.mean, digits)


def methods_table(methods: Sequence[MethodNumbers], found: Sequence[Verdict], *, setting: str) -> Table:
    """One row per method: B, the protocol it trained under, epochs, updates, training and test
    accuracy (mean ± std over seeds, %), test accuracy against SB, Keskar sharpness φ, wall time,
    the gap it is judged against, verdict and the paper's claim."""
    by_key = {v.key: v for v in found}
    rows = []
    for method in methods:
        verdict = by_key[method.key]
        seeds = f"{len(method.test_acc)}" + (f" (+{method.failed} failed)" if method.failed else "")
        rows.append((
            method.label, str(method.batch_size), protocol_of_row(method.key), _mean_text(method.epochs, ".3g"),
            _mean_text(method.updates, ".0f"), seeds, _stat_points(method.train_acc), _stat_points(method.test_acc),
            "—" if verdict.vs_sb is None or method.key == SB_KEY else f"{verdict.vs_sb:+.2f}",
            summarize(method.sharpness).show(3) if method.sharpness else "n/a",
            _mean_text(method.seconds, ".1f"), verdict.gap or "—", verdict.verdict,
            PAPER_CLAIMS.get(method.key, "—"),
        ))
    columns = ("method", "B", "protocol", "epochs", "updates", "seeds", "train acc %", "test acc %", "Δ test vs SB",
               "sharpness φ", "time s", "judged against", "verdict", "paper's claim (their setting)")
    return Table(
        "Large batches without the gap — mean ± std over seeds",
        columns, tuple(rows),
        f"{setting}. Two gaps: the equal-epochs gap (plain LB for SB's epochs: fewer updates, mostly an "
        "optimization gap) and the generalization gap (plain LB trained on to SB's training accuracy, Keskar et al.'s "
        "protocol). Each method is judged against the gap it claims to close: closes the gap when its test accuracy "
        "is within max(2·SE, 0.5 points) of SB or above it; narrows it when above that gap's LB row by more than "
        "that margin; not here otherwise. φ = Keskar's sharpness (full space) of the minimum found; time = training "
        "seconds per run (SWAP: all three phases, the W copies one after another).",
    )


def verdict_paragraph(found: Sequence[Verdict]) -> str:
    """The automatic summary: the two gaps, then each method's verdict, then a tally."""
    sentences = [v.text for v in found if v.verdict not in (BASELINE,)]
    judged = [v for v in found if v.key not in BASELINES]
    names = (CLOSES, NARROWS, NOT_HERE, NO_GAP, NOT_AT_EQUAL_TRAIN, NO_RESULT)
    tally = {name: sum(v.verdict == name for v in judged) for name in names}
    counted = ", ".join(f"{n} {name}" for name, n in tally.items() if n)
    sentences.append(f"In all, of {len(judged)} methods: {counted or 'none judged'}")
    return ". ".join(s.rstrip(".") for s in sentences) + "."
