"""The run store's clock: the one format of every timestamp it writes.

UTC, ISO 8601, to the microsecond (``2026-12-06T20:15:29.123456+00:00``): fixed width and one
time zone, so stored timestamps compare as strings in time order — which is how a command asks
which runs it started (:mod:`batchlab.commands._interrupt`).
"""

from __future__ import annotations

from datetime import datetime, timezone


def store_timestamp() -> str:
    """The current time as the run store writes it."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")
