"""A sweep killed with SIGKILL mid-run, then started again with the same command.

The store must stay readable, finished runs must not be trained again, the run that was killed
must resume from its last checkpoint (its earlier epochs untouched), and every grid point must
end up finished exactly once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchlab.config import run_id
from batchlab.store import RunStore
from batchlab.sweep import SweepSpec

SRC = Path(__file__).resolve().parents[1] / "src"
EPOCHS = 6
GRID = {"batch_size": [16, 32], "seed": [0, 1]}
FIXED = {"hidden": [16], "epochs": EPOCHS, "lr": 0.05, "device": "cpu"}


def _command(store: Path) -> list[str]:
    return [
        sys.executable, "-m", "batchlab.cli", "sweep",
        "--batch-size", "16", "32", "--seed", "0", "1", "--lr", "0.05",
        "--hidden", "16", "--epochs", str(EPOCHS), "--device", "cpu",
        "--store", str(store), "--no-progress",
    ]


def _environment() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    # One intra-op thread: on a busy 2-core machine, torch's thread pool competing with other
    # processes can make these tiny steps many times slower.
    return os.environ | {"PYTHONPATH": str(SRC) + (os.pathsep + path if path else ""), "OMP_NUM_THREADS": "1"}


@contextlib.contextmanager
def _read_only(store: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection, closed on leaving (sqlite3's own context manager only commits, and
    a connection left open would keep this process's view of a WAL file other processes delete)."""
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30)
    try:
        yield conn
    finally:
        conn.close()


def _checkpoint(store: Path, identity: str) -> Path:
    return store.parent / f"{store.stem}-weights" / f"{identity}.ckpt.pt"


def _ready_to_kill(store: Path) -> bool:
    """≥ 1 finished run, and ≥ 1 running run with a logged epoch and a checkpoint on disk."""
    if not store.exists():
        return False
    try:
        with _read_only(store) as conn:
            statuses = dict(conn.execute("SELECT run_id, status FROM runs").fetchall())
            logged = {row[0] for row in conn.execute("SELECT DISTINCT run_id FROM metrics")}
    except sqlite3.OperationalError:  # schema not created yet
        return False
    running = [rid for rid, status in statuses.items() if status == "running" and rid in logged]
    return "finished" in statuses.values() and any(_checkpoint(store, rid).exists() for rid in running)


def _epoch_wall_times(conn: sqlite3.Connection, identity: str) -> dict[int, float]:
    rows = conn.execute("SELECT epoch, MIN(wall_time) FROM metrics WHERE run_id = ? GROUP BY epoch", (identity,))
    return dict(rows.fetchall())


@pytest.mark.slow
def test_sigkilled_sweep_resumes_without_losing_or_duplicating_runs(tmp_path):
    store = tmp_path / "runs.db"
    log = (tmp_path / "first.log").open("w")
    process = subprocess.Popen(_command(store), stdout=log, stderr=subprocess.STDOUT, env=_environment())
    deadline = time.monotonic() + 240
    try:
        while not _ready_to_kill(store):
            assert process.poll() is None, "the sweep ended before it could be killed: " + (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "the sweep never reached a finished and a checkpointed running run"
            time.sleep(0.02)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        log.close()
    assert process.returncode == -signal.SIGKILL

    # Right after the kill: a sound file, some runs finished, some interrupted with a checkpoint.
    with _read_only(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT run_id, status, started, finished FROM runs").fetchall()
        finished_before = {rid: done for rid, status, _, done in rows if status == "finished"}
        started_before = {rid: started for rid, _, started, _ in rows}
        interrupted = [rid for rid, status, _, _ in rows if status == "running" and _checkpoint(store, rid).exists()]
        kept_epochs = {}
        with RunStore(store, create=False) as reader:
            for rid in interrupted:
                last = reader.load_checkpoint(rid)["epoch"]
                assert 1 <= last < EPOCHS
                kept_epochs[rid] = {e: t for e, t in _epoch_wall_times(conn, rid).items() if e <= last}
                assert sorted(kept_epochs[rid]) == list(range(1, last + 1))
    assert finished_before and interrupted

    # The same command again, to the end.
    rerun = subprocess.run(_command(store), capture_output=True, text=True, env=_environment(), timeout=240)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"skipped (already in store): {len(finished_before)}" in rerun.stdout
    assert f"{len(interrupted)} resume from a checkpoint" in rerun.stdout

    expected = {run_id(config, "cpu") for config in SweepSpec(grid=GRID, fixed=FIXED).configs()}
    with _read_only(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT run_id, status, started, finished FROM runs").fetchall()
        assert len(rows) == len(expected) == 4
        assert {rid for rid, *_ in rows} == expected
        assert {status for _, status, _, _ in rows} == {"finished"}
        # Finished runs were not trained again: same finish time, same start time.
        after = {rid: (started, done) for rid, _, started, done in rows}
        for rid, done in finished_before.items():
            assert after[rid] == (started_before[rid], done)
        # Every run has every epoch once; the interrupted ones kept the epochs they had checkpointed.
        for rid in expected:
            epochs = conn.execute("SELECT epoch, COUNT(*) FROM metrics WHERE run_id = ? AND key = 'train_loss' "
                                  "GROUP BY epoch", (rid,)).fetchall()
            assert epochs == [(e, 1) for e in range(1, EPOCHS + 1)]
        for rid, wall_times in kept_epochs.items():
            now = _epoch_wall_times(conn, rid)
            assert {e: now[e] for e in wall_times} == wall_times, "the interrupted run started over"
            assert after[rid][0] != started_before[rid]  # it was picked up again, not left running
    with RunStore(store, create=False) as reader:
        assert all(reader.has_weights(rid) and reader.load_checkpoint(rid) is None for rid in expected)
