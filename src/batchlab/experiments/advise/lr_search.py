"""The learning-rate grid at one batch size, extended where its best value sits on an edge.

The plan's grid at B and λ (:meth:`AdvisePlan.learning_rates`) is a first guess. When the best
(η, λ) at B — the one whose seeds all reached the target with the fewest mean steps — has its η on
an edge of its λ's grid, the grid is extended beyond that edge by
:mod:`batchlab.analysis.grid` (the grid's own factor, one value at a time, until the best is
interior, the next value diverges, or three values were added), and the search says which of
the three happened (:func:`search_outcome`), instead of flagging the edge and stopping.

The score a value gets (higher is better, as :class:`~batchlab.analysis.grid.GridState` wants):
−(mean steps S)/budget when every seed reached the target (in [−1, 0)), −1 − (share of seeds
that did not reach it) otherwise, so any value that reached beats any that did not; a value
where a seed diverged is "diverged" (it bounds the search). Ties go to the smaller η, as in
the choice of the best row.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from batchlab.analysis.grid import CAP, GridOutcome, GridState, next_values, outcome
from batchlab.experiments.advise.trace import DIVERGED, REACHED

# Learning rates are matched with this many significant digits (the grid module's own keys).
_DIGITS = 6


def lr_key(lr: float) -> float:
    """η as the grid keys it."""
    return float(f"{lr:.{_DIGITS}g}")


def seeds_by_lr(entries: Sequence[Mapping[str, Any]], momentum: float) -> dict[float, list[Mapping[str, Any]]]:
    """The entries (one per seed) of each η tried at ``momentum``, keyed by :func:`lr_key`."""
    grouped: dict[float, list[Mapping[str, Any]]] = {}
    for entry in entries:
        if entry["momentum"] == momentum:
            grouped.setdefault(lr_key(entry["lr"]), []).append(entry)
    return grouped


def score(seeds: Sequence[Mapping[str, Any]], budget: int) -> tuple[float, bool]:
    """(score, diverged) of one η from its seeds' outcomes (module docstring)."""
    if any(e["status"] == DIVERGED for e in seeds):
        return -2.0, True
    if all(e["status"] == REACHED for e in seeds):
        return -statistics.fmean(e["steps"] for e in seeds) / budget, False
    return -1.0 - sum(e["status"] != REACHED for e in seeds) / len(seeds), False


class GridPlan(Protocol):
    """What the search reads of the advisor's plan (``AdvisePlan``; importing it here would close
    a circle): the η grid at (B, λ) and the update budget at B."""

    def learning_rates(self, batch_size: int, momentum: float) -> Sequence[float]: ...

    def budget(self, batch_size: int) -> Any: ...


def grid_state(plan: GridPlan, batch_size: int, momentum: float,
               entries: Sequence[Mapping[str, Any]]) -> GridState | None:
    """The η grid of (B, λ) with every value tried so far recorded; None for a grid of one value
    (it has no factor to extend it by)."""
    grid = plan.learning_rates(batch_size, momentum)
    if len(grid) < 2:
        return None
    state = GridState.learning_rate(grid)
    for lr, seeds in seeds_by_lr(entries, momentum).items():
        value, diverged = score(seeds, plan.budget(batch_size))
        state.record(lr, value, diverged=diverged)
    return state


def next_learning_rates(plan: GridPlan, batch_size: int, entries: Sequence[Mapping[str, Any]],
                        best_momentum: float | None) -> list[float]:
    """The η values to train next at (B, ``best_momentum``): beyond the edge the best η sits on;
    empty when the search there is done (or nothing reached the target)."""
    if best_momentum is None:
        return []
    state = grid_state(plan, batch_size, best_momentum, entries)
    return [] if state is None else next_values(state)


def search_outcome(plan: GridPlan, batch_size: int, momentum: float,
                   entries: Sequence[Mapping[str, Any]]) -> GridOutcome | None:
    """Why the η search at (B, λ) ended where it did; None for a grid of one value."""
    state = grid_state(plan, batch_size, momentum, entries)
    return None if state is None else outcome(state)


def still_at_edge(result: GridOutcome | None) -> bool:
    """Whether the best η still sits on an edge after the extension (its cap was reached)."""
    return result is not None and result.kind == CAP
