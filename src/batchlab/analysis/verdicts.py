"""Verdicts under the protocol each claim was made in: one table from (protocol, outcome) to a word.

The lecture's claims about batch size were made in one setting — equal epochs — and Keskar et
al.'s generalization gap in another — equal training accuracy. A verdict is fair only in the
protocol its claim was made in, so the rule depends on it:

================================  ============================================================
protocol                          verdict
================================  ============================================================
equal epochs (the lecture's)      within noise when the interval contains 0; else agrees or
                                  disagrees. An optimization row whose large batch's training
                                  loss is still falling agrees with "step-limited" as the
                                  stated reason (the lecture's own explanation: too few
                                  updates); a generalization row in that case is
                                  **step-limited** (its test difference is then partly an
                                  optimization gap, not a generalization one).
given enough updates              each batch size trained until its loss plateaus, with an
                                  update cap: **not converged** when a side hit the cap still
                                  falling; else within noise / agrees / disagrees.
equal updates                     **context**: beyond the lecture, which claims nothing there;
                                  never counted as a disagreement.
equal training accuracy (Keskar)  **not converged** when a side missed the target; else the
                                  paired interval rule: within noise / agrees / disagrees.
timing                            machine busy — not judged, when the load was above the cores;
                                  else the spread rule (interquartile ranges overlap → within
                                  noise), agrees / disagrees.
================================  ============================================================

Any protocol: a comparison with a side not measured (no run finished) is **not measured**.

"Still falling" (:func:`still_falling`): the training loss fell by more than
:data:`STILL_FALLING` (1 %) of its value over the last logged epoch.

Failed runs (status "diverged" or "failed to train") never enter a side's values; each side
counts them (``failed``) and :func:`failed_note` names them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from batchlab.analysis.stats import Interval, compare
from batchlab.store.status import DIVERGED, FAILED_TO_TRAIN

AGREES = "agrees"
DISAGREES = "disagrees"
WITHIN_NOISE = "within noise"
NOT_CONVERGED = "not converged"
STEP_LIMITED = "step-limited"
CONTEXT = "context"
MACHINE_BUSY = "machine busy — not judged"
NOT_MEASURED = "not measured"
VERDICTS = (AGREES, DISAGREES, WITHIN_NOISE, NOT_CONVERGED, STEP_LIMITED, CONTEXT, MACHINE_BUSY, NOT_MEASURED)

EQUAL_EPOCHS = "equal epochs"
ENOUGH_UPDATES = "given enough updates"
EQUAL_UPDATES = "equal updates"
EQUAL_TRAIN_ACC = "equal training accuracy"
TIMING = "timing"
PROTOCOLS = (EQUAL_EPOCHS, ENOUGH_UPDATES, EQUAL_UPDATES, EQUAL_TRAIN_ACC, TIMING)

OPTIMIZATION = "optimization"
GENERALIZATION = "generalization"
OTHER = "other"
CLAIMS = (OPTIMIZATION, GENERALIZATION, OTHER)

# A training loss is still falling when its last epoch removed more than this fraction of it.
STILL_FALLING = 0.01

# The statuses of runs left out of means as failed (batchlab.store.status defines them).
FAILED_STATUSES = (DIVERGED, FAILED_TO_TRAIN)


def last_epoch_drop(losses: Sequence[float]) -> float | None:
    """``(loss[−2] − loss[−1]) / loss[−2]``: the training loss's relative fall over the last logged
    epoch; None with fewer than two finite losses or a previous loss of 0 or below."""
    values = [float(v) for v in losses if v is not None and math.isfinite(float(v))]
    if len(values) < 2 or values[-2] <= 0:
        return None
    return (values[-2] - values[-1]) / values[-2]


def still_falling(losses: Sequence[float], threshold: float = STILL_FALLING) -> bool:
    """True when the last logged epoch lowered the training loss by more than ``threshold`` of its
    value (:func:`last_epoch_drop` > ``threshold``)."""
    drop = last_epoch_drop(losses)
    return drop is not None and drop > threshold


@dataclass(frozen=True)
class Outcome:
    """What a comparison of a small and a large batch found, whatever its protocol.

    ``measured``: both sides have a value; ``holds``: the lecture's direction holds (e.g. the small
    batch is more accurate); ``within_noise``: the difference's interval contains 0 (paired,
    Welch, or overlapping spreads for timing); ``small_converged``/``large_converged``: a side
    reached its plateau or target (protocols that need it); ``large_still_falling``: the large
    batch's training loss was still falling at the end (:func:`still_falling`); ``busy``: timed on
    a machine whose load exceeded its cores."""

    measured: bool = True
    holds: bool = True
    within_noise: bool = False
    small_converged: bool = True
    large_converged: bool = True
    large_still_falling: bool = False
    busy: bool = False


@dataclass(frozen=True)
class Verdict:
    word: str
    reason: str = ""


def verdict(protocol: str, claim: str, outcome: Outcome) -> Verdict:
    """The verdict of a comparison made under ``protocol`` about a ``claim`` (optimization,
    generalization or other) — the table in the module docstring."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; one of {', '.join(PROTOCOLS)}")
    if claim not in CLAIMS:
        raise ValueError(f"unknown claim {claim!r}; one of {', '.join(CLAIMS)}")
    if not outcome.measured:
        return Verdict(NOT_MEASURED)
    if protocol == TIMING and outcome.busy:
        return Verdict(MACHINE_BUSY, "load above the number of cores while timing")
    if protocol == EQUAL_UPDATES:
        return Verdict(CONTEXT, "equal updates: beyond the lecture's setting, shown as context")
    if protocol in (ENOUGH_UPDATES, EQUAL_TRAIN_ACC):
        missing = [side for side, done in (("small", outcome.small_converged), ("large", outcome.large_converged))
                   if not done]
        if missing:
            why = "reached its update cap still falling" if protocol == ENOUGH_UPDATES else "missed the target"
            return Verdict(NOT_CONVERGED, f"the {' and the '.join(missing)} batch {why}")
    if outcome.within_noise:
        return Verdict(WITHIN_NOISE)
    if not outcome.holds:
        return Verdict(DISAGREES)
    if protocol == EQUAL_EPOCHS and outcome.large_still_falling:
        if claim == GENERALIZATION:
            return Verdict(STEP_LIMITED, "the large batch's training loss was still falling: the difference is "
                                         "partly an optimization gap")
        return Verdict(AGREES, "step-limited: the large batch's training loss was still falling")
    return Verdict(AGREES)


# ----------------------------------------------------------------------------- from seeds


SMALL_HIGHER = "small higher"
SMALL_LOWER = "small lower"


@dataclass(frozen=True)
class Side:
    """One batch size's measurements: ``values`` seed → value over runs that finished (failed
    runs are never in it; ``failed`` counts them), and whether it reached its plateau or target
    (``converged``) and whether its training loss was still falling (``still_falling``)."""

    batch_size: int | None
    values: Mapping[int, float] = field(default_factory=dict)
    converged: bool = True
    still_falling: bool = False
    failed: int = 0

    @property
    def mean(self) -> float | None:
        finite = [float(v) for v in self.values.values() if math.isfinite(float(v))]
        return sum(finite) / len(finite) if finite else None


def seed_outcome(expectation: str, small: Side, large: Side) -> tuple[Outcome, Interval | None]:
    """The :class:`Outcome` of two sides measured over seeds, with the interval of
    small − large (paired over shared seeds, else Welch; see :func:`batchlab.analysis.stats.compare`).
    ``expectation``: :data:`SMALL_HIGHER` (accuracy) or :data:`SMALL_LOWER` (sharpness). Without an
    interval (one seed a side) nothing is within noise and the means decide."""
    if expectation not in (SMALL_HIGHER, SMALL_LOWER):
        raise ValueError(f"unknown expectation {expectation!r}")
    if small.mean is None or large.mean is None:
        return Outcome(measured=False), None
    interval = compare(small.values, large.values)
    difference = interval.estimate if interval is not None else small.mean - large.mean
    holds = difference > 0 if expectation == SMALL_HIGHER else difference < 0
    return Outcome(holds=holds, within_noise=interval is not None and interval.within_noise,
                   small_converged=small.converged, large_converged=large.converged,
                   large_still_falling=large.still_falling), interval


# ----------------------------------------------------------------------------- words


def count_text(n: int, singular: str, plural: str) -> str:
    """``"1 is within noise"``, ``"2 are within noise"``: ``f"{n} {singular or plural}"``."""
    return f"{n} {singular if n == 1 else plural}"


_COUNT_PHRASES = {
    AGREES: ("agrees", "agree"),
    DISAGREES: ("disagrees", "disagree"),
    WITHIN_NOISE: ("is within noise", "are within noise"),
    NOT_CONVERGED: ("compares a side that had not converged", "compare a side that had not converged"),
    STEP_LIMITED: ("is step-limited", "are step-limited"),
    CONTEXT: ("is context beyond the lecture", "are context beyond the lecture"),
    MACHINE_BUSY: ("was timed on a busy machine and not judged", "were timed on a busy machine and not judged"),
}


def counts_sentence(counts: Mapping[str, int]) -> str:
    """The verdict counts of a table in words with correct number: "3 agree, 1 is within noise and
    2 are context beyond the lecture" (verdicts with a count of 0 and *not measured* left out)."""
    parts = [count_text(counts[word], *_COUNT_PHRASES[word]) for word in VERDICTS
             if word in _COUNT_PHRASES and counts.get(word)]
    if not parts:
        return "no row was measured"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def failed_note(failed: Mapping[int, int]) -> str:
    """``{batch size: failed runs}`` as a note: "left out of the means: 2 failed runs at B = 3600
    (diverged or failed to train)"; empty when none failed."""
    shown = [(b, n) for b, n in sorted(failed.items()) if n]
    if not shown:
        return ""
    total = sum(n for _, n in shown)
    where = ", ".join(f"{n} at B = {b}" for b, n in shown)
    return (f"left out of the means: {count_text(total, 'failed run', 'failed runs')} ({where}; "
            "diverged or failed to train)")
