"""Runs in the store: their rows, per-epoch metrics, timings, analysis records and files.

* ``runs`` rows are started, logged and finished by :class:`RunStore`; a finished or diverged run
  is a result and is never replaced unless forced.
* ``metrics`` writes are ``INSERT OR REPLACE`` so an epoch logged again after a resume never
  appears twice. SQLite stores NaN as NULL, so a NULL value reads back as NaN (a diverged loss
  stays visible as NaN).

Final weights, resumable checkpoints and, for runs trained to be continued, the final training
state (a checkpoint of the last epoch, kept when the run finishes; ``continue_from`` starts
there) are torch files beside the store, in
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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from batchlab.errors import StoreError
from batchlab.files import atomic_write, json_default
from batchlab.store.decision import Action, Decision, decide
from batchlab.store.record import RunRecord, record_from_row
from batchlab.store.clock import store_timestamp
from batchlab.store.status import FINAL_STATUSES, INTERRUPTED, RUNNING, STATUSES
from batchlab.store.database import TIMING_COLUMNS, Database
from batchlab.store.query import conditions_from_mapping, filter_runs

_TIMING_FLAGS = ("extrapolated", "synthetic_data")
_TIMING_JSON = ("environment", "extra")


# The shortest run-id prefix accepted for a run id (git's default abbreviation is 7; ids are 16 hex
# digits, so 4 already tells apart the runs of a study of hundreds).
MIN_PREFIX = 4
# A tag: no spaces (it is one word on the command line) and no commas (they separate the
# alternatives of ``--where tag=a,b``).
MAX_TAG_LENGTH = 64

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
        return record_from_row(rows[0]) if rows else None

    def start_run(self, run_id: str, config: dict, environment: dict, *, force: bool = False) -> None:
        """Record that ``run_id`` is running in this process (:meth:`claim_run`, resuming from its
        checkpoint when it has one); a run that is already ended (without ``force``) or that
        another live process trains is refused."""
        checkpoint = None if force else self.load_checkpoint(run_id)
        decision = self.claim_run(run_id, config, environment, force=force, checkpoint=checkpoint)
        record = decision.record
        if decision.action == Action.ENDED:
            raise StoreError(
                f"run {run_id} is already {record.status} in {self.path}; allowed: force=True (--force) to train it again"
            )
        if decision.action == Action.BUSY:
            raise StoreError(
                f"run {run_id} is being trained by process {record.pid} on {record.host}; allowed: wait for it to end"
            )

    def claim_run(
        self,
        run_id: str,
        config: dict,
        environment: dict,
        *,
        force: bool = False,
        checkpoint: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Decide in one transaction who trains ``run_id`` (:func:`batchlab.store.decision.decide`
        on its row and ``checkpoint``, the one the caller would resume from), and record it:

        * ``ended``: the store holds it as a result and ``force`` is off; nothing is written.
        * ``busy``: another live process on this host is training it (its row is ``running``
          with that host and pid); nothing is written. A process on another host cannot be
          checked, so its run is taken over.
        * ``start`` / ``resume``: this process now trains it: status ``running``, a new start
          time, this host and pid. The metrics of an unfinished run are kept only when resuming
          (the resumed epochs then overwrite themselves). With ``force`` an ended run's metrics,
          weights, checkpoint, final training state and the analysis records whose key names its
          id are removed first.
        """
        now = store_timestamp()
        host, pid = socket.gethostname(), os.getpid()

        def body(conn: sqlite3.Connection) -> Decision:
            row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            record = None if row is None else record_from_row(row)
            held = record is not None and held_by_live_process(record, host, pid)
            decision = decide(record, checkpoint, force, held_elsewhere=held)
            if not decision.trains:
                return decision
            created = now if record is None or force or record.ended else record.created
            if decision.action != Action.RESUME:
                conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            if force:
                # Analyses of the old minimum (Hessian, sharpness, landscapes) name it in their key.
                conn.execute("DELETE FROM records WHERE instr(key, ?) > 0", (run_id,))
            conn.execute(
                "INSERT OR REPLACE INTO runs (run_id, status, config, environment, summary, created, "
                "started, finished, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                (run_id, RUNNING, _dumps(config), _dumps(environment), _dumps({}), created, now, host, pid),
            )
            return decision

        decision = self._write(body)
        if decision.trains and force:
            # The new run owns the id from here on; the old one's files go with its rows.
            self._delete_files(run_id)
        return decision

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
                (status, encoded, store_timestamp(), run_id),
            )

        self._write(body)

    def delete_run(self, run_id: str) -> dict[str, int]:
        """Remove a run completely: its row, metrics, tags, note, the analysis records whose key
        names it, its weights, its checkpoint and its final training state; returns how many of each
        were removed.

        A run that a live process on this host is training is refused (:class:`StoreError`), in
        the same transaction that deletes, so a run cannot start between the check and the delete.
        """
        host, pid = socket.gethostname(), os.getpid()

        def body(conn: sqlite3.Connection) -> dict[str, int]:
            row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None and held_by_live_process(record := record_from_row(row), host, pid):
                raise StoreError(f"run {run_id} is being trained by process {record.pid} on {record.host}; "
                                 "allowed: stop that process first, or wait for it to end")
            return {
                "metrics": conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,)).rowcount,
                "records": conn.execute("DELETE FROM records WHERE instr(key, ?) > 0", (run_id,)).rowcount,
                "tags": conn.execute("DELETE FROM tags WHERE run_id = ?", (run_id,)).rowcount,
                "notes": conn.execute("DELETE FROM notes WHERE run_id = ?", (run_id,)).rowcount,
                "runs": conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,)).rowcount,
            }

        removed = self._write(body)
        removed["weights"] = int(self.has_weights(run_id))
        removed["checkpoint"] = int(self.has_checkpoint(run_id))
        removed["final state"] = int(self.has_final_state(run_id))
        self._delete_files(run_id)
        return removed

    def resolve_run_id(self, text: str) -> str:
        """The full id of the run that ``text`` names: the id itself, or a unique prefix of at
        least :data:`MIN_PREFIX` characters (as git accepts abbreviated commits). An unknown id,
        a short prefix or an ambiguous one is a one-line :class:`StoreError` (an ambiguous one
        lists the candidates)."""
        text = text.strip()
        if self._read("SELECT 1 FROM runs WHERE run_id = ?", (text,)):
            return text
        if len(text) < MIN_PREFIX:  # too short to be a prefix worth searching
            raise StoreError(f"run id {text!r} is too short to look up; allowed: a full id or a unique "
                             f"prefix of at least {MIN_PREFIX} characters (see `batchlab runs`)")
        rows = self._read("SELECT run_id FROM runs WHERE substr(run_id, 1, ?) = ? ORDER BY run_id",
                          (len(text), text))
        if len(rows) == 1:
            return rows[0]["run_id"]
        if not rows:
            known = [row["run_id"] for row in self._read("SELECT run_id FROM runs ORDER BY created LIMIT 5")]
            example = f" (e.g. {', '.join(known)})" if known else " (the store is empty)"
            raise StoreError(f"unknown run id {text!r} in {self.path}; allowed: an id listed by `batchlab runs`, "
                             f"or a unique prefix of one{example}")
        candidates = ", ".join(row["run_id"] for row in rows)
        raise StoreError(f"run id prefix {text!r} is ambiguous: it matches {candidates}; allowed: a longer prefix")

    def runs(self, *, status: str | None = None, where: Mapping[str, Any] | None = None) -> list[RunRecord]:
        """Runs in the order they were created, optionally filtered.

        ``status`` keeps one status; ``where`` maps config keys to a value or a list of allowed
        values, compared as :mod:`batchlab.store.query` does (numbers by value, so ``64`` matches
        ``64.0``; ``hidden`` as a list); a run lacking a key never matches it.
        """
        if status is not None and status not in STATUSES:
            raise StoreError(f"unknown run status {status!r}; allowed: {', '.join(STATUSES)}")
        if status is None:
            rows = self._read("SELECT * FROM runs ORDER BY created, run_id")
        else:
            rows = self._read("SELECT * FROM runs WHERE status = ? ORDER BY created, run_id", (status,))
        records = [record_from_row(row) for row in rows]
        return filter_runs(records, conditions_from_mapping(where)) if where else records

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

    def _final_state_path(self, run_id: str) -> Path:
        return self.weights_dir / f"{_safe_file_stem(run_id)}.state.pt"

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
        return _load_if_present(self._checkpoint_path(run_id))

    def delete_checkpoint(self, run_id: str) -> None:
        self._checkpoint_path(run_id).unlink(missing_ok=True)

    def save_final_state(self, run_id: str, payload: Mapping[str, Any]) -> None:
        """Keep a finished run's final training state (a checkpoint of its last epoch: weights,
        optimizer state, counts, history) in ``<run_id>.state.pt`` atomically, so that a run with
        ``continue_from`` = ``run_id`` can go on from it."""
        _atomic_torch_save(dict(payload), self._final_state_path(run_id))

    def has_final_state(self, run_id: str) -> bool:
        return self._final_state_path(run_id).is_file()

    def load_final_state(self, run_id: str) -> dict | None:
        """The final training state of ``run_id`` (``weights_only=True``), or None when it kept none."""
        return _load_if_present(self._final_state_path(run_id))

    def _delete_files(self, run_id: str) -> None:
        """The run's weights, checkpoint and final state, whichever it has."""
        for path in (self._weights_path(run_id), self._checkpoint_path(run_id), self._final_state_path(run_id)):
            path.unlink(missing_ok=True)

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
        values.setdefault("created", store_timestamp())
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
            (kind, key, encoded, store_timestamp()),
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

    def records_naming(self, run_id: str) -> list[dict[str, Any]]:
        """Every analysis record attached to ``run_id`` (Hessian, sharpness, landscape, …: their
        keys name the run id), as ``{"kind", "key", "created", "value"}`` sorted by kind and key."""
        rows = self._read("SELECT kind, key, created, value FROM records WHERE instr(key, ?) > 0 "
                          "ORDER BY kind, key", (run_id,))
        return [{"kind": row["kind"], "key": row["key"], "created": row["created"],
                 "value": json.loads(row["value"])} for row in rows]

    # ----------------------------------------------------------------------------- tags and notes

    def add_tags(self, run_id: str, tags: Iterable[str]) -> None:
        """Label ``run_id`` with ``tags`` (each :func:`check_tag`); a tag it has already is kept once."""
        checked = [check_tag(tag) for tag in tags]

        def body(conn: sqlite3.Connection) -> None:
            self._require_run(conn, run_id)
            conn.executemany("INSERT OR IGNORE INTO tags (run_id, tag) VALUES (?, ?)",
                             [(run_id, tag) for tag in checked])

        self._write(body)

    def remove_tags(self, run_id: str, tags: Iterable[str]) -> None:
        """Take ``tags`` off ``run_id`` (a tag it does not have is ignored)."""
        names = [str(tag) for tag in tags]
        self._write(lambda conn: conn.executemany("DELETE FROM tags WHERE run_id = ? AND tag = ?",
                                                  [(run_id, tag) for tag in names]))

    def set_note(self, run_id: str, note: str) -> None:
        """Attach ``note`` (free text) to ``run_id``, replacing its note; an empty note removes it."""
        text = note.strip()

        def body(conn: sqlite3.Connection) -> None:
            self._require_run(conn, run_id)
            if text:
                conn.execute("INSERT OR REPLACE INTO notes (run_id, note, updated) VALUES (?, ?, ?)",
                             (run_id, text, store_timestamp()))
            else:
                conn.execute("DELETE FROM notes WHERE run_id = ?", (run_id,))

        self._write(body)

    def tags(self) -> dict[str, list[str]]:
        """Every run's tags, sorted: ``{run_id: [tag, …]}`` (runs without tags are absent)."""
        found: dict[str, list[str]] = {}
        for row in self._read("SELECT run_id, tag FROM tags ORDER BY run_id, tag"):
            found.setdefault(row["run_id"], []).append(row["tag"])
        return found

    def notes(self) -> dict[str, str]:
        """Every run's note: ``{run_id: note}``."""
        return {row["run_id"]: row["note"] for row in self._read("SELECT run_id, note FROM notes")}

# ----------------------------------------------------------------------------- helpers


def held_by_live_process(record: RunRecord, host: str | None = None, pid: int | None = None) -> bool:
    """Whether another live process on this host is training ``record`` now (its row is
    ``running`` with that host and pid). A process on another host cannot be checked: False."""
    host = socket.gethostname() if host is None else host
    pid = os.getpid() if pid is None else pid
    return record.status == RUNNING and record.host == host and record.pid != pid and _alive(record.pid)


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


def check_tag(tag: str) -> str:
    """``tag`` if it is 1 … :data:`MAX_TAG_LENGTH` characters without spaces or commas, else :class:`StoreError`."""
    text = str(tag)
    if not text or len(text) > MAX_TAG_LENGTH or any(c.isspace() or c == "," for c in text):
        raise StoreError(f"tag {text!r} is invalid; allowed: 1 … {MAX_TAG_LENGTH} characters without spaces "
                         "or commas (use --note for free text)")
    return text


def _safe_file_stem(run_id: str) -> str:
    if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
        raise StoreError(f"run id {run_id!r} cannot name a file; allowed: letters, digits, '-' and '_'")
    return run_id


def _atomic_torch_save(payload: dict, target: Path) -> None:
    import torch

    atomic_write(target, lambda handle: torch.save(payload, handle))


def _load_if_present(path: Path) -> dict | None:
    """The torch file at ``path`` (``weights_only=True``), or None when there is none."""
    return _safe_torch_load(path) if path.is_file() else None


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
