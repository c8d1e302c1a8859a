"""The local executor: train a plan's work units in this process, one after the other.

Each run writes the store as it trains (one metrics row and one checkpoint per epoch, loop.py's
and packed.py's own logic), so a sweep killed at any moment — SIGKILL included — and started
again skips the runs that ended and resumes the others from their last checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from batchlab.sweep.plan import SweepPlan
from batchlab.train import train
from batchlab.train.packed import PACKED, train_pack
from batchlab.train.result import RunResult

if TYPE_CHECKING:
    from batchlab.store import RunStore


def run_local(
    plan: SweepPlan,
    store: RunStore | None,
    *,
    progress: bool | None = None,
    keep_weights: bool = True,
    force: bool = False,
) -> Iterator[RunResult]:
    """Train every unit of ``plan``; yields each run's result as soon as it ends.

    ``progress`` is the per-epoch display of each run (see :func:`batchlab.train`).
    """
    for unit in plan.units:
        splits = plan.splits_for(unit.configs[0])
        if unit.strategy == PACKED:
            yield from train_pack(
                unit.configs,
                store=store,
                splits=splits,
                progress=progress,
                keep_weights=keep_weights,
                force=force,
                strategy=PACKED,
            )
            continue
        for config in unit.configs:
            yield train(config, store=store, force=force, progress=progress, splits=splits,
                        keep_weights=keep_weights)
