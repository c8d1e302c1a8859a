"""The run store's SQLite file: opening, schema, WAL journal, write lock and retries.

Tables, in the spirit of MLflow's tracking model:

* ``meta(key, value)``: ``schema = batchlab-runs`` and ``schema_version`` (:data:`SCHEMA_VERSION`);
  a file without them is refused, so batchlab never writes into someone else's database.
* ``runs``: one row per run id (the hash of the resolved config) with its status (one of
  :class:`batchlab.store.status.RunStatus`), config, environment and summary as JSON, timestamps
  (ISO 8601, UTC), host and pid.
* ``metrics(run_id, epoch, key, value, wall_time)``: one value per (run, epoch, key).
* ``timings``: rows measured by ``batchlab timing`` (per-update time of one model and batch size).
* ``records(kind, key, value)``: JSON results of other analyses (e.g. kind ``sharpness``).
* ``tags(run_id, tag)`` and ``notes(run_id, note, updated)``: the user's labels and notes on runs.

Concurrency and crashes: the journal is WAL, so readers never block the writer and a process killed
at any instant leaves every committed transaction readable. Every write is one short
``BEGIN IMMEDIATE`` transaction that commits before the method returns; a writer waits up to
``BUSY_TIMEOUT_S`` for the lock and, should SQLite still answer "database is locked", retries with
a randomized back-off. A write that finds the disk full ("database or disk is full") is rolled
back and raises the one-line :class:`~batchlab.errors.DiskFullError` of every other full write
(:func:`batchlab.files.disk_full`): every transaction committed before stays.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Self

from batchlab.errors import StoreError
from batchlab.files import disk_full
from batchlab.store.status import STATUSES

SCHEMA_NAME = "batchlab-runs"
# 2: status ``interrupted`` (a run stopped by the user, resumable).
# 3: tables ``tags`` and ``notes``.
# 4: status ``failed to train`` (a run that ended without learning, batchlab.store.status).
# Older stores are upgraded in place, one version at a time, when opened (see _UPGRADES).
SCHEMA_VERSION = 4

# How long one statement waits for another process's write lock before SQLite gives up.
BUSY_TIMEOUT_S = 30.0
# Further attempts after SQLite has given up waiting (each after a randomized back-off).
LOCK_RETRIES = 5

_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN (%s)),
        config TEXT NOT NULL,
        environment TEXT NOT NULL,
        summary TEXT NOT NULL,
        created TEXT NOT NULL,
        started TEXT,
        finished TEXT,
        host TEXT,
        pid INTEGER)""" % ", ".join(f"'{status}'" for status in STATUSES),
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
    """CREATE TABLE IF NOT EXISTS tags (
        run_id TEXT NOT NULL,
        tag TEXT NOT NULL,
        PRIMARY KEY (run_id, tag))""",
    """CREATE TABLE IF NOT EXISTS notes (
        run_id TEXT PRIMARY KEY,
        note TEXT NOT NULL,
        updated TEXT NOT NULL)""",
)
_TABLES = ("meta", "runs", "metrics", "timings", "records", "tags", "notes")

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


class Database:
    """The SQLite file at ``path`` with batchlab's schema (created with its parent folders unless
    ``create=False``); every read and write goes through :meth:`_read` and :meth:`_write`.

    Raises :class:`StoreError` when ``path`` is a folder, a file that is not SQLite, an SQLite
    database that batchlab did not make, or (with ``create=False``) missing.
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path).expanduser()
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
                if tables and "runs" in tables:
                    version = self._check_meta(conn, tables)
                    for upgrade in _UPGRADES[version - 1:]:
                        upgrade(conn)
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
            if _is_locked(error) or _is_full(error):
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
                if _is_full(error):
                    raise disk_full(self.path) from None
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # A store travels to worker processes as its path; each process opens its own connection.
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], create=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


def _upgrade_runs_table(conn: sqlite3.Connection) -> None:
    """Rebuild ``runs`` with the status check of today's statuses (SQLite cannot alter a CHECK
    constraint in place): version 1 → 2 (``interrupted``) and 3 → 4 (``failed to train``); every
    row is copied as it is. Runs inside the caller's transaction, so an upgrade that fails
    leaves the store as it was."""
    conn.execute("ALTER TABLE runs RENAME TO runs_before_upgrade")
    conn.execute("DROP INDEX IF EXISTS runs_by_status")
    conn.execute(_SCHEMA[1])
    conn.execute("INSERT INTO runs SELECT * FROM runs_before_upgrade")
    conn.execute("DROP TABLE runs_before_upgrade")


def _add_tag_tables(conn: sqlite3.Connection) -> None:
    """Version 2 → 3: the ``tags`` and ``notes`` tables (every existing row stays as it is)."""
    for statement in _SCHEMA:
        if "TABLE IF NOT EXISTS tags " in statement or "TABLE IF NOT EXISTS notes " in statement:
            conn.execute(statement)


# _UPGRADES[v - 1] takes a store from version v to v + 1, inside the opening transaction.
_UPGRADES = (_upgrade_runs_table, _add_tag_tables, _upgrade_runs_table)


def _is_full(error: sqlite3.Error) -> bool:
    """SQLite's SQLITE_FULL, "database or disk is full": the disk or quota (or max_page_count)."""
    return error.sqlite_errorcode == sqlite3.SQLITE_FULL


def _is_locked(error: sqlite3.Error) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text
