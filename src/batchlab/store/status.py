"""The statuses of a run, shared by training results and the run store.

A run is ``running`` while it trains (only ever seen in the store), then ends ``finished``,
``diverged`` (its loss became NaN or infinite) or ``failed`` (an exception stopped it). A run
the user stopped (Ctrl-C) is ``interrupted``: not a result, it resumes from its last checkpoint.
"""

from __future__ import annotations

RUNNING = "running"
FINISHED = "finished"
DIVERGED = "diverged"
FAILED = "failed"
INTERRUPTED = "interrupted"
STATUSES = (RUNNING, FINISHED, DIVERGED, FAILED, INTERRUPTED)
# A run with one of these statuses is a result: it is read back, never trained again unless forced.
ENDED_STATUSES = (FINISHED, DIVERGED)
# The statuses a run can be closed with.
FINAL_STATUSES = (FINISHED, DIVERGED, FAILED)
