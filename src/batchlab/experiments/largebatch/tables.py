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

**Paired seeds.** Every row of seed s trains a model built right after ``torch.manual_seed(s)``
(:func:`batchlab.training.loop.initial_model_and_optimizer`): ghost BN and Akiba's recipe swap the
batch-norm layers after that, keeping their parameters; SWAP's phase 1 is such a run and its
phase 2 starts from phase 1's weights. So all rows of a seed start from the same initial weights
(and train on the same data), and every comparison is **paired by seed**
(:func:`batchlab.analysis.stats.compare`): the mean of the per-seed differences of test accuracy,
in points, with its 95 % t interval d̄ ± t_{0.975, n−1}·s_d/√n over the n seeds both rows
finished; Welch's interval when they share fewer than two seeds (and records written before the
seeds were kept, where a failed seed leaves the pairs unknown); none when one of them has a single
finished seed. A difference is **beyond noise** when its interval excludes 0, **within noise**
when it contains 0. Failed seeds (diverged, failed to train, stopped) are left out of every
mean and interval and counted in the table's seed column; a seed that failed in one row drops
out of that row's pairs only.

**Verdict rule.** For a gap row R (plain LB at equal epochs, or LB at SB's training accuracy),
with G the interval of SB − R:

* **a gap**: G lies above 0 (low > 0); **no gap beyond noise** otherwise (G contains 0, or R
  tests better);
* **one seed: no interval**: SB or R has a single finished seed (no verdict);
* **not at equal training accuracy**: the generalization gap's row, when a seed reached its
  update cap below SB's training accuracy (no verdict);
* the equal-epochs row is called *mostly an optimization gap* when the interval of SB − LB
  *training* accuracy also lies above 0.

For a method m judged against the gap R measures (its reference row), with intervals G = SB − R,
S = m − SB and L = m − R:

* **no result**: no seed of m (or of SB or R) finished;
* **not at equal training accuracy**: m claims the generalization gap and R did not reach SB's
  training accuracy;
* **one seed: no interval**: G, S or L has no interval (a single finished seed somewhere);
* **no gap to close**: G does not lie above 0;
* otherwise, by where S and L lie:

  ================  ===================  ==================
  L (m − R)         S (m − SB)           verdict
  ================  ===================  ==================
  above 0           contains 0 or above  **closes the gap**
  above 0           below 0              **narrows it**
  contains 0/below  below 0              **not here**
  contains 0/below  contains 0 or above  **unresolved**
  ================  ===================  ==================

  ("above 0": low > 0; "below 0": high < 0.) *Unresolved* is a method within noise of SB that is
  not beyond noise above R either: its seeds cannot tell whether it closes the gap.

Where a difference is within noise, its power line says how many paired seeds would resolve it
at the spread measured (:func:`batchlab.analysis.stats.power_line`).

Training accuracy is shown beside it and not judged: a method that tests like SB while fitting
the training set worse is reported as it is.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from batchlab.analysis.stats import PAIRED, Interval, compare, power_line, welch_interval
from batchlab.experiments.gap.tables import Table, summarize

SB_KEY = "sb"
LB_KEY = "lb"
# Plain LB trained on until it reaches SB's training accuracy (or an update cap): Keskar's protocol.
LB_TRAIN_KEY = "lb-train-acc"
BASELINES = (SB_KEY, LB_KEY, LB_TRAIN_KEY)

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
NO_GAP_FOUND = "no gap beyond noise"
NOT_AT_EQUAL_TRAIN = "not at equal training accuracy"
# The verdicts of the methods (module docstring).
CLOSES = "closes the gap"
NARROWS = "narrows it"
NOT_HERE = "not here"
UNRESOLVED = "unresolved"
NO_GAP = "no gap to close"
NO_RESULT = "no result"
# Any row: a single finished seed on one side of a comparison gives no interval, so no verdict.
NO_INTERVAL = "one seed: no interval"

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
    seeds; ``seeds`` names the seed of each (empty in records made before seeds were kept);
    ``failed`` counts seeds that did not finish (diverged or stopped)."""

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
    seeds: tuple[int, ...] = ()

    @property
    def seed_keys(self) -> tuple[int, ...] | None:
        """The seed of each finished run. A record without seeds ran seeds 0, 1, … in order, so
        its positions are its seeds when none failed; with a failed seed they are unknown (None)."""
        if self.seeds:
            return self.seeds
        return tuple(range(len(self.test_acc))) if not self.failed else None

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MethodNumbers":
        return cls(data["key"], data["label"], int(data["batch_size"]),
                   *(tuple(data[k]) for k in ("epochs", "updates", "train_acc", "test_acc", "sharpness", "seconds")),
                   failed=int(data.get("failed", 0)), seeds=tuple(int(s) for s in data.get("seeds", ())))


@dataclass(frozen=True)
class Verdict:
    """A row's verdict, the gap it was judged against (``gap``: :data:`EQUAL_EPOCHS_GAP` or
    :data:`GENERALIZATION_GAP`; empty for SB) and the intervals behind it, in points of test
    accuracy (None where not defined): ``vs_sb`` the row − SB, ``vs_lb`` the row − the reference
    row of its gap, ``gap_size`` SB − that reference row; ``power`` the power lines of the
    differences left within noise."""

    key: str
    verdict: str
    text: str
    vs_sb: Interval | None = None
    vs_lb: Interval | None = None
    gap_size: Interval | None = None
    gap: str = ""
    power: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("vs_sb", "vs_lb", "gap_size"):
            data[name] = None if data[name] is None else data[name].to_dict()
        data["power"] = list(self.power)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Verdict":
        """The inverse of :meth:`to_dict`; a record written under the earlier margin rule (plain
        numbers, no intervals) keeps its verdict and text, with no intervals."""
        intervals = {name: _interval_from(data.get(name)) for name in ("vs_sb", "vs_lb", "gap_size")}
        return cls(data["key"], data["verdict"], data["text"], gap=data.get("gap", ""),
                   power=tuple(data.get("power", ())), **intervals)


def _interval_from(data: Any) -> Interval | None:
    if not isinstance(data, Mapping):
        return None
    names = {f.name for f in fields(Interval)}
    return Interval(**{k: v for k, v in data.items() if k in names})


def gap_of(key: str) -> str:
    """The gap row ``key`` measures (plain LB, LB at SB's training accuracy) or claims to close."""
    if key == LB_TRAIN_KEY:
        return GENERALIZATION_GAP
    return GAP_OF_METHOD.get(key, EQUAL_EPOCHS_GAP)


def protocol_of_row(key: str) -> str:
    return PROTOCOL_OF_ROW.get(key, EQUAL_EPOCHS)


def difference(a: MethodNumbers, b: MethodNumbers, field_name: str = "test_acc") -> Interval | None:
    """The interval of row a − row b of ``field_name`` (an accuracy), in points: paired by seed
    when both rows know their seeds (:func:`batchlab.analysis.stats.compare`, Welch below two
    shared seeds), Welch when one does not, None with a single seed a side (module docstring)."""
    values_a = [100.0 * v for v in getattr(a, field_name)]
    values_b = [100.0 * v for v in getattr(b, field_name)]
    keys_a, keys_b = a.seed_keys, b.seed_keys
    if keys_a is not None and keys_b is not None:
        return compare(dict(zip(keys_a, values_a)), dict(zip(keys_b, values_b)))
    if len(values_a) >= 2 and len(values_b) >= 2:
        return welch_interval(values_a, values_b)
    return None


def above(interval: Interval) -> bool:
    """Beyond noise above 0: the whole interval is positive."""
    return interval.low > 0


def below(interval: Interval) -> bool:
    """Beyond noise below 0: the whole interval is negative."""
    return interval.high < 0


def interval_text(interval: Interval) -> str:
    """``+1.20 points (95 % paired t interval [-0.30, +2.70] over 3 pairs)``."""
    over = f" over {interval.n} pairs" if interval.method == PAIRED else f" over {interval.n} runs"
    return (f"{interval.estimate:+.2f} points ({interval.confidence * 100:g} % {interval.method} interval "
            f"[{interval.low:+.2f}, {interval.high:+.2f}]{over})")


def interval_cell(interval: Interval | None) -> str:
    """A table cell: ``+1.20 [-0.30, +2.70]`` (points), or — without an interval."""
    if interval is None:
        return "—"
    return f"{interval.estimate:+.2f} [{interval.low:+.2f}, {interval.high:+.2f}]"


def power_of(interval: Interval, against: str) -> tuple[str, ...]:
    """The power line of a difference within noise (:func:`batchlab.analysis.stats.power_line`),
    prefixed by what it compares; nothing for a difference beyond noise."""
    if not interval.within_noise:
        return ()
    return (f"{against}: " + power_line(interval.estimate, interval.spread, interval.n,
                                        paired=interval.method == PAIRED, unit=" points", digits=2),)


def _seed_count(row: MethodNumbers) -> str:
    failed = f", {row.failed} failed seed{'s' if row.failed != 1 else ''} left out" if row.failed else ""
    return f"{len(row.test_acc)} finished seed{'s' if len(row.test_acc) != 1 else ''}{failed}"


def _no_interval(row: MethodNumbers, others: Sequence[MethodNumbers], gap_name: str, **numbers: Any) -> Verdict:
    counts = "; ".join(f"{r.label}: {_seed_count(r)}" for r in (row, *others))
    return Verdict(row.key, NO_INTERVAL, f"{row.label}: one seed on a side of a comparison ({counts}), so no "
                   "interval and no verdict", gap=gap_name, **numbers)


def verdict_for(method: MethodNumbers, sb: MethodNumbers, lb: MethodNumbers, lb_train: MethodNumbers | None = None,
                missed_target: int = 0) -> Verdict:
    """The module docstring's rule for one row. ``lb`` is plain LB at equal epochs, ``lb_train``
    plain LB trained to SB's training accuracy (None: not run), ``missed_target`` how many of its
    seeds reached the update cap below that accuracy."""
    if method.key == SB_KEY:
        return Verdict(method.key, BASELINE, "the small-batch baseline")
    gap_name = gap_of(method.key)
    reference = lb if gap_name == EQUAL_EPOCHS_GAP else lb_train
    if method.key in (LB_KEY, LB_TRAIN_KEY):
        return _gap_verdict(method, sb, gap_name, missed_target if method.key == LB_TRAIN_KEY else 0)
    if not method.test_acc:
        return Verdict(method.key, NO_RESULT, f"{method.label}: no seed finished ({method.failed} failed), so no "
                       "verdict", gap=gap_name)
    if reference is None or not sb.test_acc or not reference.test_acc:
        return Verdict(method.key, NO_RESULT, f"{method.label}: the {gap_name}'s baselines have no finished seed, "
                       "so no verdict", gap=gap_name)
    if gap_name == GENERALIZATION_GAP and missed_target:
        return Verdict(method.key, NOT_AT_EQUAL_TRAIN, f"{method.label} claims to close the generalization gap, but "
                       "plain LB did not reach SB's training accuracy within its update cap, so that gap was not "
                       "measured", gap=gap_name)
    gap_size, vs_sb, vs_lb = difference(sb, reference), difference(method, sb), difference(method, reference)
    numbers = dict(vs_sb=vs_sb, vs_lb=vs_lb, gap_size=gap_size)
    if gap_size is None or vs_sb is None or vs_lb is None:
        return _no_interval(method, (sb, reference), gap_name, **numbers)
    power = power_of(vs_sb, "against SB") + power_of(vs_lb, f"against {reference.label}")
    numbers.update(gap=gap_name, power=power)
    seeds = f" ({method.failed} failed seed{'s' if method.failed != 1 else ''} left out)" if method.failed else ""
    against = (f"{method.label}{seeds} tests {interval_text(vs_sb)} against SB and {interval_text(vs_lb)} against "
               f"{reference.label}")
    if not above(gap_size):
        return Verdict(method.key, NO_GAP, f"{against}, but SB − {reference.label} is {interval_text(gap_size)}: "
                       f"with no {gap_name} beyond noise there is no verdict on closing it", **numbers)
    gap_words = f"the {gap_size.estimate:.2f}-point {gap_name}"
    if above(vs_lb) and not below(vs_sb):
        return Verdict(method.key, CLOSES, f"{against}: beyond noise above {reference.label} and not below SB, "
                       f"it closes {gap_words}", **numbers)
    if above(vs_lb):
        return Verdict(method.key, NARROWS, f"{against}: beyond noise above {reference.label} but below SB, it "
                       f"narrows {gap_words}", **numbers)
    if below(vs_sb):
        return Verdict(method.key, NOT_HERE, f"{against}: below SB and not beyond noise above {reference.label}, "
                       f"it does not close {gap_words} here", **numbers)
    return Verdict(method.key, UNRESOLVED, f"{against}: within noise of SB but not beyond noise above "
                   f"{reference.label}, so its seeds cannot tell whether it closes {gap_words}", **numbers)


def _gap_verdict(row: MethodNumbers, sb: MethodNumbers, gap_name: str, missed_target: int) -> Verdict:
    """Plain LB's row at equal epochs (the equal-epochs gap, with both training accuracies: mostly
    an optimization gap when LB fits the training set worse beyond noise) or at SB's training
    accuracy (the generalization gap; none measured when a seed missed that accuracy)."""
    if not row.test_acc or not sb.test_acc:
        return Verdict(row.key, NO_RESULT, f"{row.label}: no seed finished, so the {gap_name} was not measured",
                       gap=gap_name)
    if missed_target:
        return Verdict(row.key, NOT_AT_EQUAL_TRAIN, f"{row.label}: {missed_target} seed"
                       f"{'s' if missed_target != 1 else ''} reached the update cap below SB's training accuracy, "
                       "so the generalization gap was not measured", gap=gap_name)
    vs_sb, gap_size = difference(row, sb), difference(sb, row)
    if vs_sb is None or gap_size is None:
        return _no_interval(row, (sb,), gap_name, vs_sb=vs_sb, gap_size=gap_size)
    power = power_of(vs_sb, "against SB")
    word = GAP if above(gap_size) else NO_GAP_FOUND
    fits = (f"training accuracy {_mean_points(row.train_acc):.2f} % after {statistics.fmean(row.updates):.0f} updates "
            f"against SB's {_mean_points(sb.train_acc):.2f} % after {statistics.fmean(sb.updates):.0f}")
    seeds = f" ({row.failed} failed seed{'s' if row.failed != 1 else ''} left out)" if row.failed else ""
    if gap_name == EQUAL_EPOCHS_GAP:
        train_gap = difference(sb, row, "train_acc")
        kind = ("mostly an optimization gap: LB fits the training set worse in the same epochs"
                if train_gap is not None and above(train_gap) else
                "LB fits the training set no worse beyond noise, so a generalization gap")
        found = f"a {gap_size.estimate:.2f}-point equal-epochs gap ({kind})" if word == GAP else \
            "no equal-epochs gap beyond noise"
        text = f"Plain LB at equal epochs{seeds} tests {interval_text(vs_sb)} against SB, {fits}: {found}"
    else:
        found = (f"a {gap_size.estimate:.2f}-point generalization gap, as Keskar et al. report" if word == GAP else
                 "no generalization gap beyond noise, against Keskar et al.'s claim")
        text = (f"Plain LB trained to SB's training accuracy{seeds} tests {interval_text(vs_sb)} against SB, "
                f"{fits}: {found}")
    return Verdict(row.key, word, text, vs_sb=vs_sb, gap_size=gap_size, gap=gap_name, power=power)


def _mean_points(values: Sequence[float]) -> float:
    return 100.0 * statistics.fmean(values)


def verdicts(methods: Sequence[MethodNumbers], missed_target: int = 0) -> list[Verdict]:
    """A verdict for every row; needs the ``sb`` and ``lb`` rows (``lb-train-acc`` when present is
    the generalization gap's reference; ``missed_target``: its seeds that stopped below SB's
    training accuracy)."""
    by_key = {m.key: m for m in methods}
    if SB_KEY not in by_key or LB_KEY not in by_key:
        raise ValueError("the table needs both the small-batch (sb) and the plain large-batch (lb) rows")
    return [verdict_for(m, by_key[SB_KEY], by_key[LB_KEY], by_key.get(LB_TRAIN_KEY), missed_target)
            for m in methods]


def _stat_points(values: Sequence[float]) -> str:
    return summarize([100.0 * v for v in values]).show()


def _mean_text(values: Sequence[float], digits: str) -> str:
    stat = summarize(values)
    return "n/a" if not math.isfinite(stat.mean) else format(stat.mean, digits)


def methods_table(methods: Sequence[MethodNumbers], found: Sequence[Verdict], *, setting: str) -> Table:
    """One row per method: B, the protocol it trained under, epochs, updates, training and test
    accuracy (mean ± std over seeds, %), test accuracy against SB and against its gap's LB row
    (paired 95 % intervals, points), Keskar sharpness φ, wall time, the gap it is judged against,
    verdict, the power lines of the differences within noise and the paper's claim."""
    by_key = {v.key: v for v in found}
    rows = []
    for method in methods:
        verdict = by_key[method.key]
        seeds = f"{len(method.test_acc)}" + (f" (+{method.failed} failed)" if method.failed else "")
        rows.append((
            method.label, str(method.batch_size), protocol_of_row(method.key), _mean_text(method.epochs, ".3g"),
            _mean_text(method.updates, ".0f"), seeds, _stat_points(method.train_acc), _stat_points(method.test_acc),
            "—" if method.key == SB_KEY else interval_cell(verdict.vs_sb),
            "—" if method.key in BASELINES else interval_cell(verdict.vs_lb),
            summarize(method.sharpness).show(3) if method.sharpness else "n/a",
            _mean_text(method.seconds, ".1f"), verdict.gap or "—", verdict.verdict,
            "; ".join(verdict.power) or "—", PAPER_CLAIMS.get(method.key, "—"),
        ))
    columns = ("method", "B", "protocol", "epochs", "updates", "seeds", "train acc %", "test acc %",
               "test − SB (95 %)", "test − its gap's LB row (95 %)", "sharpness φ", "time s", "judged against",
               "verdict", "seeds to resolve (within noise)", "paper's claim (their setting)")
    return Table(
        "Large batches without the gap — mean ± std over seeds, differences paired by seed",
        columns, tuple(rows),
        f"{setting}. Two gaps: the equal-epochs gap (plain LB for SB's epochs: fewer updates, mostly an "
        "optimization gap) and the generalization gap (plain LB trained on to SB's training accuracy, Keskar et al.'s "
        "protocol). Differences are in points of test accuracy, the mean of the per-seed differences with its 95 % "
        "t interval (the rows of a seed start from the same initial weights; failed seeds left out). Each method is "
        "judged against the gap it claims to close: closes the gap when beyond noise above that gap's LB row and "
        "not below SB (its interval against SB contains 0 or lies above it); narrows it when above that row but "
        "below SB; not here when below SB and not above that row; unresolved when within noise of SB and not above "
        "that row; with one seed on a side, no interval and no verdict. φ = Keskar's sharpness (full space) of the "
        "minimum found; time = training seconds per run (SWAP: all three phases, the W copies one after another).",
    )


# How the tally names a verdict that does not read after a count.
TALLY_WORDS = {NO_INTERVAL: "with one seed (no interval)"}


def verdict_paragraph(found: Sequence[Verdict]) -> str:
    """The automatic summary: the two gaps, then each method's verdict with its power lines, then a tally."""
    sentences = [v.text + "".join(f"; {line}" for line in v.power) for v in found if v.verdict != BASELINE]
    judged = [v for v in found if v.key not in BASELINES]
    names = (CLOSES, NARROWS, NOT_HERE, UNRESOLVED, NO_GAP, NOT_AT_EQUAL_TRAIN, NO_INTERVAL, NO_RESULT)
    tally = {name: sum(v.verdict == name for v in judged) for name in names}
    counted = ", ".join(f"{n} {TALLY_WORDS.get(name, name)}" for name, n in tally.items() if n)
    sentences.append(f"In all, of {len(judged)} method{'s' if len(judged) != 1 else ''}: {counted or 'none judged'}")
    return ". ".join(s.rstrip(".") for s in sentences) + "."
