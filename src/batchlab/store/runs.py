"""Runs in the store: their rows, per-epoch metrics, timings, analysis records and files.

* ``runs`` rows are started, logged and finished by :class:`RunStore`; a finished or diverged run
  is a result and is never replaced unless forced.
* ``metrics`` writes are ``INSERT OR REPLACE`` so an epoch logged again after a resume never
  appears twice. SQLite stores NaN as NULL, so a NULL value reads back as NaN (a diverged loss
  stays visible as NaN).

Final weights and resumable checkpoints are torch files beside the store, in
``<store dir>/<store stem>-weights/``, written atomically and loaded only with
``torch.load(weights_only=True)``, which never unpickles arbitrary objects.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from batchlab.errors import StoreError
from batchlab.files import atomic_write, json_default
from batchlab.status import ENDED_STATUSES, FINAL_STATUSES, INTERRUPTED, RUNNING, STATUSES
from batchlab.store.database import TIMING_COLUMNS, Database

_TIMING_FLAGS = ("extrapolated", "synthetic_data")
_TIMING_JSON = ("environment", "extra")


# What :meth:`RunStore.claim_run` decided.
CLAIM_STARTED = "started"
CLAIM_ENDED = "ended"
CLAIM_BUSY = "busy"


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
        """True for a run that is a result (finished or diverged)."""
        return self.status in ENDED_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RunStore(Database):
    """A batchlab run store at ``path`` (created with its parent folders unless ``create=False``).

    Raises :class:`StoreError` when ``path`` is a folder, a file that is not SQLite, an SQLite
    database that batchlab did not make, or (with ``create=False``) missing.

    Example::

        with RunStore("batchlab-runs/runs.db") as store:
            store.start_run(rid, config.to_dict(), environment)
            store.log_epoch(rid, 1, {"train_loss": 0.41, "train_acc": 0.88})
            store.finish_run(rid, "finished", {"test_acc": 0.87})
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        expanded = Path(path).expanduser()
        self.weights_dir = expanded.parent / f"{expanded.stem}-weights"
        super().__init__(expanded, create=create)

    # ----------------------------------------------------------------------------- runs

    def get(self, run_id: str) -> RunRecord | None:
        """The run ``run_id``, or None when the store has no such run."""
        rows = self._read("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return _record(rows[0]) if rows else None

    def start_run(self, run_id: str, config: dict, environment: dict, *, force: bool = False) -> None:
        """Record that ``run_id`` is running in this process (:meth:`claim_run`); a run that is
        already ended (without ``force``) or that another live process trains is refused."""
        outcome, record = self.claim_run(run_id, config, environment, force=force)
        if outcome == CLAIM_ENDED:
            raise StoreError(
                f"run {run_id} is already {record.status} in {self.path}; allowed: force=True (--force) to train it again"
            )
        if outcome == CLAIM_BUSY:
            raise StoreError(
                f"run {run_id} is being trained by process {record.pid} on {record.host}; allowed: wait for it to end"
            )

    def claim_run(
        self, run_id: str, config: dict, environment: dict, *, force: bool = False
    ) -> tuple[str, RunRecord | None]:
        """Decide in one transaction who trains ``run_id``, and record it; returns
        ``(outcome, record)``:

        * ``("ended", record)``: the store holds it as finished or diverged and ``force`` is off;
          nothing is written.
        * ``("busy", record)``: another live process on this host is training it (its row is
          ``running`` with that host and pid); nothing is written. A process on another host
          cannot be checked, so its run is taken over.
        * ``("started", None)``: this process now trains it: status ``running``, a new start
          time, this host and pid. The metrics of an unfinished run are kept only when a
          checkpoint exists to resume from (the resumed epochs then overwrite themselves). With
          ``force`` an ended run's metrics, weights, checkpoint and the analysis records whose
          key names its id are removed first.
        """
        resuming = self._checkpoint_path(run_id).exists() and not force
        now = _now()
        host, pid = socket.gethostname(), os.getpid()

        def body(conn: sqlite3.Connection) -> tuple[str, RunRecord | None]:
            row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            created = now
            if row is not None:
                record = _record(row)
                if record.status in ENDED_STATUSES and not force:
                    return CLAIM_ENDED, record
                if record.status == RUNNING and record.host == host and record.pid != pid and _alive(record.pid):
                    return CLAIM_BUSY, record
                if record.status not in ENDED_STATUSES and not force:
                    created = record.created
            if not resuming:
                conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            if force:
                # Analyses of the old minimum (Hessian, sharpness, landscapes) name it in their key.
                conn.execute("DELETE FROM records WHERE instr(key, ?) > 0", (run_id,))
            conn.execute(
                "INSERT OR REPLACE INTO runs (run_id, status, config, environment, summary, created, "
                "started, finished, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                (run_id, RUNNING, _dumps(config), _dumps(environment), _dumps({}), created, now, host, pid),
            )
            return CLAIM_STARTED, None

        outcome, record = self._write(body)
        if outcome == CLAIM_STARTED and force:
            # The new run owns the id from here on; the old one's files go with its rows.
            self._weights_path(run_id).unlink(missing_ok=True)
            self.delete_checkpoint(run_id)
        return outcome, record

    def mark_interrupted(self, run_id: str) -> None:
        """Mark a ``running`` run ``interrupted`` (stopped by the user); its checkpoint stays."""
        self._write(lambda conn: conn.execute(
            "UPDATE runs SET status = ? WHERE run_id = ? AND status = ?", (INTERRUPTED, run_id, RUNNING)))

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float | None]) -> None:
        """Store the metrics of one epoch; logging an epoch again replaces its values.

        Values are stored as floats (NaN reads back as NaN); a ``None`` value is left out.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise StoreError(f"epoch {epoch!r} is invalid; allowed: an integer ≥ 0")
        now = time.time()
        rows = [(run_id, epoch, str(key), _as_float(key, value), now)
                for key, value in metrics.items() if value is not None]

        def body(conn: sqlite3.Connection) -> None:
            self._require_run(conn, run_id)
            conn.executemany(
                "INSERT OR REPLACE INTO metrics (run_id, epoch, key, value, wall_time) VALUES (?, ?, ?, ?, ?)",
                rows,
            )

        self._write(body)

    def finish_run(self, run_id: str, status: str, summary: dict) -> None:
        """Close a run with ``status`` (finished, diverged or failed) and its final ``summary``."""
        if status not in FINAL_STATUSES:
            raise StoreError(f"unknown final status {status!r}; allowed: {', '.join(FINAL_STATUSES)}")
        encoded = _dumps(summary)

        def body(conn: sqlite3.Connection) -> None:
            self._require_run(conn, run_id)
            conn.execute(
                "UPDATE runs SET status = ?, summary = ?, finished = ? WHERE run_id = ?",
                (status, encoded, _now(), run_id),
            )

        self._write(body)

    def delete_run(self, run_id: str) -> None:
        """Remove a run completely: its row, its metrics, its weights and its checkpoint."""

        def body(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

        self._write(body)
        self._weights_path(run_id).unlink(missing_ok=True)
        self.delete_checkpoint(run_id)

    def runs(self, *, status: str | None = None, where: Mapping[str, Any] | None = None) -> list[RunRecord]:
        """Runs in the order they were created, optionally filtered.

        ``status`` keeps one status; ``where`` maps config keys to a value or a list of allowed
        values (numbers compare by value, so ``64`` matches ``64.0``); a run lacking a key never
        matches it.
        """
        if status is not None and status not in STATUSES:
            raise StoreError(f"unknown run status {status!r}; allowed: {', '.join(STATUSES)}")
        if status is None:
            rows = self._read("SELECT * FROM runs ORDER BY created, run_id")
        else:
            rows = self._read("SELECT * FROM runs WHERE status = ? ORDER BY created, run_id", (status,))
        records = [_record(row) for row in rows]
        if where:
            records = [r for r in records if all(_config_matches(r.config, k, v) for k, v in where.items())]
        return records

    def metrics(self, run_id: str) -> list[dict[str, float]]:
        """One dict per logged epoch, ``{"epoch": e, key: value, ...}``, sorted by epoch."""
        rows = self._read(
            "SELECT epoch, key, value FROM metrics WHERE run_id = ? ORDER BY epoch, key", (run_id,)
        )
        by_epoch: dict[int, dict[str, Any]] = {}
        for row in rows:
            entry = by_epoch.setdefault(row["epoch"], {"epoch": row["epoch"]})
            entry[row["key"]] = math.nan if row["value"] is None else row["value"]
        return list(by_epoch.values())

    def _require_run(self, conn: sqlite3.Connection, run_id: str) -> None:
        if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise StoreError(f"unknown run id {run_id!r} in {self.path}; allowed: a run started with start_run")

    # ---------------------------------------------------------------- weights, checkpoints

    def _weights_path(self, run_id: str) -> Path:
        return self.weights_dir / f"{_safe_file_stem(run_id)}.pt"

    def _checkpoint_path(self, run_id: str) -> Path:
        return self.weights_dir / f"{_safe_file_stem(run_id)}.ckpt.pt"

    def save_weights(self, run_id: str, state_dict: Mapping[str, Any]) -> Path:
        """Save final weights to ``<weights_dir>/<run_id>.pt`` atomically; returns the path."""
        target = self._weights_path(run_id)
        _atomic_torch_save(dict(state_dict), target)
        return target

    def load_weights(self, run_id: str) -> dict:
        """The saved weights of ``run_id`` on the CPU (loaded with ``weights_only=True``)."""
        target = self._weights_path(run_id)
        if not target.is_file():
            raise StoreError(
                f"run {run_id} has no saved weights in {self.weights_dir}; allowed: a run trained "
                "with its weights kept (without --no-weights)"
            )
        return _safe_torch_load(target)

    def has_weights(self, run_id: str) -> bool:
        return self._weights_path(run_id).is_file()

    def save_checkpoint(self, run_id: str, payload: Mapping[str, Any]) -> None:
        """Save a resumable checkpoint (tensors and plain data) to ``<run_id>.ckpt.pt`` atomically."""
        _atomic_torch_save(dict(payload), self._checkpoint_path(run_id))

    def has_checkpoint(self, run_id: str) -> bool:
        """Whether ``run_id`` has a checkpoint to resume from (without loading it)."""
        return self._checkpoint_path(run_id).is_file()

    def load_checkpoint(self, run_id: str) -> dict | None:
        """The last checkpoint of ``run_id`` (``weights_only=True``), or None when there is none."""
        target = self._checkpoint_path(run_id)
        if not target.is_file():
            return None
        return _safe_torch_load(target)

    def delete_checkpoint(self, run_id: str) -> None:
        self._checkpoint_path(run_id).unlink(missing_ok=True)

    # ----------------------------------------------------------------------------- timings

    def add_timing(self, row: Mapping[str, Any]) -> int:
        """Store one timing measurement; returns its id.

        Keys named like a timings column fill that column (``created`` defaults to now,
        ``extrapolated`` and ``synthetic_data`` are flags); any other key is kept in ``extra``.
        """
        values = dict(row)
        values.pop("id", None)
        extra = dict(values.pop("extra", None) or {})
        extra.update({k: values.pop(k) for k in list(values) if k not in TIMING_COLUMNS})
        values["extra"] = extra
        values.setdefault("created", _now())
        for flag in _TIMING_FLAGS:
            if values.get(flag) is not None:
                values[flag] = int(bool(values[flag]))
        for key in _TIMING_JSON:
            values[key] = None if values.get(key) is None else _dumps(values[key])
        columns = list(values)
        sql = (f"INSERT INTO timings ({', '.join(columns)}) "
               f"VALUES ({', '.join('?' for _ in columns)})")
        parameters = [_sql_value(values[c]) for c in columns]
        return self._write(lambda conn: conn.execute(sql, parameters).lastrowid)

    def timings(self, **filters: Any) -> list[dict[str, Any]]:
        """Timing rows in the order they were added, filtered by column equality.

        ``store.timings(model="mlp", device="cuda")``; a filter value of None matches NULL.
        """
        allowed = ("id",) + tuple(c for c in TIMING_COLUMNS if c not in _TIMING_JSON)
        unknown = sorted(set(filters) - set(allowed))
        if unknown:
            raise StoreError(f"unknown timing filter(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        clauses, parameters = [], []
        for key, value in filters.items():
            if value is None:
                clauses.append(f"{key} IS NULL")
            else:
                clauses.append(f"{key} = ?")
                parameters.append(int(bool(value)) if key in _TIMING_FLAGS else _sql_value(value))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(f"SELECT * FROM timings{where} ORDER BY id", parameters)
        result = []
        for row in rows:
            entry = dict(row)
            for key in _TIMING_JSON:
                entry[key] = {} if entry[key] is None else json.loads(entry[key])
            for flag in _TIMING_FLAGS:
                if entry[flag] is not None:
                    entry[flag] = bool(entry[flag])
            result.append(entry)
        return result

    # ----------------------------------------------------------------------------- records

    def put_record(self, kind: str, key: str, value: Mapping[str, Any]) -> None:
        """Store (or replace) the JSON result ``value`` of analysis ``kind`` under ``key``."""
        encoded = _dumps(dict(value))
        self._write(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO records (kind, key, value, created) VALUES (?, ?, ?, ?)",
            (kind, key, encoded, _now()),
        ))

    def get_record(self, kind: str, key: str) -> dict | None:
        rows = self._read("SELECT value FROM records WHERE kind = ? AND key = ?", (kind, key))
        return json.loads(rows[0]["value"]) if rows else None

    def records(self, kind: str) -> list[dict]:
        """The values stored under ``kind``, sorted by key (see :meth:`record_items` for the keys)."""
        return [value for _, value in self.record_items(kind)]

    def record_items(self, kind: str) -> list[tuple[str, dict]]:
        """``(key, value)`` pairs stored under ``kind``, sorted by key."""
        rows = self._read("SELECT key, value FROM records WHERE kind = ? ORDER BY key", (kind,))
        return [(row["key"], json.loads(row["value"])) for row in rows]

# ----------------------------------------------------------------------------- helpers


def _alive(pid: int | None) -> bool:
    """Whether process ``pid`` of this host is alive (a zombie, dead but not yet reaped, is not)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _dumps(value: Any) -> str:
    # NaN and infinities are kept (Python's json reads them back); they are real results here.
    return json.dumps(value, sort_keys=True, default=json_default)


def _as_float(key: Any, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise StoreError(f"metric {key!r} has value {value!r}; allowed: a number") from None


def _sql_value(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy / torch scalars
    if isinstance(value, Path):
        return str(value)
    return value


def _record(row: sqlite3.Row) -> RunRecord:
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


def _same_value(stored: Any, wanted: Any) -> bool:
    numbers = (int, float)
    if (isinstance(stored, numbers) and isinstance(wanted, numbers)
            and not isinstance(stored, bool) and not isinstance(wanted, bool)):
        return float(stored) == float(wanted)
    if isinstance(stored, (list, tuple)) and isinstance(wanted, (list, tuple)):
        return len(stored) == len(wanted) and all(_same_value(a, b) for a, b in zip(stored, wanted))
    return stored == wanted


def _config_matches(config: Mapping[str, Any], key: str, wanted: Any) -> bool:
    if key not in config:
        return False
    # A list is a set of allowed values, unless the stored value is itself that list
    # (hidden widths: where={"hidden": [512, 512]}).
    if isinstance(wanted, (list, tuple, set, frozenset)):
        if isinstance(wanted, (list, tuple)) and _same_value(config[key], wanted):
            return True
        return any(_same_value(config[key], choice) for choice in wanted)
    return _same_value(config[key], wanted)


def _safe_file_stem(run_id: str) -> str:
    if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
        raise StoreError(f"run id {run_id!r} cannot name a file; allowed: letters, digits, '-' and '_'")
    return run_id


def _atomic_torch_save(payload: dict, target: Path) -> None:
    import torch

    atomic_write(target, lambda handle: torch.save(payload, handle))


def _safe_torch_load(path: Path) -> dict:
    """torch.load with ``weights_only=True``: tensors and plain data only, never arbitrary objects."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure means the file is not usable
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StoreError(
            f"{path} cannot be loaded safely ({first_line}); allowed: weights or checkpoints saved by batchlab"
        ) from None
