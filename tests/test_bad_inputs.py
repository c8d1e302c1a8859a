"""Bad input on the command line: exit 2, one line, checked before any work, and the store untouched.

Each row is a command line that used to end in a traceback, a hang, or a failure after the work
was done (an output path under an existing file, a seed beyond 64 bits, a layer wider than
memory, a store that is not one, a grid of a trillion points). The store given to the command
holds two finished runs with weights; its rows and files must be the same afterwards.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import batchlab
from batchlab.cli import main

HUGE_SEED = str(10**30)


@pytest.fixture(scope="module")
def stocked(tmp_path_factory):
    """A store with two finished tiny runs (weights kept), a plain file and a non-store file."""
    folder = tmp_path_factory.mktemp("bad-inputs")
    store = folder / "runs.db"
    base = dict(dataset="mnist-5k", model="mlp", hidden=(8,), epochs=1, batch_size=500, lr=0.05,
                device="cpu", val_fraction=0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = batchlab.train(batchlab.RunConfig(seed=0, **base), store=store, progress=False)
        b = batchlab.train(batchlab.RunConfig(seed=1, **base), store=store, progress=False)
    finally:
        torch.set_num_threads(threads)
    (folder / "somefile").write_text("not a folder\n")
    (folder / "notes.txt").write_text("this is not an SQLite database\n")
    return folder, store, a.run_id, b.run_id


def snapshot(store: Path) -> tuple:
    """Every row of every table, and every other file beside the store with its SHA-256 (the
    database file's own bytes change when SQLite moves its log into it; its rows do not)."""
    connection = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = {table: sorted(map(repr, connection.execute(f"SELECT * FROM {table}"))) for table in sorted(tables)}
    finally:
        connection.close()
    files = {}
    for path in sorted(store.parent.rglob("*")):
        if path.is_file() and not path.name.startswith(store.name):
            files[str(path.relative_to(store.parent))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return rows, files


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("batchlab: error: "), lines[0]
    return lines[0]


# (command line with {store}, {a}, {b}, {dir} placeholders; words the one error line must hold)
BAD_INPUTS = [
    # seeds beyond 0 … 2**63 - 1
    (["train", "--seed", HUGE_SEED, "--store", "{store}"], ["seed", "2**63-1"]),
    (["train", "--split-seed", "-1", "--store", "{store}"], ["seed -1", "2**63-1"]),
    (["train", "--optimizer", "adam", "--momentum-correction", "--store", "{store}"],
     ["momentum correction", "--optimizer momentum"]),
    (["sweep", "--momentum", "0", "0.9", "--momentum-correction", "--store", "{store}"],
     ["momentum correction", "0 < momentum < 1"]),
    (["sweep", "--seed", "0", HUGE_SEED, "--store", "{store}"], ["seed", "2**63-1"]),
    (["toy", "--seed", HUGE_SEED, "--out", "{dir}/toy"], ["seed", "2**63-1"]),
    (["timing", "--seed", HUGE_SEED, "--store", "{store}", "--out", "{dir}/t"], ["seed", "2**63-1"]),
    (["hessian", "{a}", "--seed", HUGE_SEED, "--store", "{store}"], ["seed", "2**63-1"]),
    (["sharpness", "{a}", "--seed", HUGE_SEED, "--store", "{store}"], ["seed", "2**63-1"]),
    (["landscape", "{a}", "{b}", "--seed", HUGE_SEED, "--store", "{store}"], ["seed", "2**63-1"]),
    # a model wider than memory, and widths that are no widths
    (["train", "--hidden", "100000000", "--store", "{store}", "--device", "cpu"],
     ["100000000", "parameters", "GB", "--hidden"]),
    (["sweep", "--hidden", "100000000", "--store", "{store}", "--device", "cpu"], ["100000000", "parameters"]),
    (["timing", "--hidden", "100000000", "--store", "{store}", "--device", "cpu", "--out", "{dir}/t"],
     ["100000000", "parameters"]),
    (["timing", "--hidden", "0", "--store", "{store}", "--out", "{dir}/t"], ["hidden", "≥ 1"]),
    (["train", "--hidden", "0", "--store", "{store}"], ["hidden", "≥ 1"]),
    # outputs under an existing file
    (["report", "--store", "{store}", "-o", "{dir}/somefile/report.html"], ["somefile", "is a file, not a folder"]),
    (["report", "{store}", "--summary-json", "{dir}/somefile/s.json"], ["somefile", "not a folder"]),
    (["timing", "--store", "{store}", "--out", "{dir}/somefile/timing"], ["somefile", "not a folder"]),
    (["landscape", "{a}", "{b}", "--store", "{store}", "--out", "{dir}/somefile/l"], ["somefile", "not a folder"]),
    (["toy", "--out", "{dir}/somefile/toy"], ["somefile", "not a folder"]),
    (["gap", "--store", "{store}", "--out", "{dir}/somefile/gap"], ["somefile", "not a folder"]),
    (["lecture", "--store", "{store}", "--out", "{dir}/somefile/report"], ["somefile", "not a folder"]),
    (["lecture", "--store", "{store}", "--out", "{dir}/somefile"], ["somefile", "not a folder"]),
    (["sweep", "--store", "{store}", "-o", "{dir}/somefile/runs.csv"],
     ["somefile", "not a folder"]),
    (["runs", "--store", "{store}", "-o", "{dir}/somefile/runs.csv"], ["somefile", "not a folder"]),
    (["sweep", "--store", "{store}", "-o", "{dir}/runs.xlsx"], ["runs.xlsx", ".csv or .json"]),
    (["report", "{store}", "-o", "{dir}"], ["is a folder"]),
    # a store that is not one, given to a command that computes first
    (["timing", "--store", "{dir}/notes.txt", "--out", "{dir}/t", "--hidden", "4"], ["notes.txt", "SQLite"]),
    (["train", "--store", "{dir}", "--hidden", "4"], ["is a folder"]),
    # grids that never end
    (["landscape", "{a}", "{b}", "--store", "{store}", "--alphas", "0", "1", "1e12"], ["1e+12", "1001"]),
    (["landscape", "{a}", "{b}", "--store", "{store}", "--alphas", "0", "1e12", "5"], ["1e+12", "10"]),
    (["landscape", "{a}", "{b}", "--store", "{store}", "--alphas", "nan", "1", "5"], ["nan", "10"]),
    (["landscape", "{a}", "{b}", "--store", "{store}", "--contour", "{a}", "--grid", "1000000"], ["1000000", "201"]),
]


@pytest.mark.parametrize(("argv", "words"), BAD_INPUTS, ids=[" ".join(a[:3]) for a, _ in BAD_INPUTS])
def test_bad_input_is_exit_2_one_line_and_leaves_the_store_alone(stocked, argv, words, capsys):
    folder, store, a, b = stocked
    argv = [part.format(store=store, a=a, b=b, dir=folder) for part in argv]
    before = snapshot(store)
    capsys.readouterr()
    assert main(argv) == 2
    line = one_error_line(capsys)
    for word in words:
        assert word in line, line
    assert snapshot(store) == before
    assert not (folder / "t").exists() and not (folder / "toy").exists()


def test_a_failing_landscape_stores_no_record(stocked, capsys, monkeypatch, tmp_path):
    """The measurement succeeds, writing the figure fails: no 'landscape' record is left behind."""
    from batchlab import files
    from batchlab.errors import UserError

    folder, store, a, b = stocked

    def no_room(*_args, **_kwargs):
        raise UserError("no room left for the figure")

    monkeypatch.setattr(files, "save_figure", no_room)
    before = snapshot(store)
    capsys.readouterr()
    code = main(["landscape", a, b, "--store", str(store), "--alphas", "0", "1", "2", "--examples", "50",
                 "--test-examples", "50", "--out", str(tmp_path), "--device", "cpu", "--no-progress"])
    assert code == 2
    assert "no room left" in one_error_line(capsys)
    assert snapshot(store) == before


def test_torch_out_of_memory_becomes_one_line_naming_the_size(stocked, capsys, monkeypatch):
    """Past the estimate (say the machine's memory is taken by others), the allocator's error is one line."""
    train_package = importlib.import_module("batchlab.training")  # the package; batchlab.train is the function
    folder, store, _, _ = stocked

    def allocator_fails(*_args, **_kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                           "you tried to allocate 317600000000 bytes.")

    monkeypatch.setattr(train_package, "train", allocator_fails)
    before = snapshot(store)
    capsys.readouterr()
    assert main(["train", "--hidden", "4", "--store", str(store), "--device", "cpu", "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert "out of memory" in line and "318 GB" in line and "hidden widths 4" in line
    assert snapshot(store) == before


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
@pytest.mark.distributed
def test_ray_cluster_that_refuses_the_connection_is_one_line(stocked, tmp_path):
    """In a fresh process (Ray reads its timeouts when first imported): no Ray log flood, no traceback."""
    pytest.importorskip("ray")
    folder, store, _, _ = stocked
    address = f"127.0.0.1:{_closed_port()}"
    before = snapshot(store)
    env = {**os.environ, "PYTHONPATH": str(Path(batchlab.__file__).parents[1]),
           "RAY_gcs_rpc_server_connect_timeout_s": "1", "RAY_py_gcs_connect_timeout_s": "2"}
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from batchlab.cli import main; sys.exit(main(sys.argv[1:]))",
         "sweep", "--executor", "ray", "--ray-address", address, "--store", str(store), "--hidden", "4",
         "--epochs", "1", "--device", "cpu", "--no-progress"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"batchlab: error: cannot join the Ray cluster at {address}")
    assert snapshot(store) == before
