"""Several processes writing one store at once, and a writer killed mid-write."""

import multiprocessing
import os
import signal
import sqlite3
import sys
import time

import pytest

from batchlab.store import RunStore

RUNS_PER_WRITER = 50
EPOCHS = 5


def write_runs(path: str, writer: int, start_barrier) -> None:
    """Start, log and finish RUNS_PER_WRITER runs, as a training process would."""
    start_barrier.wait()
    with RunStore(path) as store:
        for index in range(RUNS_PER_WRITER):
            run_id = f"w{writer}-r{index:03d}"
            config = {"writer": writer, "index": index, "batch_size": 2 ** (index % 8)}
            store.start_run(run_id, config, {"pid": os.getpid()})
            for epoch in range(1, EPOCHS + 1):
                store.log_epoch(run_id, epoch, {"train_loss": 1.0 / epoch, "writer": float(writer)})
            store.finish_run(run_id, "finished", {"test_acc": index / RUNS_PER_WRITER})
            store.put_record("sharpness", run_id, {"writer": writer, "index": index})


def write_forever(path: str, ready) -> None:
    """Keep writing runs until killed."""
    with RunStore(path) as store:
        index = 0
        while True:
            run_id = f"k{index:05d}"
            store.start_run(run_id, {"index": index}, {})
            for epoch in range(1, 4):
                store.log_epoch(run_id, epoch, {"train_loss": float(epoch)})
            store.finish_run(run_id, "finished", {"epochs": 3})
            index += 1
            if index == 5:
                ready.set()


@pytest.mark.distributed
@pytest.mark.timeout(120)
def test_two_processes_write_one_store_at_once(tmp_path):
    path = tmp_path / "shared" / "runs.db"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    # Both processes create the (not yet existing) store at the same moment.
    workers = [context.Process(target=write_runs, args=(str(path), writer, barrier)) for writer in (0, 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=100)
    assert [worker.exitcode for worker in workers] == [0, 0]

    with RunStore(path, create=False) as store:
        assert store.integrity_check() == "ok"
        runs = store.runs()
        assert len(runs) == 2 * RUNS_PER_WRITER
        assert {r.status for r in runs} == {"finished"}
        for writer in (0, 1):
            mine = store.runs(where={"writer": writer})
            assert len(mine) == RUNS_PER_WRITER
            assert len({r.pid for r in mine}) == 1
        for record in runs:
            history = store.metrics(record.run_id)
            assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))
            assert history[-1]["writer"] == record.config["writer"]
        assert len(store.records("sharpness")) == 2 * RUNS_PER_WRITER
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == 2 * RUNS_PER_WRITER * EPOCHS * 2


@pytest.mark.distributed
@pytest.mark.timeout(120)
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_writer_killed_mid_write_leaves_a_readable_store(tmp_path):
    path = tmp_path / "runs.db"
    RunStore(path).close()
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    worker = context.Process(target=write_forever, args=(str(path), ready))
    worker.start()
    assert ready.wait(timeout=60)
    time.sleep(0.2)
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(timeout=30)
    assert worker.exitcode == -signal.SIGKILL

    with RunStore(path, create=False) as store:
        assert store.integrity_check() == "ok"
        runs = store.runs()
        finished = [r for r in runs if r.status == "finished"]
        assert len(finished) >= 5
        # Every committed write is whole: a finished run has all its epochs and its summary.
        for record in finished:
            assert [row["epoch"] for row in store.metrics(record.run_id)] == [1, 2, 3]
            assert record.summary == {"epochs": 3}
        # At most the run in progress when the process died is left unfinished.
        assert len(runs) - len(finished) <= 1
        # And the store keeps working for the next writer.
        store.start_run("after", {"index": -1}, {})
        store.finish_run("after", "finished", {})
        assert store.get("after").status == "finished"
