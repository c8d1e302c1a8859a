"""The line printed when Ctrl-C stops a command: what the store kept, and how to go on.

A run that Ctrl-C stops is marked ``interrupted`` and keeps the checkpoint of its last complete
epoch (:mod:`batchlab.training.session`); the same command run again resumes it from the epoch
after, and returns runs that ended from the store. The line names the runs of ``--store`` that
this command started (their start time is not before the command's) and that are now
interrupted, with the epoch each resumes from, and counts those that ended meanwhile. A command
without a store, or a store that cannot be read at that moment, gets the plain line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batchlab.store.clock import store_timestamp as now

PLAIN = "batchlab: interrupted"
# Interrupted runs named one by one; more are counted.
NAMED_RUNS = 3


def interrupt_line(store_path: Any, since: str) -> str:
    """The line for a command with ``--store store_path`` started at ``since`` (:func:`now`)."""
    if store_path is None or not Path(store_path).is_file():
        return PLAIN
    try:
        return _line(Path(store_path), since)
    except Exception:  # the store is advice here: a second problem must not hide the interrupt
        return PLAIN


def _line(store_path: Path, since: str) -> str:
    from batchlab.store import RunStore
    from batchlab.store.status import ENDED_STATUSES, INTERRUPTED

    with RunStore(store_path, create=False) as store:
        started_here = [run for run in store.runs() if (run.started or "") >= since]
        ended = sum(run.status in ENDED_STATUSES for run in started_here)
        resumes = {run.run_id: _resume_epoch(store, run.run_id) for run in started_here
                   if run.status == INTERRUPTED}
    if not resumes:
        return PLAIN if not ended else f"{PLAIN}; {ended} run(s) ended and are stored in {store_path}"
    parts = []
    if ended:
        parts.append(f"{ended} run(s) ended and are stored")
    if len(resumes) == 1:
        ((run_id, epoch),) = resumes.items()
        saved = f"run {run_id} saved after epoch {epoch - 1}" if epoch > 1 else \
            f"run {run_id} stopped in its first epoch, before anything could be saved"
        parts.append(f"{saved} in {store_path}")
        return f"{PLAIN}; {', '.join(parts)}; run the same command again to resume from epoch {epoch}"
    named = [f"{run_id} from epoch {epoch}" for run_id, epoch in list(resumes.items())[:NAMED_RUNS]]
    if len(resumes) > NAMED_RUNS:
        named.append(f"{len(resumes) - NAMED_RUNS} more")
    parts.append(f"{len(resumes)} unfinished run(s) saved at their last complete epoch in {store_path}")
    return (f"{PLAIN}; {', '.join(parts)}; run the same command again to resume them ({', '.join(named)})"
            + ("; ended runs are not trained again" if ended else ""))


def _resume_epoch(store: Any, run_id: str) -> int:
    """The epoch the run resumes from: the one after its checkpoint's, or 1 without one."""
    checkpoint = store.load_checkpoint(run_id) if store.has_checkpoint(run_id) else None
    return int(checkpoint["epoch"]) + 1 if checkpoint else 1
