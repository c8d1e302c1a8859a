"""How long an experiment will take, from a pilot of a few real updates: the one rule ``advise``,
``gap`` and ``largebatch`` print their estimate by.

The pilot (:func:`pilot_times`) runs one update untimed (it pays for lazy initialization:
allocator growth, kernel selection), then times ``updates`` more followed by one evaluation, and
then one evaluation alone; the time per update is the difference over ``updates``. The
evaluation ends each timed block because it reads its results back, so device work queued by the
updates is counted. An experiment multiplies the two times by the updates and evaluations it
still has to run (its runs not yet in the store), and :func:`estimate_line` turns the sum into
the one line printed before training, when it exceeds :data:`ESTIMATE_NOTE_S`.

A pilot is not a measurement: the load of other processes stretches it as it stretches the runs,
and an estimate is an upper bound only where the experiment counts every update it may run.
Nothing here imports torch: the callables given do the work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# Updates a pilot times (after one untimed).
PILOT_UPDATES = 2

# An experiment expected to take longer than this prints an estimate of its time first.
ESTIMATE_NOTE_S = 120.0


@dataclass(frozen=True)
class PilotTimes:
    """Seconds of one update and of one evaluation, from a pilot."""

    update_s: float
    evaluation_s: float


def pilot_times(run_updates: Callable[[int], object], evaluate: Callable[[], object], *,
                updates: int = PILOT_UPDATES, clock: Callable[[], float] = time.perf_counter) -> PilotTimes:
    """The pilot of the module docstring: ``run_updates(n)`` runs n consecutive updates,
    ``evaluate()`` one evaluation that reads its results back; ``clock`` is read four times."""
    run_updates(1)  # untimed: the first update pays for lazy initialization
    begun = clock()
    run_updates(updates)
    evaluate()
    updates_and_evaluation = clock() - begun
    begun = clock()
    evaluate()
    evaluation = clock() - begun
    return PilotTimes(max(updates_and_evaluation - evaluation, 0.0) / updates, evaluation)


def duration_text(seconds: float) -> str:
    """Seconds below two minutes, minutes below two hours, else hours: "45 s", "12 min", "2.5 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_line(seconds: float | None, scope: str) -> str | None:
    """"estimated time: up to about 12 min <scope>" when ``seconds`` exceeds
    :data:`ESTIMATE_NOTE_S`; None otherwise (None: nothing left to run)."""
    if seconds is None or seconds <= ESTIMATE_NOTE_S:
        return None
    return f"estimated time: up to about {duration_text(seconds)} {scope}"
