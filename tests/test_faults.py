"""Faults a user meets outside batchlab: a full disk while writing weights, a checkpoint or a
figure (one line, exit 2, nothing stored before lost, no temporary file left), and output into a
pipe that closed early (a quiet end, no traceback)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

import batchlab.files
from batchlab.cli import main
from batchlab.errors import DiskFullError
from batchlab.files import write_text_atomically
from batchlab.store import RunStore
from conftest import config

TRAIN = ["train", "--dataset", "mnist-5k", "--hidden", "8", "--batch-size", "500", "--epochs", "2",
         "--device", "cpu", "--no-progress"]


def fill_the_disk(monkeypatch, suffix: str) -> None:
    """Make every atomic write of a file named ``*<suffix>`` fail as a full disk does: its
    temporary file's ``write`` raises ``OSError(ENOSPC)``."""

    def named_temporary_file(*args, **kwargs):
        handle = tempfile.NamedTemporaryFile(*args, **kwargs)
        if kwargs.get("prefix", "").endswith(f"{suffix}."):
            def write(data):
                raise OSError(errno.ENOSPC, "No space left on device")
            handle.write = write
        return handle

    monkeypatch.setattr(batchlab.files, "tempfile", SimpleNamespace(NamedTemporaryFile=named_temporary_file,
                                                                    mkdtemp=tempfile.mkdtemp))


def temporary_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.name.endswith(".tmp")]


def test_a_full_disk_is_one_line_naming_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "notes.txt"
    write_text_atomically(target, "kept")
    fill_the_disk(monkeypatch, ".txt")
    with pytest.raises(DiskFullError, match=f"^no space left on device while writing {target} "):
        write_text_atomically(target, "lost")
    assert target.read_text() == "kept" and temporary_files(tmp_path) == []


def test_a_quota_exceeded_is_named_as_such(tmp_path):
    quota = getattr(errno, "EDQUOT", None)
    if quota is None:
        pytest.skip("no EDQUOT on this system")

    def write(handle):
        raise OSError(quota, "Disk quota exceeded")

    with pytest.raises(DiskFullError, match="^disk quota exceeded while writing"):
        batchlab.files.atomic_write(tmp_path / "a.bin", write)
    assert temporary_files(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".ckpt.pt", ".pt"], ids=["checkpoint", "weights"])
def test_training_on_a_full_disk_is_exit_2_and_one_line(tmp_path, monkeypatch, capsys, suffix):
    store = tmp_path / "runs.db"
    assert main([*TRAIN, "--store", str(store)]) == 0
    (kept,) = (store.parent / "runs-weights").glob("*.pt")
    before = kept.read_bytes()
    capsys.readouterr()
    fill_the_disk(monkeypatch, suffix)
    assert main([*TRAIN, "--seed", "1", "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip()  # the epochs trained before, then the error
    last = err.splitlines()[-1]
    assert err.count("batchlab: error:") == 1 and "Traceback" not in err
    assert last.startswith("batchlab: error: no space left on device while writing ")
    assert last.split(" while writing ")[1].split()[0].endswith(suffix)
    assert kept.read_bytes() == before
    assert temporary_files(tmp_path) == []
    with RunStore(store) as opened:
        assert [r.status for r in opened.runs() if r.run_id == kept.name.removesuffix(".pt")] == ["finished"]


@pytest.mark.slow
def test_a_figure_on_a_full_disk_is_exit_2_and_keeps_the_old_figure(tmp_path, monkeypatch, capsys):
    store = tmp_path / "runs.db"
    with RunStore(store) as opened:
        for run_id, lr in (("aaaa", 0.1), ("bbbb", 0.05)):
            opened.start_run(run_id, config(lr=lr), {})
            for epoch in (1, 2):
                opened.log_epoch(run_id, epoch, {"train_loss": lr / epoch, "val_acc": 0.5 + 0.1 * epoch})
            opened.finish_run(run_id, "finished", {"val_acc": 0.7})
    figure = tmp_path / "curves.png"
    compare = ["runs", "compare", "aaaa", "bbbb", "-o", str(figure), "--store", str(store)]
    assert main(compare) == 0
    before = figure.read_bytes()
    capsys.readouterr()
    fill_the_disk(monkeypatch, ".png")
    assert main(compare) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"batchlab: error: no space left on device while writing {figure} (nothing stored before "
                   "is lost; free some space and run it again)")
    assert figure.read_bytes() == before and temporary_files(tmp_path) == []


def test_a_full_disk_under_the_run_store_is_one_line_and_keeps_every_committed_epoch(tmp_path):
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        store.start_run("a", config(), {})
        store.log_epoch("a", 1, {"train_loss": 1.0})
        connection = store._conn()  # SQLite's own "database or disk is full" (SQLITE_FULL), no mock
        connection.execute(f"PRAGMA max_page_count = {connection.execute('PRAGMA page_count').fetchone()[0]}")
        with pytest.raises(DiskFullError, match=f"^no space left on device while writing {path} "):
            for epoch in range(2, 1000):
                store.log_epoch("a", epoch, {"train_loss": 1.0 / epoch, "a_long_metric_name" * 4: 0.5})
        stopped_at = epoch
    with RunStore(path) as reopened:
        assert [row["epoch"] for row in reopened.metrics("a")] == list(range(1, stopped_at))
        assert reopened.integrity_check() == "ok"


def test_an_oserror_that_is_not_a_full_disk_stays_what_it_was(tmp_path):
    def write(handle):
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError, match="Input/output error") as caught:
        batchlab.files.atomic_write(tmp_path / "a.bin", write)
    assert not isinstance(caught.value, DiskFullError) and temporary_files(tmp_path) == []


# ----------------------------------------------------------------------------- closed pipes


@pytest.fixture
def many_runs(store):
    """A store of 300 runs: more output than a pipe holds, so the writer meets the closed end."""
    for k in range(300):
        run_id = f"{k:016x}"
        store.start_run(run_id, config(seed=k), {"host": "test"})
        store.finish_run(run_id, "finished", {"train_acc": 0.5, "val_acc": 0.5, "test_acc": 0.5})
    return store.path


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_output_into_a_closed_pipe_ends_quietly(many_runs, fmt):
    command = [sys.executable, "-m", "batchlab.cli", "runs", "--store", str(many_runs), "--format", fmt]
    source = str(Path(batchlab.files.__file__).parents[1])  # this checkout's batchlab, as the tests import it
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": source})
    head = process.stdout.read(100)
    process.stdout.close()  # what `| head -c 100` does after its 100 bytes
    err = process.stderr.read().decode()
    process.wait(timeout=120)
    assert len(head) == 100
    assert process.returncode in (0, 141), err
    assert "Traceback" not in err and "BrokenPipeError" not in err and err == ""
