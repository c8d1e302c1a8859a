"""The local executor: train a plan's work units in this process, one after the other.

Each run writes the store as it trains (one metrics row and one checkpoint per epoch, loop.py's
and packed.py's own logic), so a sweep killed at any moment — SIGKILL included — and started
again skips the runs that ended and resumes the others from their last checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from batchlab.sweep.plan import SweepPlan
from batchlab.training.packed import train_planned
from batchlab.training.result import RunResult

if TYPE_CHECKING:
    from batchlab.store import RunStore


def run_local(
    plan: SweepPlan,
    store: RunStore | None,
    *,
    progress: bool | None = None,
    keep_weights: bool = True,
    keep_state: bool = False,
    force: bool = False,
) -> Iterator[RunResult]:
    """Train every unit of ``plan`` as planned; yields each run's result as its unit ends.

    ``progress`` is the per-epoch display of each run, ``keep_state`` whether a finished run keeps
    its final training state (see :func:`batchlab.train`).
    """
    for unit in plan.units:
        yield from train_planned([unit], store=store, splits=plan.splits_for(unit.configs[0]), progress=progress,
                                 keep_weights=keep_weights, keep_state=keep_state, force=force, task=plan.task)
