"""Grids that never stop at an edge: where to try the next learning rate η or momentum λ.

A grid search whose best value sits on the grid's edge has not found the best value, only a
bound on it. The rule here: when the best value lies on an edge, extend the grid beyond that edge
by the grid's own factor, one value at a time, until

* the best value is **interior** (a trained value on each side scored lower), or
* the next value **diverges** (or fails to train): the side is bounded by divergence, or
* **three values** (:data:`EXTENSION_CAP`) have been added on that side: the cap is reached,

and say which of the three happened. For λ one more bound exists: λ = 0, the end of its range.

**Choose on validation, report test.** The score a driver records is the *validation* score
(higher is better, e.g. validation accuracy, on the split carved from the training set); the
chosen value's *test* score is what a table reports. Choosing on the test set would make the
reported number the maximum of several noisy test scores, biased upwards.

**The factor.** η lives on a geometric grid, so the grid is extended on the log scale; λ is
extended on the scale of 1 − λ (0.9, 0.99, 0.999 are equal steps: the effective horizon
1/(1 − λ) grows tenfold each), so λ never reaches 1 and its low side stops at λ = 0. On that
scale (u = η, or u = 1 − λ), with the grid's values sorted and the ratios r_i = u_{i+1}/u_i:

* if the ratios repeat with a period p ≤ 3 seen at least twice (constant factor: p = 1; the
  1-3-10 grid 0.003, 0.01, 0.03, 0.1, 0.3: p = 2), the extension continues that pattern
  (0.3 → 1 → 3 → 10 and 0.003 → 0.001 → 0.0003 → 0.0001);
* otherwise (also for a grid of three values, whose two ratios show no repeat) each side steps
  by the ratio of the two values at that edge (η ∈ {0.01, 0.03, 0.1}: 0.333, 1.11, 3.7 above;
  λ ∈ {0, 0.5, 0.9}: 1 − λ = 1, 0.5, 0.1, so above 0.9 come 0.98, 0.996, 0.9992).

Extended values are rounded to three significant digits on their scale.

A driver loop::

    state = GridState.learning_rate([0.003, 0.01, 0.03, 0.1])
    while todo := next_values(state):
        for lr in todo:
            run = train(lr)
            state.record(lr, run.val_acc, diverged=run.status in ("diverged", "failed to train"))
    best, reason = outcome(state)   # e.g. (0.3, "bounded by divergence at η = 1")

The best value is the highest validation score among the values that trained (ties: the smaller
value); values that diverged are never chosen.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

LEARNING_RATE = "η"
MOMENTUM = "λ"
# At most this many values are added beyond each edge of the grid.
EXTENSION_CAP = 3
# Two ratios within this relative tolerance count as the same factor.
_RATIO_TOLERANCE = 0.02
# Values are keyed with this many significant digits (so float noise never makes two values).
_DIGITS = 6
# Extended values are rounded to this many significant digits on their scale (η, or 1 − λ), so
# 0.3 · (0.01/0.003) is 1 and 0.1 · (0.1/0.03) is 0.333.
_EXTENSION_DIGITS = 3

INTERIOR = "interior"
DIVERGENCE = "bounded by divergence"
CAP = "cap reached"
RANGE = "end of range"
PENDING = "pending"
NONE_TRAINED = "none trained"


def _round(value: float) -> float:
    return float(f"{value:.{_DIGITS}g}")


@dataclass(frozen=True)
class Trial:
    """One trained value: its validation score (None when it has none) and whether it diverged or
    failed to train."""

    value: float
    score: float | None
    diverged: bool = False

    @property
    def usable(self) -> bool:
        return not self.diverged and self.score is not None and math.isfinite(self.score)


@dataclass
class GridState:
    """A grid of η or λ values (``kind``: :data:`LEARNING_RATE` or :data:`MOMENTUM`), the results
    recorded so far and the cap of values added per side."""

    kind: str
    grid: tuple[float, ...]
    trials: dict[float, Trial] = field(default_factory=dict)
    cap: int = EXTENSION_CAP

    def __post_init__(self) -> None:
        if self.kind not in (LEARNING_RATE, MOMENTUM):
            raise ValueError(f"a grid is of {LEARNING_RATE!r} or {MOMENTUM!r}, not {self.kind!r}")
        values = sorted({_round(float(v)) for v in self.grid})
        if not values:
            raise ValueError("a grid needs at least one value")
        if self.kind == LEARNING_RATE and values[0] <= 0:
            raise ValueError(f"learning rates must be positive, got {values[0]:g}")
        if self.kind == MOMENTUM and (values[0] < 0 or values[-1] >= 1):
            raise ValueError(f"momentum values must lie in [0, 1), got {', '.join(f'{v:g}' for v in values)}")
        if self.cap < 0:
            raise ValueError(f"the extension cap must be at least 0, not {self.cap}")
        self.grid = tuple(values)

    @classmethod
    def learning_rate(cls, grid: Sequence[float], cap: int = EXTENSION_CAP) -> "GridState":
        return cls(LEARNING_RATE, tuple(grid), cap=cap)

    @classmethod
    def momentum(cls, grid: Sequence[float], cap: int = EXTENSION_CAP) -> "GridState":
        return cls(MOMENTUM, tuple(grid), cap=cap)

    def record(self, value: float, score: float | None, diverged: bool = False) -> None:
        """Record the validation score of ``value`` (None or ``diverged``: it did not train)."""
        key = _round(float(value))
        self.trials[key] = Trial(key, None if score is None else float(score), bool(diverged))

    def tried(self) -> list[float]:
        return sorted(self.trials)

    def extension(self, side: str) -> list[float]:
        """The :attr:`cap` values beyond the grid's ``side`` (``"high"`` or ``"low"`` in the value
        itself), nearest first; for λ, stopped at λ = 0."""
        return _extension(self.kind, self.grid, side, self.cap)


@dataclass(frozen=True)
class GridOutcome:
    """The chosen value (None when nothing trained), why the search stopped there (``reason``, a
    sentence for a table) and ``kind``: :data:`INTERIOR`, :data:`DIVERGENCE`, :data:`CAP`,
    :data:`RANGE`, :data:`PENDING` or :data:`NONE_TRAINED`. Unpacks as ``best, reason``."""

    best: float | None
    reason: str
    kind: str

    def __iter__(self) -> Iterator:
        return iter((self.best, self.reason))


# ----------------------------------------------------------------------------- the scale


def _to_scale(kind: str, value: float) -> float:
    return value if kind == LEARNING_RATE else 1.0 - value


def _from_scale(kind: str, u: float) -> float:
    return _round(u if kind == LEARNING_RATE else 1.0 - u)


def _ratios(scale: Sequence[float]) -> list[float]:
    return [b / a for a, b in zip(scale, scale[1:])]


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= _RATIO_TOLERANCE * max(a, b)


def _period(ratios: Sequence[float]) -> int | None:
    """The smallest period p ≤ 3 the ratios repeat with, seen at least twice (a single ratio is a
    constant factor)."""
    if len(ratios) == 1:
        return 1
    for p in (1, 2, 3):
        if len(ratios) > p and all(_same(ratios[i], ratios[i + p]) for i in range(len(ratios) - p)):
            return p
    return None


def _extension(kind: str, grid: Sequence[float], side: str, cap: int) -> list[float]:
    if side not in ("high", "low"):
        raise ValueError(f"side is 'high' or 'low', not {side!r}")
    # On the scale u (η, or 1 − λ) sorted ascending; λ's high side is u's low side.
    scale = sorted(_to_scale(kind, v) for v in grid)
    if kind == MOMENTUM and scale[0] == 0:
        raise ValueError("λ = 1 has no scale 1 − λ")
    upward = (side == "high") == (kind == LEARNING_RATE)
    if cap == 0:
        return []
    if len(scale) < 2:
        raise ValueError(f"a grid of one value ({grid[0]:g}) has no factor to extend it by")
    ratios = _ratios(scale)
    period = _period(ratios)
    values, u = [], scale[-1] if upward else scale[0]
    for k in range(cap):
        if period is not None:
            # Continue the cycle of ratios beyond the last (upward) or before the first (downward).
            factor = ratios[(len(ratios) + k) % period] if upward else ratios[(-1 - k) % period]
        else:
            factor = ratios[-1] if upward else ratios[0]
        u = float(f"{(u * factor if upward else u / factor):.{_EXTENSION_DIGITS}g}")
        if kind == MOMENTUM and u >= 1.0:  # λ ≤ 0: the range ends at λ = 0
            if max(scale) < 1.0:
                values.append(0.0)
            break
        values.append(_from_scale(kind, u))
    return values


# ----------------------------------------------------------------------------- the planner


def _best(state: GridState) -> Trial | None:
    usable = [t for t in state.trials.values() if t.usable]
    if not usable:
        return None
    return max(usable, key=lambda t: (t.score, -t.value))


def _side_status(state: GridState, best: float | None, side: str) -> tuple[str, float | None]:
    """For one side of the best value (``best`` None: nothing trained, every value is "beyond"):
    (:data:`INTERIOR`, None) when a usable value beyond it scored lower, (:data:`DIVERGENCE`, v)
    when the nearest value beyond it diverged, (:data:`PENDING`, the next value to train) while
    the extension has values left, else (:data:`RANGE`, None) at λ = 0 or (:data:`CAP`, None)."""
    if best is not None:
        beyond = sorted((t for t in state.trials.values() if (t.value > best if side == "high" else t.value < best)),
                        key=lambda t: t.value if side == "high" else -t.value)
        if any(t.usable for t in beyond):
            return INTERIOR, None
        if beyond:
            return DIVERGENCE, beyond[0].value
    planned = [v for v in state.extension(side) if v not in state.trials]
    if planned:
        return PENDING, planned[0]
    if state.kind == MOMENTUM and side == "low" and 0.0 in state.trials:
        return RANGE, None
    return CAP, None


def next_values(state: GridState) -> list[float]:
    """The values to train next: the whole grid first (those not yet recorded), then one value
    beyond each edge the best value sits on (see the module docstring). Empty when done; when no
    value has trained at all, the grid is extended towards the smaller step (lower η or λ)."""
    missing = [v for v in state.grid if v not in state.trials]
    if missing:
        return missing
    best = _best(state)
    if best is None:
        kind, value = _side_status(state, None, "low")
        return [value] if kind == PENDING else []
    todo = []
    for side in ("low", "high"):
        kind, value = _side_status(state, best.value, side)
        if kind == PENDING:
            todo.append(value)
    return todo


def outcome(state: GridState) -> GridOutcome:
    """The best value on the validation score and why the search ended there: "interior",
    "bounded by divergence at η = …", "cap of 3 added values reached", "bounded by λ = 0, the end
    of its range", "values still to train" or "every value diverged"."""
    name = state.kind
    if any(v not in state.trials for v in state.grid):
        return GridOutcome(None, "values still to train", PENDING)
    best = _best(state)
    if best is None:
        if next_values(state):
            return GridOutcome(None, "values still to train", PENDING)
        tried = ", ".join(f"{v:g}" for v in state.tried())
        return GridOutcome(None, f"every value diverged ({name} = {tried})", NONE_TRAINED)
    statuses = {side: _side_status(state, best.value, side) for side in ("low", "high")}
    kinds = {kind for kind, _ in statuses.values()}
    if PENDING in kinds:
        return GridOutcome(best.value, "values still to train", PENDING)
    if kinds == {INTERIOR}:
        return GridOutcome(best.value, INTERIOR, INTERIOR)
    # The best is on an edge (one side, or both when it is the only value that trained): name the
    # side that bounds it, the one without a lower-scoring value beyond.
    reasons = []
    for side in ("low", "high"):
        kind, value = statuses[side]
        if kind == DIVERGENCE:
            reasons.append((DIVERGENCE, f"bounded by divergence at {name} = {value:g}"))
        elif kind == CAP and state.cap == 0:
            reasons.append((CAP, f"on the {side} edge of the grid, not extended"))
        elif kind == CAP:
            reasons.append((CAP, f"cap of {state.cap} added value{'s' if state.cap != 1 else ''} reached "
                                 f"on the {side} side"))
        elif kind == RANGE:
            reasons.append((RANGE, "bounded by λ = 0, the end of its range"))
    return GridOutcome(best.value, "; ".join(text for _, text in reasons), reasons[0][0])
