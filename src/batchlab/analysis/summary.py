"""The lecture's small-batch vs large-batch summary table, filled with this machine's numbers.

The lecture (Hung-yi Lee, "Batch and Momentum") ends its batch-size part with this table:

=========================================  ======================  =====================
aspect                                     small batch             large batch
=========================================  ======================  =====================
speed of one update, no parallelism        faster                  slower
speed of one update, with parallelism      same                    same (unless very large)
time of one epoch                          slower                  **faster**
gradient                                   noisy                   stable
optimization (training accuracy)           **better**              worse
generalization (validation / test acc.)    **better**              worse
=========================================  ======================  =====================

:func:`summary_table` fills a row per aspect with a measured value for a small and a large batch
and decides, from the numbers alone and under the protocol the row's runs followed (the verdict
table of :mod:`batchlab.analysis.verdicts`), whether the measurement **agrees** with the lecture's
verdict, **disagrees**, is **within noise**, or was **not measured** (e.g. no GPU).

Noise, per kind of row:

* accuracy and sharpness rows (values over seeds): the 95 % t interval of the difference
  small − large, **paired** over the seeds both sides ran (a seed's runs start from the same
  initial weights), Welch's interval when the sides share fewer than two seeds, the binomial
  interval of the test set when each side has one seed; *within noise* exactly when the interval
  contains 0 (:mod:`batchlab.analysis.stats`). Such a row's finding then says how many seeds would
  resolve the measured difference (power 0.8). Each side's own interval shown beside its mean is
  its 95 % t interval.
* gradient noise, a positive and heavy-tailed mean over batches: mean ± 2 standard errors on the
  log scale, ``mean · exp(±2 se / mean)``; timing: the interquartile range of the repeats. These
  rows are within noise when the two sides' intervals overlap.

The GPU row's "same" is read as: the larger batch's update takes at most
:data:`SAME_SPEED_RATIO` times as long as the smaller one's.

Accuracy rows by protocol (:func:`protocol_of`):

* **equal epochs** (the lecture's own setting): agrees or disagrees; when the large batch's
  training loss is still falling at the end — its last epoch removed more than 1 % of it, or it
  has not converged by the rule below — the training-accuracy row agrees with "step-limited" as
  its reason and the generalization rows are **step-limited** (their difference is then partly an
  optimization gap);
* **equal updates**: **context** beyond the lecture, never a disagreement;
* **given enough updates** (each batch size trained until its training loss stops improving,
  with an update cap — not an epoch cap, which would give the full batch one update per epoch):
  **not
  converged** when a side's mean training accuracy is near chance — below
  ``min(max(2 · chance, 0.5), (1 + chance) / 2)`` (0.5 for ten classes, 0.75 for two; chance =
  1 / number of classes) — or its training loss was still falling fast at the end: over the
  second half of its logged epochs it fell by more than :data:`LOSS_FALLING_FAST` × ln(number of
  classes) (mean over seeds; ln C is the cross-entropy at chance, so the rule reads "the second
  half removed more than 5 % of the chance-level loss"; not applied when the number of classes is
  unknown). An absolute fall is used because a relative one calls a loss of 0.010 falling to
  0.008 "fast" though the run is done. Comparing such a side measures how far training got, not
  what the batch size does to the minimum it reaches.

Failed runs (status "diverged" or "failed to train") are left out of every mean and counted in
the row's finding.

Timing rows: **machine busy — not judged** (CPU timing rows) when other processes kept a load
average above the number of cores while timing (the load before timing, or after timing less the
timing's own threads); CPU times are then inflated unevenly and no verdict is drawn.

Each accuracy row names the protocol its runs followed: equal epochs (the lecture's figure), equal
updates, or given enough updates (until the training loss stops improving, with an update cap).

Two rows carry the lecture's explanation of the generalization gap (:func:`sharp_minima_rows`,
from the flat-vs-sharp experiment): the test accuracy of a small and a large batch trained to the
*same* training accuracy, and the sharpness φ of the minima they found (lecture: small batch →
flat minimum, large batch → sharp minimum; Keskar et al. 2017). Their protocol is equal training
accuracy: **not converged** when runs missed the target or the training accuracies differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from batchlab.analysis.accuracy import (
    EPOCH_BUDGET,
    PATIENCE_BUDGET,
    UPDATE_BUDGET,
    AccuracyCurve,
    AccuracyPanel,
    AccuracyPoint,
    left_out_counts,
    left_out_note,
)
from batchlab.analysis.noise import NoiseReport
from batchlab.analysis.stats import (
    Interval,
    binomial_interval,
    compare,
    mean_interval,
    power_line,
    welch_interval_from_summary,
)
from batchlab.analysis.verdicts import (
    AGREES,
    CONTEXT,
    DISAGREES,
    ENOUGH_UPDATES,
    EQUAL_EPOCHS,
    EQUAL_TRAIN_ACC,
    EQUAL_UPDATES,
    GENERALIZATION,
    MACHINE_BUSY,
    NOT_CONVERGED,
    NOT_MEASURED,
    OPTIMIZATION,
    OTHER,
    SMALL_HIGHER,
    SMALL_LOWER,
    STEP_LIMITED,
    STILL_FALLING,
    TIMING,
    VERDICTS,
    WITHIN_NOISE,
    Outcome,
    counts_sentence,
    verdict,
)

__all__ = [
    "AGREES", "CONTEXT", "DISAGREES", "MACHINE_BUSY", "NOT_CONVERGED", "NOT_MEASURED", "STEP_LIMITED",
    "VERDICTS", "WITHIN_NOISE", "Measured", "SummaryRow", "SummaryTable", "accuracy_rows", "judge",
    "sharp_minima_rows", "summary_table",
]

# A training loss that fell by more than this fraction of ln(classes) over the second half of the
# logged epochs is "still falling fast".
LOSS_FALLING_FAST = 0.05

# "Same speed" on a GPU: the larger batch's update takes at most this many times as long.
SAME_SPEED_RATIO = 2.0
# Above this batch size the lecture calls a batch "very large" for the GPU-speed row.
VERY_LARGE_BATCH = 1000

# Expectations a row can have about (small, large); SMALL_LOWER and SMALL_HIGHER come with the verdicts.
LARGE_LOWER = "large lower"
ABOUT_SAME = "about the same"


@dataclass(frozen=True)
class Measured:
    """A measured value with an uncertainty interval [low, high] (None: no spread known)."""

    batch_size: int | None
    value: float
    low: float | None = None
    high: float | None = None
    detail: str = ""

    @classmethod
    def mean_se(cls, batch_size: int | None, mean: float, se: float | None, detail: str = "") -> "Measured":
        """``mean ± 2 se``."""
        if se is None or not math.isfinite(se) or se <= 0:
            return cls(batch_size, mean, None, None, detail)
        return cls(batch_size, mean, mean - 2 * se, mean + 2 * se, detail)

    @classmethod
    def positive_mean_se(cls, batch_size: int | None, mean: float, se: float | None, detail: str = "") -> "Measured":
        """``mean · exp(±2 se / mean)``: the ±2 standard-error interval on the log scale, for a
        positive, heavy-tailed mean (a squared gradient distance dominated by a few batches), where
        ``mean − 2 se`` would fall below zero and call every comparison noise."""
        if se is None or not math.isfinite(se) or se <= 0 or not mean > 0:
            return cls(batch_size, mean, None, None, detail)
        factor = math.exp(2 * se / mean)
        return cls(batch_size, mean, mean / factor, mean * factor, detail)

    @classmethod
    def over_seeds(cls, batch_size: int | None, mean: float, values: Sequence[float] = (), std: float | None = None,
                   n: int = 0, detail: str = "") -> "Measured":
        """``mean`` with its 95 % t interval over seeds, from the per-seed ``values`` or, without
        them, from the sample ``std`` of ``n`` seeds (no interval below two seeds)."""
        interval = mean_interval(values) if len(values) >= 2 else None
        if interval is None and std is not None and n >= 2 and math.isfinite(std):
            from scipy import stats as scipy_stats

            half = float(scipy_stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
            interval = (mean - half, mean + half)
        if interval is None:
            return cls(batch_size, mean, None, None, detail)
        return cls(batch_size, mean, interval[0], interval[1], detail)


@dataclass
class SummaryRow:
    """One aspect: the lecture's verdict, the two measurements, and whether they agree."""

    aspect: str
    lecture_small: str
    lecture_large: str
    quantity: str
    unit: str
    small: Measured | None
    large: Measured | None
    expectation: str
    verdict: str = NOT_MEASURED
    finding: str = ""
    note: str = ""
    protocol: str = ""
    # The 95 % interval of small − large the verdict came from (accuracy and sharpness rows), and,
    # when it is within noise, how many seeds would resolve the difference.
    difference: Interval | None = None
    power: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["small"] = None if self.small is None else asdict(self.small)
        data["large"] = None if self.large is None else asdict(self.large)
        data["difference"] = None if self.difference is None else self.difference.to_dict()
        return data


@dataclass
class SummaryTable:
    rows: list[SummaryRow] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {verdict: sum(row.verdict == verdict for row in self.rows) for verdict in VERDICTS}

    def counts_sentence(self) -> str:
        """The counts in words with correct number: "3 agree, 1 is within noise and 2 are context …"."""
        return counts_sentence(self.counts())

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [row.to_dict() for row in self.rows], "counts": self.counts(),
                "counts_sentence": self.counts_sentence(), "same_speed_ratio": SAME_SPEED_RATIO}


def judge(expectation: str, small: Measured | None, large: Measured | None) -> str:
    """The verdict of a timing or gradient-noise row from its two measurements: the timing
    protocol of :func:`batchlab.analysis.verdicts.verdict`, with the two sides' intervals
    overlapping as "within noise" (see the module docstring)."""
    if small is None or large is None or not (math.isfinite(small.value) and math.isfinite(large.value)):
        return NOT_MEASURED
    if expectation == ABOUT_SAME:
        if small.value <= 0:
            return NOT_MEASURED
        return AGREES if large.value / small.value <= SAME_SPEED_RATIO else DISAGREES
    if expectation == SMALL_LOWER:
        holds = small.value < large.value
    elif expectation == SMALL_HIGHER:
        holds = small.value > large.value
    elif expectation == LARGE_LOWER:
        holds = large.value < small.value
    else:
        raise ValueError(f"unknown expectation {expectation!r}")
    return verdict(TIMING, OTHER, Outcome(holds=holds, within_noise=_overlap(small, large))).word


def _overlap(a: Measured, b: Measured) -> bool:
    if None in (a.low, a.high, b.low, b.high):
        return False
    return a.low <= b.high and b.low <= a.high


def convergence_threshold(num_classes: int | None) -> float:
    """The training accuracy below which a side counts as near chance (see the module docstring):
    ``min(max(2 · chance, 0.5), (1 + chance) / 2)``, or 0.5 when the number of classes is unknown."""
    if not num_classes or num_classes < 2:
        return 0.5
    chance = 1.0 / num_classes
    return min(max(2 * chance, 0.5), (1 + chance) / 2)


def not_converged_reason(point: AccuracyPoint, num_classes: int | None) -> str | None:
    """Why ``point``'s runs have not converged (near-chance training accuracy, or a training loss
    still falling fast over the last epoch), or None when neither holds."""
    accuracy = point.mean("train_acc")
    threshold = convergence_threshold(num_classes)
    if accuracy is not None and accuracy < threshold:
        chance = f", chance {1 / num_classes:.2g}" if num_classes else ""
        return f"B = {point.batch_size}: training accuracy {accuracy:.3f} < {threshold:.2g} (near chance{chance})"
    drop = getattr(point, "final_loss_drop", None)
    if drop is not None and num_classes and num_classes >= 2 and drop > LOSS_FALLING_FAST * math.log(num_classes):
        return (f"B = {point.batch_size}: training loss still falling ({drop:.3g} over the second half of its "
                f"epochs, more than {LOSS_FALLING_FAST:.0%} of ln {num_classes} = {math.log(num_classes):.3g})")
    return None


def machine_busy(load: dict[str, Any] | None) -> bool:
    """True when other processes kept a load average above the number of cores while timing:
    ``max(before, after − own_threads) > cpu_count`` from a timing's ``load_average`` settings
    (``before``, ``after``, ``cpu_count``, optional ``own_threads``)."""
    if not load or not load.get("cpu_count"):
        return False
    own = load.get("own_threads") or 0
    others = [v for v in (load.get("before"), None if load.get("after") is None else load["after"] - own)
              if v is not None]
    return bool(others) and max(others) > float(load["cpu_count"])


def _finish(row: SummaryRow, describe) -> SummaryRow:
    row.verdict = judge(row.expectation, row.small, row.large)
    if row.verdict != NOT_MEASURED:
        row.finding = describe(row)
    return row


# ----------------------------------------------------------------------------- timing rows


def _timing_measure(point: Any) -> Measured:
    """A :class:`batchlab.timing.TimingPoint`'s median time per update with its IQR."""
    return Measured(int(point.batch_size), float(point.per_update_median_s), float(point.per_update_q25_s),
                    float(point.per_update_q75_s), f"{point.path} ({point.device})")


def _pick_series(points: Sequence[Any], device_type: str) -> list[Any]:
    """Points of one device type, from the ``resident`` path when timed (batchlab's own trainer),
    else from whichever path was timed; the latest measurement of a batch size wins."""
    on_device = [p for p in points if str(p.device).split(":")[0] == device_type]
    if not on_device:
        return []
    paths = {p.path for p in on_device}
    path = "resident" if "resident" in paths else sorted(paths)[0]
    by_batch = {p.batch_size: p for p in on_device if p.path == path}
    return [by_batch[b] for b in sorted(by_batch)]


def timing_rows(points: Sequence[Any], busy: bool = False) -> list[SummaryRow]:
    """Rows for the speed of one update (CPU, GPU) and the time of one epoch (per device).

    ``busy`` (see :func:`machine_busy`) turns every measured CPU row into *machine busy — not judged*."""
    rows = []
    cpu = _pick_series(points, "cpu")
    gpu = _pick_series(points, "cuda")

    def update_text(row: SummaryRow) -> str:
        faster = "small" if row.small.value < row.large.value else "large"
        return (f"one update takes {seconds_text(row.small.value)} at B = {row.small.batch_size} and "
                f"{seconds_text(row.large.value)} at B = {row.large.batch_size} "
                f"({row.large.value / row.small.value:.3g}×): the {faster} batch is faster per update")

    rows.append(_finish(SummaryRow(
        "Speed of one update, no parallelism (CPU)", "faster", "slower", "time per update", "s",
        _timing_measure(cpu[0]) if len(cpu) >= 2 else None,
        _timing_measure(cpu[-1]) if len(cpu) >= 2 else None,
        SMALL_LOWER,
        note="Speed of one update on the CPU: a CPU still computes a batch with vectorized, multi-threaded "
             "kernels, so it is not free of parallelism; the lecture's 'no parallelism' is one example at a time.",
    ), update_text))

    gpu_moderate = [p for p in gpu if p.batch_size <= VERY_LARGE_BATCH]
    gpu_row = SummaryRow(
        "Speed of one update, with parallelism (GPU)", "same", f"same (unless B > {VERY_LARGE_BATCH})",
        "time per update", "s",
        _timing_measure(gpu_moderate[0]) if len(gpu_moderate) >= 2 else None,
        _timing_measure(gpu_moderate[-1]) if len(gpu_moderate) >= 2 else None,
        ABOUT_SAME,
        note=f"Speed of one update on the GPU: 'same' read as at most {SAME_SPEED_RATIO:g}× the time, for "
             f"batches up to {VERY_LARGE_BATCH}.",
    )

    def same_text(row: SummaryRow) -> str:
        ratio = row.large.value / row.small.value
        return (f"{seconds_text(row.small.value)} at B = {row.small.batch_size} vs {seconds_text(row.large.value)} "
                f"at B = {row.large.batch_size}: {ratio:.3g}× the time for "
                f"{row.large.batch_size // max(row.small.batch_size, 1)}× the examples")

    rows.append(_finish(gpu_row, same_text))

    for label, series in (("CPU", cpu), ("GPU", gpu)):
        if label == "GPU" and not series:
            continue

        def epoch_text(row: SummaryRow) -> str:
            faster = "large" if row.large.value < row.small.value else "small"
            return (f"one epoch takes {seconds_text(row.small.value)} at B = {row.small.batch_size} and "
                    f"{seconds_text(row.large.value)} at B = {row.large.batch_size}: the {faster} batch finishes "
                    "an epoch sooner")

        small = large = None
        if len(series) >= 2:
            small, large = _epoch_measure(series[0]), _epoch_measure(series[-1])
        rows.append(_finish(SummaryRow(
            f"Time of one epoch ({label})", "slower", "faster", "time per epoch", "s", small, large, LARGE_LOWER,
        ), epoch_text))
    if busy:
        for row in rows:
            if "(CPU)" in row.aspect and row.verdict != NOT_MEASURED:
                row.verdict = MACHINE_BUSY
                row.note = ("CPU timing rows: other processes kept the load average above the number of cores "
                            "while timing, so no verdict is drawn from them.")
    return rows


def _epoch_measure(point: Any) -> Measured:
    """Time of one epoch with the update times' interquartile range scaled to the epoch
    (``per_epoch · q25 / median`` … ``per_epoch · q75 / median``)."""
    epoch, median = float(point.per_epoch_s), float(point.per_update_median_s)
    if median > 0:
        return Measured(point.batch_size, epoch, epoch * float(point.per_update_q25_s) / median,
                        epoch * float(point.per_update_q75_s) / median, _epoch_detail(point))
    return Measured(point.batch_size, epoch, detail=_epoch_detail(point))


def _epoch_detail(point: Any) -> str:
    parts = [f"{point.n_examples:,} examples"]
    if point.extrapolated:
        parts.append("extrapolated from timed updates")
    if point.synthetic_data:
        parts.append("synthetic data of the dataset's shape")
    return ", ".join(parts)


# ----------------------------------------------------------------------------- noise row


def noise_row(noise: NoiseReport | None) -> SummaryRow:
    """Gradient noise ``mean ‖g_B − G‖²`` at the smallest and largest measured batch size."""
    small = large = None
    if noise is not None and len(noise.batch_sizes) >= 2:
        first, last = noise.batch_sizes[0], noise.batch_sizes[-1]
        small = Measured.positive_mean_se(first.batch_size, first.noise, first.noise_se, f"{first.n_batches} batches")
        large = Measured.positive_mean_se(last.batch_size, last.noise, last.noise_se, f"{last.n_batches} batches")

    def text(row: SummaryRow) -> str:
        ratio = row.small.value / row.large.value if row.large.value > 0 else math.inf
        return (f"E‖g_B − G‖² = {row.small.value:.3g} at B = {row.small.batch_size} vs {row.large.value:.3g} at "
                f"B = {row.large.batch_size} ({ratio:.3g}× noisier with the small batch)")

    return _finish(SummaryRow(
        "Gradient", "noisy", "stable", "E‖g_B − G‖² (squared distance of a batch gradient from the full gradient)",
        "", small, large, SMALL_HIGHER,
    ), text)


# ----------------------------------------------------------------------------- accuracy rows


# The verdict protocol of each accuracy budget (batchlab.analysis.verdicts).
PROTOCOL_OF_BUDGET = {EPOCH_BUDGET: EQUAL_EPOCHS, UPDATE_BUDGET: EQUAL_UPDATES, PATIENCE_BUDGET: ENOUGH_UPDATES}
_CLAIM_OF_METRIC = {"train_acc": OPTIMIZATION, "val_acc": GENERALIZATION, "test_acc": GENERALIZATION}


def protocol_of(panel: AccuracyPanel) -> str:
    """The verdict protocol of a panel's budget: equal epochs, equal updates, or given enough
    updates (trained until the training loss stops improving)."""
    return PROTOCOL_OF_BUDGET[panel.budget_kind]


def _accuracy_measure(point: AccuracyPoint, metric: str) -> Measured | None:
    mean, std = point.mean(metric), point.std(metric)
    if mean is None:
        return None
    detail = f"{point.n_seeds} seed{'s' if point.n_seeds != 1 else ''}"
    if point.n_diverged:
        detail += f", {point.n_diverged} failed (left out)"
    if point.lr is not None and point.lr_grid and len(point.lr_grid) > 1:
        detail += f", best η = {point.lr:g} of {', '.join(f'{v:g}' for v in point.lr_grid)}"
        if point.lr_reason and point.lr_reason != "interior":
            detail += f" ({point.lr_reason})"
    values = list(point.seed_values.get(metric, {}).values())
    return Measured.over_seeds(point.batch_size, mean, values, std, point.n_seeds, detail)


def accuracy_difference(small: AccuracyPoint, large: AccuracyPoint, metric: str) -> Interval | None:
    """The 95 % interval of ``metric`` small − large: paired over shared seeds, else Welch (from the
    per-seed values, or from the points' means and standard deviations when they carry none);
    None with fewer than two seeds a side."""
    a, b = small.seed_values.get(metric), large.seed_values.get(metric)
    if a and b:
        return compare(a, b)
    means, stds = (small.mean(metric), large.mean(metric)), (small.std(metric), large.std(metric))
    if None in means or None in stds or small.n_seeds < 2 or large.n_seeds < 2:
        return None
    return welch_interval_from_summary(means[0], stds[0], small.n_seeds, means[1], stds[1], large.n_seeds)


def protocol_text(panel: AccuracyPanel) -> str:
    """The protocol a panel's runs followed, in the words a verdict row names it by."""
    if panel.budget_kind == EPOCH_BUDGET:
        return f"equal epochs ({panel.budget})"
    if panel.budget_kind == UPDATE_BUDGET:
        return f"equal updates ({panel.budget})"
    return f"given enough updates (until the training loss stops improving, patience {panel.budget}, update cap)"


def _num_classes(dataset: str) -> int | None:
    from batchlab.data import DATASETS

    spec = DATASETS.get(dataset)
    return None if spec is None else int(spec.num_classes)


def accuracy_rows(panel: AccuracyPanel | Sequence[AccuracyPanel] | None) -> list[SummaryRow]:
    """Optimization (training accuracy) and generalization (validation and test accuracy) rows,
    one set per curve of each panel (one panel per protocol), comparing its smallest and largest
    batch size."""
    panels = [] if panel is None else [panel] if isinstance(panel, AccuracyPanel) else list(panel)
    panels = [p for p in panels if p.curves]
    if len(panels) > 1:
        return [row for p in panels for row in accuracy_rows(p)]
    panel = panels[0] if panels else None
    if panel is None or not panel.curves:
        return [
            SummaryRow("Optimization (training accuracy)", "better", "worse", "training accuracy", "",
                       None, None, SMALL_HIGHER),
            SummaryRow("Generalization (validation accuracy)", "better", "worse", "validation accuracy", "",
                       None, None, SMALL_HIGHER),
        ]
    rows = []
    for curve in panel.curves:
        if panel.budget_kind == PATIENCE_BUDGET and "max_updates" in curve.settings \
                and curve.settings["max_updates"] is None:
            # Runs of an earlier protocol, stopped by an epoch cap: the full batch got one update per
            # epoch of it, so they cannot say what enough updates give.
            continue
        rows.extend(_curve_rows(panel, curve))
    return rows


def _left_out_text(points: Sequence[AccuracyPoint]) -> str:
    """The failed runs a curve's means leave out, by status and batch size: "2 runs left out of the
    means: 1 diverged, 1 failed to train (at B = 8: 1, at B = 3600: 1)"; empty when none."""
    note = left_out_note(left_out_counts(points))
    if not note:
        return ""
    where = ", ".join(f"at B = {p.batch_size}: {p.n_diverged}" for p in points if p.n_diverged)
    return note.replace(" left out: ", " left out of the means: ", 1) + f" ({where})"


def _still_falling_reason(point: AccuracyPoint, classes: int | None) -> str | None:
    """Why a side's training loss counts as still falling at the end: its last epoch removed more
    than :data:`STILL_FALLING` of it, or it has not converged (:func:`not_converged_reason`)."""
    if point.last_epoch_drop is not None and point.last_epoch_drop > STILL_FALLING:
        return (f"B = {point.batch_size}: training loss fell {point.last_epoch_drop:.1%} over its last epoch "
                f"(more than {STILL_FALLING:.0%})")
    return not_converged_reason(point, classes)


def _curve_rows(panel: AccuracyPanel, curve: AccuracyCurve) -> list[SummaryRow]:
    usable = [p for p in curve.points if p.n_seeds > 0]
    small_point = usable[0] if len(usable) >= 2 else None
    large_point = usable[-1] if len(usable) >= 2 else None
    suffix = f", {curve.label}" if len(panel.curves) > 1 else ""
    protocol, words = protocol_of(panel), protocol_text(panel)
    classes = _num_classes(panel.dataset)
    unconverged = {} if small_point is None else {
        side: not_converged_reason(point, classes) for side, point in (("small", small_point), ("large", large_point))}
    falling = None if large_point is None else _still_falling_reason(large_point, classes)
    failed = _left_out_text(curve.points)
    tuned = small_point is not None and small_point.lr_grid and len(small_point.lr_grid) > 1
    rows = []
    for aspect, metric, quantity in (
        ("Optimization (training accuracy)", "train_acc", "training accuracy"),
        ("Generalization (validation accuracy)", "val_acc", "validation accuracy"),
        ("Generalization (test accuracy)", "test_acc", "test accuracy"),
    ):
        small = None if small_point is None else _accuracy_measure(small_point, metric)
        large = None if large_point is None else _accuracy_measure(large_point, metric)
        if metric == "test_acc" and small is None and large is None:
            continue
        row = SummaryRow(
            f"{aspect} — {words}{suffix}", "better", "worse", quantity, "", small, large, SMALL_HIGHER,
            note=f"Accuracy rows: {panel.title}; means over seeds with their 95 % t intervals; the verdict's noise "
                 "is the 95 % t interval of the small − large difference, paired over the seeds both sides ran "
                 "(a seed's runs start from the same weights), Welch's when they share fewer than two; within "
                 f"noise when it contains 0{'; each batch size at its own best η on the validation split' if tuned else ''}. "
                 f"Step-limited (equal epochs): the large batch's training loss fell by more than {STILL_FALLING:.0%} "
                 f"over its last epoch, or had not converged. Not converged: training accuracy below "
                 f"{convergence_threshold(classes):.2g}, or a training loss that fell by more than "
                 f"{LOSS_FALLING_FAST:.0%} of ln(classes) over the second half of the epochs.",
            protocol=words,
        )
        if small is not None and large is not None:
            row.difference = accuracy_difference(small_point, large_point, metric)
            # The direction as the interval sees it (over the pairs when paired), else the means'.
            ahead = row.difference.estimate if row.difference is not None else small.value - large.value
            outcome = Outcome(holds=ahead > 0,
                              within_noise=row.difference is not None and row.difference.within_noise,
                              small_converged=unconverged["small"] is None,
                              large_converged=unconverged["large"] is None,
                              large_still_falling=falling is not None)
            _apply(row, verdict(protocol, _CLAIM_OF_METRIC[metric], outcome),
                   _evidence(protocol, unconverged, falling), failed, unit=" points", scale=100)
        rows.append(row)
    return rows


def _evidence(protocol: str, unconverged: dict[str, str | None], falling: str | None) -> list[str]:
    """What backs a verdict's reason: the unconverged sides (given enough updates), the large
    batch's still-falling loss (equal epochs), nothing otherwise."""
    if protocol == ENOUGH_UPDATES:
        return [reason for reason in unconverged.values() if reason]
    if protocol == EQUAL_EPOCHS and falling:
        return [falling]
    return []


def _apply(row: SummaryRow, decided, evidence: Sequence[str], failed: str = "", unit: str = "",
           scale: float = 1.0, describe=None) -> None:
    """Set ``row``'s verdict and finding from a :class:`~batchlab.analysis.verdicts.Verdict`: the
    numbers in words, the verdict's reason with its ``evidence``, the difference's interval, the
    seeds a within-noise difference needs, and the failed runs left out."""
    row.verdict = decided.word
    parts = [(describe or _accuracy_text)(row)]
    if decided.reason:
        parts.append(decided.reason + (" (" + "; ".join(evidence) + ")" if evidence else ""))
    if row.difference is not None:
        d = row.difference
        over = f" over {d.n} seed pairs" if d.method.startswith("paired") else ""
        parts.append(f"small − large = {d.estimate * scale:.3g}{unit}{over}, {d.confidence * 100:g} % {d.method} "
                     f"interval {d.low * scale:.3g} to {d.high * scale:.3g}{unit}")
        if row.verdict == WITHIN_NOISE and d.estimate != 0 and d.method != "binomial (one seed a side)":
            paired = d.method.startswith("paired")
            pairs = d.n if paired else d.n // 2
            row.power = power_line(d.estimate * scale, d.spread * scale, pairs, paired=paired, unit=unit)
            parts.append(row.power)
    elif row.verdict in (AGREES, DISAGREES, STEP_LIMITED, CONTEXT):
        parts.append("fewer than two seeds a side: no interval, the means alone decide")
    if failed:
        parts.append(failed)
    row.finding = "; ".join(parts)


def _accuracy_text(row: SummaryRow) -> str:
    better = "small" if row.small.value > row.large.value else "large"
    difference = abs(row.small.value - row.large.value)
    text = (f"{row.quantity} {row.small.value:.3f} at B = {row.small.batch_size} vs {row.large.value:.3f} at "
            f"B = {row.large.batch_size}: " + (f"a difference of {difference:.3f}, within the noise"
                                              if row.verdict == WITHIN_NOISE else
                                              f"the {better} batch is better by {difference:.3f}"))
    tuned = [m.detail.split(", best ", 1)[1] for m in (row.small, row.large) if ", best " in m.detail]
    if len(tuned) == 2:
        text += f" (best {tuned[0]} at B = {row.small.batch_size}; best {tuned[1]} at B = {row.large.batch_size})"
    return text


# ----------------------------------------------------------------------------- flat vs sharp


def _regime_values(sb: Sequence[float], lb: Sequence[float]) -> tuple[dict[int, float], dict[int, float]]:
    """Per-seed values of the two regimes keyed for :func:`~batchlab.analysis.stats.compare`: the
    gap experiment runs SB and LB on the same seeds in the same order, so equal counts pair by
    position; unequal counts get disjoint keys (an unpaired, Welch comparison)."""
    sb, lb = [float(v) for v in sb if math.isfinite(float(v))], [float(v) for v in lb if math.isfinite(float(v))]
    if len(sb) == len(lb):
        return dict(enumerate(sb)), dict(enumerate(lb))
    return dict(enumerate(sb)), {-1 - i: v for i, v in enumerate(lb)}


def _regime_difference(sb: Sequence[float], lb: Sequence[float], binomial_n: int | None = None) -> Interval | None:
    """The interval of SB − LB over seeds (:func:`_regime_values`), or with one seed a side the
    binomial interval of two accuracies on ``binomial_n`` test examples."""
    a, b = _regime_values(sb, lb)
    interval = compare(a, b)
    if interval is None and binomial_n and len(a) == 1 and len(b) == 1:
        interval = binomial_interval(next(iter(a.values())), next(iter(b.values())), binomial_n)
    return interval


def _seed_measure(batch_size: int, values: Sequence[float], binomial_n: int | None = None) -> Measured | None:
    """Mean over seeds with its 95 % t interval; with one seed, the binomial interval
    ``± 1.96 · √(p(1 − p)/n)`` of an accuracy measured on ``binomial_n`` examples, else no interval."""
    values = [float(v) for v in values if math.isfinite(float(v))]
    if not values:
        return None
    detail = f"{len(values)} seed{'s' if len(values) != 1 else ''}"
    mean = sum(values) / len(values)
    if len(values) == 1 and binomial_n:
        half = 1.959964 * math.sqrt(max(mean * (1 - mean), 0.0) / binomial_n)
        return Measured(batch_size, mean, mean - half, mean + half, detail)
    return Measured.over_seeds(batch_size, mean, values, detail=detail)


def sharp_minima_rows(numbers: Any | None, target_train_acc: float | None = None,
                      missed_target: int = 0) -> list[SummaryRow]:
    """Keskar et al.'s comparison as two rows: test accuracy of a small (SB) and a large (LB) batch
    trained to the same training accuracy, and the sharpness φ of the minima they found.

    ``numbers`` is a :class:`batchlab.experiments.gap.tables.NetworkNumbers` (per-seed accuracies and
    sharpness of both regimes, SB and LB on the same seeds in the same order); ``target_train_acc``
    the training accuracy both were trained to (None: Keskar's "until the loss stops improving");
    ``missed_target`` how many runs ended at their epoch cap below it. The protocol is equal
    training accuracy: such runs, or training accuracies whose difference exceeds
    max(its 95 % interval's half width, 0.5 points), make both rows *not converged*. Otherwise the
    paired interval of SB − LB decides (within noise when it contains 0).
    """
    if numbers is None:
        return []
    protocol = (f"equal training accuracy ({target_train_acc:.0%})" if target_train_acc is not None
                else "until the training loss stops improving (Keskar et al.)")
    sb, lb = numbers.sb, numbers.lb
    reasons = []
    if missed_target:
        reasons.append(f"{missed_target} run{'s' if missed_target != 1 else ''} ended at the epoch cap below the "
                       "training-accuracy target")
    sb_train, lb_train = _seed_measure(sb.batch_size, sb.train_acc), _seed_measure(lb.batch_size, lb.train_acc)
    if sb_train is not None and lb_train is not None:
        train_difference = _regime_difference(sb.train_acc, lb.train_acc)
        margin = max(0.005, 0.0 if train_difference is None else train_difference.half_width)
        if abs(sb_train.value - lb_train.value) > margin:
            reasons.append(f"training accuracy {sb_train.value:.3f} at B = {sb.batch_size} vs {lb_train.value:.3f} at "
                           f"B = {lb.batch_size}, not equal")
    trained = (f"trained to {target_train_acc:.0%} training accuracy" if target_train_acc is not None
               else "trained until the training loss stopped improving")
    note = (f"Flat vs sharp rows: {numbers.model} on {numbers.dataset}, SB = {sb.batch_size} vs LB = {lb.batch_size} "
            f"{trained}; means over seeds with their 95 % t intervals; the verdict's noise is the 95 % t interval of "
            "SB − LB paired by seed (SB and LB of a seed start from the same weights), within noise when it "
            "contains 0; sharpness is Keskar et al.'s φ (Metric 2.1), only at points whose full-batch gradient norm is "
            "at most 1 % of its value at the initial weights (the others are left out and counted in the gap section).")
    test_difference = compare(sb.by_seed(sb.test_acc), lb.by_seed(lb.test_acc))
    comparisons = [(SummaryRow(
        f"Generalization (test accuracy) — {protocol}", "better", "worse", "test accuracy", "",
        _seed_measure(sb.batch_size, sb.test_acc, numbers.test_examples),
        _seed_measure(lb.batch_size, lb.test_acc, numbers.test_examples), SMALL_HIGHER, note=note,
        protocol=protocol), GENERALIZATION,
        test_difference or _regime_difference(sb.test_acc, lb.test_acc, numbers.test_examples),
        _accuracy_text, " points", 100.0)]
    # One sharpness row: the full space at the largest ε measured (1e-3, the paper's Table 3 headline).
    full_space = sorted(eps for space, eps in sb.sharpness if space == "full")
    if full_space:
        epsilon = full_space[-1]
        # φ exists only at points that pass the at-a-minimum rule (None elsewhere): pair by seed.
        sb_phi = sb.by_seed(sb.sharpness[("full", epsilon)])
        lb_phi = lb.by_seed(lb.sharpness.get(("full", epsilon), ()))
        comparisons.append((SummaryRow(
            f"Minimum found (sharpness φ, ε = {epsilon:g}) — {protocol}", "flat", "sharp", "sharpness φ", "",
            _seed_measure(sb.batch_size, list(sb_phi.values())), _seed_measure(lb.batch_size, list(lb_phi.values())),
            SMALL_LOWER, note=note, protocol=protocol), OTHER, compare(sb_phi, lb_phi), _sharpness_text,
            "", 1.0))
    rows = []
    for row, claim, difference, describe, unit, scale in comparisons:
        if row.quantity == "sharpness φ" and (row.small is None or row.large is None):
            # φ exists only at points that pass the at-a-minimum rule: say how many did.
            counts = [f"{sum(note is None for note in regime.minimum_notes)} of {len(regime.minimum_notes)} at "
                      f"B = {regime.batch_size}" for regime in (sb, lb) if regime.minimum_notes]
            if counts:
                row.finding = ("no paired sharpness: points at a minimum (full-batch ‖∇f‖ ≤ 1 % of its value at the "
                               f"initial weights): {', '.join(counts)}")
        if row.small is not None and row.large is not None:
            row.difference = difference
            ahead = difference.estimate if difference is not None else row.small.value - row.large.value
            holds = ahead > 0 if row.expectation == SMALL_HIGHER else ahead < 0
            outcome = Outcome(holds=holds, within_noise=difference is not None and difference.within_noise,
                              small_converged=not reasons, large_converged=not reasons)
            decided = verdict(EQUAL_TRAIN_ACC, claim, outcome)
            if reasons:  # the comparison is not at equal training accuracy, whichever side is short
                decided = type(decided)(decided.word, "not at equal training accuracy")
            _apply(row, decided, reasons, unit=unit, scale=scale, describe=describe)
        rows.append(row)
    return rows


def _sharpness_text(row: SummaryRow) -> str:
    ratio = row.large.value / row.small.value if row.small.value > 0 else math.inf
    noise = ", within the noise" if row.verdict == WITHIN_NOISE else ""
    return (f"φ = {row.small.value:.4g} at B = {row.small.batch_size} vs {row.large.value:.4g} at "
            f"B = {row.large.batch_size} ({ratio:.3g}× the small batch's{noise})")


# ----------------------------------------------------------------------------- the table


def summary_table(
    timing_points: Sequence[Any] = (),
    noise: NoiseReport | None = None,
    panel: AccuracyPanel | Sequence[AccuracyPanel] | None = None,
    busy: bool = False,
    sharp_minima: Sequence[SummaryRow] = (),
) -> SummaryTable:
    """The lecture's table filled from timing points, a noise report and an accuracy panel.

    ``timing_points`` are :class:`batchlab.timing.TimingPoint`-like objects (``path``, ``device``,
    ``batch_size``, ``per_update_median_s``, ``per_update_q25_s``, ``per_update_q75_s``,
    ``per_epoch_s``, ``n_examples``, ``extrapolated``, ``synthetic_data``). Anything missing gives
    rows marked *not measured*. ``panel`` may be one panel or one per protocol (see
    :func:`protocol_panels`); ``busy`` marks the CPU timing rows *machine busy — not judged*;
    ``sharp_minima`` are the rows of :func:`sharp_minima_rows`, placed last.
    """
    table = SummaryTable()
    table.rows.extend(timing_rows(list(timing_points), busy))
    table.rows.append(noise_row(noise))
    table.rows.extend(accuracy_rows(panel))
    table.rows.extend(sharp_minima)
    return table


def primary_panel(panels: Sequence[AccuracyPanel], dataset: str | None = None) -> AccuracyPanel | None:
    """The panel the summary compares: epoch budget (the lecture's setting), ``dataset`` when
    given, and among those the one with the most batch sizes and runs."""
    candidates = [p for p in panels if p.budget_kind == "epochs" and (dataset is None or p.dataset == dataset)]
    candidates = candidates or list(panels)
    if not candidates:
        return None
    return max(candidates, key=lambda p: (len(p.batch_sizes), sum(pt.n_seeds for c in p.curves for pt in c.points)))


def protocol_panels(panels: Sequence[AccuracyPanel], dataset: str | None = None) -> list[AccuracyPanel]:
    """One panel per protocol, in the order equal epochs, equal updates, until the loss stops
    improving: for each, the panel of ``dataset`` (when given) with the most batch sizes and runs."""
    chosen = []
    for kind in (EPOCH_BUDGET, UPDATE_BUDGET, PATIENCE_BUDGET):
        candidates = [p for p in panels if p.budget_kind == kind and (dataset is None or p.dataset == dataset)]
        if candidates:
            chosen.append(max(candidates, key=lambda p: (len(p.batch_sizes),
                                                         sum(pt.n_seeds for c in p.curves for pt in c.points))))
    return chosen


def seconds_text(value: float) -> str:
    """A duration in s, ms or µs with three significant digits (whole seconds from 1000 s)."""
    if value >= 1000:
        return f"{value:,.0f} s"
    if value >= 1:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"
