"""The run store: one SQLite file per study, safe with several processes writing at once.

Tables, in the spirit of MLflow's tracking model:

* ``meta(key, value)``: ``schema = batchlab-runs`` and ``schema_version = 1``; a file without them
  is refused, so batchlab never writes into someone else's database.
* ``runs``: one row per run id (the hash of the resolved config) with its status (``running``,
  ``finished``, ``diverged``, ``failed``), config, environment and summary as JSON, timestamps
  (ISO 8601, UTC), host and pid.
* ``metrics(run_id, epoch, key, value, wall_time)``: one value per (run, epoch, key); writes are
  ``INSERT OR REPLACE`` so an epoch logged again after a resume never appears twice. SQLite stores
  NaN as NULL, so a NULL value reads back as NaN (a diverged loss stays visible as NaN).
* ``timings``: rows measured by ``batchlab timing`` (per-update time of one model and batch size).
* ``records(kind, key, value)``: JSON results of other analyses (e.g. kind ``sharpness``).

Final weights and resumable checkpoints are torch files beside the store, in
``<store dir>/<store stem>-weights/``, written atomically and loaded only with
``torch.load(weights_only=True)``, which never unpickles arbitrary objects.

Concurrency and crashes: the journal is WAL, so readers never block the writer and a process killed
at any instant leaves every committed transaction readable. Every write is one short
``BEGIN IMMEDIATE`` transaction that commits before the method returns; a writer waits up to
``BUSY_TIMEOUT_S`` for the lock and, should SQLite still answer "database is locked", retries with
a randomized back-off.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from batchlab.errors import StoreError

SCHEMA_NAME = "batchlab-runs"
# 2: status ``interrupted`` (a run stopped by the user, resumable). Version 1 stores are
# upgraded in place when opened.
SCHEMA_VERSION = 2

RUNNING = "running"
FINISHED = "finished"
DIVERGED = "diverged"
FAILED = "failed"
INTERRUPTED = "interrupted"
STATUSES = (RUNNING, FINISHED, DIVERGED, FAILED, INTERRUPTED)
# A run with one of these statuses is a result; start_run refuses to overwrite it without force.
ENDED_STATUSES = (FINISHED, DIVERGED)
FINAL_STATUSES = (FINISHED, DIVERGED, FAILED)

# How long one statement waits for another process's write lock before SQLite gives up.
BUSY_TIMEOUT_S = 30.0
# Further attempts after SQLite has given up waiting (each after a randomized back-off).
LOCK_RETRIES = 5

_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'diverged', 'failed', 'interrupted')),
        config TEXT NOT NULL,
        environment TEXT NOT NULL,
        summary TEXT NOT NULL,
        created TEXT NOT NULL,
        started TEXT,
        finished TEXT,
        host TEXT,
        pid INTEGER)""",
    "CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status)",
    """CREATE TABLE IF NOT EXISTS metrics (
        run_id TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        key TEXT NOT NULL,
        value REAL,
        wall_time REAL NOT NULL,
        PRIMARY KEY (run_id, epoch, key))""",
    """CREATE TABLE IF NOT EXISTS timings (
        id INTEGER PRIMARY KEY,
        created TEXT NOT NULL,
        device TEXT,
        device_name TEXT,
        data_path TEXT,
        model TEXT,
        batch_size INTEGER,
        n_examples INTEGER,
        per_update_median_s REAL,
        per_update_q25_s REAL,
        per_update_q75_s REAL,
        per_epoch_s REAL,
        repeats INTEGER,
        extrapolated INTEGER,
        synthetic_data INTEGER,
        environment TEXT,
        extra TEXT)""",
    """CREATE TABLE IF NOT EXISTS records (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        created TEXT NOT NULL,
        PRIMARY KEY (kind, key))""",
)
_TABLES = ("meta", "runs", "metrics", "timings", "records")

# Columns of the timings table a caller may set; other keys of a timing row go into ``extra``.
TIMING_COLUMNS = (
    "created",
    "device",
    "device_name",
    "data_path",
    "model",
    "batch_size",
    "n_examples",
    "per_update_median_s",
    "per_update_q25_s",
    "per_update_q75_s",
    "per_epoch_s",
    "repeats",
    "extrapolated",
    "synthetic_data",
    "environment",
    "extra",
)
_TIMING_FLAGS = ("extrapolated", "synthetic_data")
_TIMING_JSON = ("environment", "extra")


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


class RunStore:
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
        self.path = Path(path).expanduser()
        self.weights_dir = self.path.parent / f"{self.path.stem}-weights"
        self._create = create
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._owner_pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []
        self._check_path()
        try:
            self._with_lock_retries(self._open_schema)
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------------------- opening

    def _check_path(self) -> None:
        if self.path.is_dir():
            raise self._not_a_store("a folder")
        if not self.path.exists():
            if not self._create:
                raise StoreError(
                    f"no run store at {self.path}; allowed: the path of a store made by "
                    "`batchlab train` or `batchlab sweep` (see --store)"
                )
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(
                    f"cannot create the run store folder {self.path.parent} ({error.strerror}); "
                    "allowed: a path in a writable folder"
                ) from None
            return
        try:
            with open(self.path, "rb") as handle:
                head = handle.read(len(_SQLITE_MAGIC))
        except OSError as error:
            raise StoreError(
                f"cannot read the run store {self.path} ({error.strerror}); allowed: a readable file"
            ) from None
        # An empty file is an SQLite database without tables (another process may be creating it).
        if head and head != _SQLITE_MAGIC:
            raise self._not_a_store("not an SQLite file")
        if not head and not self._create:
            raise self._not_a_store("an empty file")

    def _not_a_store(self, why: str) -> StoreError:
        return StoreError(
            f"{self.path} is not a batchlab run store ({why}); allowed: a store made by batchlab, or a new path"
        )

    def _open_schema(self) -> None:
        """Check the file is ours (read only), then switch to WAL and create missing tables."""
        conn = self._conn()
        try:
            tables = self._table_names(conn)
            if tables:
                version = self._check_meta(conn, tables)
                if set(_TABLES) <= tables and self._journal_mode(conn) == "wal" and version == SCHEMA_VERSION:
                    return
            if self._journal_mode(conn) != "wal":
                # Switching needs the write lock; it is permanent, stored in the file itself.
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(
                        f"cannot use the WAL journal for {self.path} (got {mode}); "
                        "allowed: a store on a local file system"
                    )
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have created the schema while this one waited for the lock.
                tables = self._table_names(conn)
                if tables and self._check_meta(conn, tables) < SCHEMA_VERSION and "runs" in tables:
                    _upgrade_runs_table(conn)
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [("schema", SCHEMA_NAME), ("schema_version", str(SCHEMA_VERSION))],
                )
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as error:
            if _is_locked(error):
                raise
            raise self._not_a_store(f"SQLite says: {error}") from None

    @staticmethod
    def _table_names(conn: sqlite3.Connection) -> set[str]:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {row[0] for row in rows}

    @staticmethod
    def _journal_mode(conn: sqlite3.Connection) -> str:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    def _check_meta(self, conn: sqlite3.Connection, tables: set[str]) -> int:
        """Refuse a database that is not a batchlab store; returns its schema version."""
        if "meta" not in tables:
            raise self._not_a_store("an SQLite database without batchlab's meta table")
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError as error:
            if _is_locked(error):
                raise
            raise self._not_a_store("an SQLite database with a different meta table") from None
        if meta.get("schema") != SCHEMA_NAME:
            raise self._not_a_store(f"its schema is {meta.get('schema')!r}, not {SCHEMA_NAME!r}")
        version = meta.get("schema_version", "")
        if not version.isdigit() or int(version) > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has run-store schema version {version!r}, newer than this batchlab "
                f"reads; allowed: version {SCHEMA_VERSION} or older (upgrade batchlab to read it)"
            )
        return int(version)

    def _conn(self) -> sqlite3.Connection:
        """This process's connection, opened on first use (and again in a forked child)."""
        if self._connection is not None and os.getpid() != self._owner_pid:
            # A connection must not be used across fork; closing the inherited copy could also
            # disturb the parent's locks, so it is only set aside.
            self._inherited.append(self._connection)
            self._connection = None
            self._owner_pid = os.getpid()
        if self._connection is None:
            try:
                conn = sqlite3.connect(
                    str(self.path),
                    timeout=BUSY_TIMEOUT_S,
                    isolation_level=None,  # autocommit: transactions are explicit BEGIN IMMEDIATE
                    check_same_thread=False,  # guarded by self._lock
                )
            except sqlite3.Error as error:
                raise StoreError(f"cannot open the run store {self.path} ({error}); allowed: a writable path") from None
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            # In WAL mode NORMAL keeps every committed transaction through a killed process; only
            # a power loss can drop the last few, and commits stay fast for per-epoch logging.
            conn.execute("PRAGMA synchronous = NORMAL")
            self._connection = conn
        return self._connection

    # ------------------------------------------------------------------ transactions

    def _with_lock_retries(self, action: Callable[[], Any]) -> Any:
        delay = 0.05
        for attempt in range(LOCK_RETRIES + 1):
            try:
                return action()
            except sqlite3.OperationalError as error:
                if not _is_locked(error):
                    raise StoreError(f"run store {self.path}: {error}") from None
                if attempt == LOCK_RETRIES:
                    raise StoreError(
                        f"run store {self.path} stayed locked by another process for over "
                        f"{BUSY_TIMEOUT_S * (LOCK_RETRIES + 1):.0f} s; allowed: retry once the other writer is done"
                    ) from None
                time.sleep(delay * (1.0 + random.random()))
                delay = min(delay * 2.0, 2.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(self, body: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``body(conn)`` in one ``BEGIN IMMEDIATE`` transaction, committed before returning."""

        def attempt() -> Any:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        with self._lock:
            return self._with_lock_retries(attempt)

    def _read(self, sql: str, parameters: Iterable[Any] = ()) -> list[sqlite3.Row]:
        def attempt() -> list[sqlite3.Row]:
            return self._conn().execute(sql, tuple(parameters)).fetchall()

        with self._lock:
            return self._with_lock_retries(attempt)

    # ----------------------------------------------------------------------------- runs

    def get(self, run_id: str) -> RunRecord | None:
        """The run ``run_id``, or None when the store has no such run."""
        rows = self._read("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return _record(rows[0]) if rows else None

    def start_run(self, run_id: str, config: dict, environment: dict, *, force: bool = False) -> None:
        """Record that ``run_id`` is running (status ``running``, new start time, this host/pid).

        A ``running`` or ``failed`` row is replaced. Its metrics are kept only when a checkpoint
        exists to resume from (the resumed epochs then overwrite themselves); without one the run
        starts over, so its old metrics are dropped. A finished or diverged run is a result and is
        never replaced unless ``force`` (then its metrics are dropped too).
        """
        resuming = self._checkpoint_path(run_id).exists()
        now = _now()

        def body(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT status, created FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            created = now
            if row is not None:
                status, previous_created = row
                if status in ENDED_STATUSES and not force:
                    raise StoreError(
                        f"run {run_id} is already {status} in {self.path}; allowed: force=True "
                        "(--force) to train it again"
                    )
                ended = status in ENDED_STATUSES
                if not ended:
                    created = previous_created
            else:
                ended = False
            if ended or not resuming:
                conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            conn.execute(
                "INSERT OR REPLACE INTO runs (run_id, status, config, environment, summary, created, "
                "started, finished, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                (run_id, RUNNING, _dumps(config), _dumps(environment), _dumps({}), created, now,
                 socket.gethostname(), os.getpid()),
            )

        self._write(body)

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
        * ``("started", record)``: this process now trains it (:meth:`start_run`'s rules; with
          ``force`` an ended run's metrics, weights, checkpoint and the analysis records keyed
          by its id are removed first).
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
                    return "ended", record
                if record.status == RUNNING and record.host == host and record.pid != pid and _alive(record.pid):
                    return "busy", record
                if record.status not in ENDED_STATUSES and not force:
                    created = record.created
            if force or not resuming:
                conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            if force:
                # Analyses of the old minimum (Hessian, sharpness, landscapes) name it in their key.
                conn.execute("DELETE FROM records WHERE instr(key, ?) > 0", (run_id,))
            conn.execute(
                "INSERT OR REPLACE INTO runs (run_id, status, config, environment, summary, created, "
                "started, finished, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                (run_id, RUNNING, _dumps(config), _dumps(environment), _dumps({}), created, now, host, pid),
            )
            return "started", None

        outcome, record = self._write(body)
        if outcome == "started" and force:
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

    # ----------------------------------------------------------------------------- lifetime

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: ``"ok"`` for a sound file."""
        rows = self._read("PRAGMA integrity_check")
        return "; ".join(str(row[0]) for row in rows)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and os.getpid() == self._owner_pid:
                self._connection.close()
            self._connection = None

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # A store travels to worker processes as its path; each process opens its own connection.
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], create=False)

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"


# ----------------------------------------------------------------------------- helpers


def _upgrade_runs_table(conn: sqlite3.Connection) -> None:
    """Version 1 → 2: rebuild ``runs`` with the status check that allows ``interrupted``
    (SQLite cannot alter a CHECK constraint in place). Runs inside the caller's transaction."""
    conn.execute("ALTER TABLE runs RENAME TO runs_version_1")
    conn.execute("DROP INDEX IF EXISTS runs_by_status")
    conn.execute(_SCHEMA[1])
    conn.execute("INSERT INTO runs SELECT * FROM runs_version_1")
    conn.execute("DROP TABLE runs_version_1")


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


def _is_locked(error: sqlite3.Error) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _json_default(value: Any) -> Any:
    # numpy scalars/arrays and tensors become plain numbers and lists; paths and sets plain data.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} cannot be stored as JSON")


def _dumps(value: Any) -> str:
    # NaN and infinities are kept (Python's json reads them back); they are real results here.
    return json.dumps(value, sort_keys=True, default=_json_default)


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


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Temporary files are created private (0600); the final file gets the usual permissions instead.
_FILE_MODE = 0o666 & ~_current_umask()


def atomic_write(target: Path, write: Callable[[Any], None], *, binary: bool = True) -> None:
    """Call ``write(handle)`` on a temporary file in ``target``'s folder, fsync, then os.replace.

    A reader sees either the old file or the complete new one, never a partial write.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        "wb" if binary else "w", encoding=None if binary else "utf-8",
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False,
    )
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, _FILE_MODE)
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write_text_atomically(target: Path, text: str) -> None:
    atomic_write(target, lambda handle: handle.write(text), binary=False)


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


# ----------------------------------------------------------------------------- export

# The flat columns of an exported run, in order: config first, then the summary.
CONFIG_COLUMNS = ("dataset", "model", "optimizer", "batch_size", "lr", "momentum", "seed", "epochs")
SUMMARY_COLUMNS = ("train_acc", "val_acc", "test_acc", "updates", "time_per_update_s",
                   "time_per_epoch_s", "diverged_epoch")
EXPORT_COLUMNS = ("run_id", "status") + CONFIG_COLUMNS + SUMMARY_COLUMNS
EXPORT_FORMATS = ("table", "csv", "json")

# Headers of the readable table: (column, header).
_TABLE_HEADERS = (
    ("run_id", "run id"), ("status", "status"), ("dataset", "dataset"), ("model", "model"),
    ("optimizer", "opt"), ("batch_size", "B"), ("lr", "lr"), ("momentum", "λ"), ("seed", "seed"),
    ("epochs", "epochs"), ("train_acc", "train acc"), ("val_acc", "val acc"),
    ("test_acc", "test acc"), ("time_per_update_s", "time/update"),
)


def flat_run(record: RunRecord) -> dict[str, Any]:
    """One run as flat columns: :data:`EXPORT_COLUMNS`, then every other config and summary key
    (a summary key that repeats a config key is prefixed ``summary_``), then the timestamps."""
    row: dict[str, Any] = {"run_id": record.run_id, "status": record.status}
    row.update({key: record.config.get(key) for key in CONFIG_COLUMNS})
    row.update({key: record.summary.get(key) for key in SUMMARY_COLUMNS})
    for key in sorted(set(record.config) - set(row)):
        row[key] = record.config[key]
    for key in sorted(set(record.summary) - set(SUMMARY_COLUMNS)):
        row[key if key not in row else f"summary_{key}"] = record.summary[key]
    row.update(created=record.created, started=record.started, finished=record.finished)
    return row


def export_runs(
    records: Iterable[RunRecord],
    fmt: str = "table",
    metrics_for: "RunStore | Callable[[str], list[dict]] | None" = None,
) -> str:
    """Runs as a readable table, CSV or JSON (both load straight into pandas).

    ``table`` shows :data:`EXPORT_COLUMNS` less the summary's update count and epoch time; ``csv``
    and ``json`` hold every column of :func:`flat_run` (JSON writes NaN as null). With
    ``metrics_for`` (a store, or a function from run id to per-epoch metrics) the per-epoch
    metrics are included: JSON gives each run a ``per_epoch`` list; CSV becomes one row per
    (run, epoch) with the run's id, status and config followed by the epoch's metrics.
    """
    if fmt not in EXPORT_FORMATS:
        raise StoreError(f"unknown export format {fmt!r}; allowed: {', '.join(EXPORT_FORMATS)}")
    records = list(records)
    lookup = metrics_for.metrics if isinstance(metrics_for, RunStore) else metrics_for
    if fmt == "table":
        if lookup is not None:
            raise StoreError("per-epoch metrics cannot be shown in the table; allowed: csv or json")
        return _table(records)
    rows = [flat_run(record) for record in records]
    if fmt == "json":
        if lookup is not None:
            for row in rows:
                row["per_epoch"] = lookup(row["run_id"])
        return json.dumps(_strict_json(rows), indent=2, default=_json_default)
    if lookup is None:
        return _csv(rows, EXPORT_COLUMNS)
    return _csv([row for record in records for row in _epoch_rows(record, lookup(record.run_id))],
                ("run_id", "status") + CONFIG_COLUMNS + ("epoch",))


def _epoch_rows(record: RunRecord, epochs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per epoch: the run's id, status and config, then that epoch's metrics (a metric
    whose name repeats a config key is prefixed ``metric_``)."""
    base: dict[str, Any] = {"run_id": record.run_id, "status": record.status}
    base.update({key: record.config.get(key) for key in CONFIG_COLUMNS})
    base.update({key: record.config[key] for key in sorted(set(record.config) - set(base))})
    return [base | {(key if key == "epoch" or key not in base else f"metric_{key}"): value
                    for key, value in epoch.items()}
            for epoch in epochs]


def _strict_json(value: Any) -> Any:
    """NaN and infinities become null, so the output is strict JSON that any reader accepts."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(item) for item in value]
    return value


def _csv(rows: list[dict[str, Any]], leading: tuple[str, ...]) -> str:
    columns: list[str] = list(leading)
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_cell(value) for key, value in row.items()})
    return out.getvalue()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, default=_json_default)
    return value


def _table(records: list[RunRecord]) -> str:
    if not records:
        return "(no runs)"
    cells = [[header for _, header in _TABLE_HEADERS]]
    for record in records:
        row = flat_run(record)
        cells.append([_table_cell(column, row.get(column)) for column, _ in _TABLE_HEADERS])
    widths = [max(len(line[i]) for line in cells) for i in range(len(_TABLE_HEADERS))]
    # Text columns align left, numbers right.
    left = {"run_id", "status", "dataset", "model", "optimizer"}
    lines = []
    for line in cells:
        parts = [cell.ljust(width) if column in left else cell.rjust(width)
                 for cell, width, (column, _) in zip(line, widths, _TABLE_HEADERS)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _table_cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if column in ("train_acc", "val_acc", "test_acc"):
        return f"{value:.4f}"
    if column == "time_per_update_s":
        return f"{value * 1e3:.3f} ms"
    if column in ("lr", "momentum"):
        return f"{value:g}"
    return str(value)
