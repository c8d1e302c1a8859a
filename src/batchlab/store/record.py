"""One stored run as Python sees it: :class:`RunRecord`, a row of the ``runs`` table with its JSON
columns decoded. Its own module so that the store (runs.py) and the queries over it (query.py)
both import it without importing each other."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from batchlab.store.status import is_result


@dataclass
class RunRecord:
    """One row of the ``runs`` table, JSON columns decoded."""

    run_id: str
    status: str
    config: dict[str, Any]
    environment: dict[str, Any]
    summary: dict[str, Any]
    created: str
    started: str | None
    finished: str | None
    host: str | None = None
    pid: int | None = None

    @property
    def ended(self) -> bool:
        """True for a run that is a result, reused instead of trained again
        (:func:`batchlab.store.status.is_result`: finished, diverged or failed to train)."""
        return is_result(self.status)

    @property
    def batch_size_value(self) -> int | None:
        """The run's examples per update as a number (:func:`resolved_batch_size`)."""
        return resolved_batch_size(self.config.get("batch_size"), self.summary)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolved_batch_size(configured: Any, summary: Mapping[str, Any]) -> int | None:
    """A stored run's examples per update as a number: the ``batch_size`` of its summary, where
    the trainer writes the size it resolved (``"full"`` as the training-set size N), else the
    configured batch size when that is a number; None for ``"full"`` in a run that stopped before
    it resolved it."""
    for value in (summary.get("batch_size"), configured):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
            return int(value)
    return None


def record_from_row(row: sqlite3.Row) -> RunRecord:
    """The :class:`RunRecord` of one ``runs`` row."""
    return RunRecord(
        run_id=row["run_id"],
        status=row["status"],
        config=json.loads(row["config"]),
        environment=json.loads(row["environment"]),
        summary=json.loads(row["summary"]),
        created=row["created"],
        started=row["started"],
        finished=row["finished"],
        host=row["host"],
        pid=row["pid"],
    )
