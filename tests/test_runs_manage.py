"""Managing runs from the command line: ``runs show/rm/tag/compare``, ``--where`` with numbers,
lists and metrics, ``--sort``, unique id prefixes, the architecture column, the store's schema
upgrade for tags and notes, and a Ctrl-C that leaves ``interrupted`` and resumes."""

import csv
import io
import json
import sqlite3
import subprocess
import sys

import pytest

from batchlab.cli import main
from batchlab.errors import StoreError
from batchlab.store import SCHEMA_VERSION, RunStore
from batchlab.store.views import compare_text
from conftest import config

ID_A = "abcd111122223333"
ID_B = "abcd999988887777"  # shares the prefix "abcd" with ID_A
ID_C = "cafe000011112222"
ID_D = "d00d444455556666"


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        for run_id, changes, status, summary in [
            (ID_A, {"hidden": [64], "lr": 0.1, "momentum": 0.9}, "finished",
             {"train_acc": 0.95, "val_acc": 0.91, "test_acc": 0.9, "batch_size": 64}),
            (ID_B, {"hidden": [64, 64], "lr": 0.05}, "finished",
             {"train_acc": 0.85, "val_acc": 0.8, "test_acc": 0.45, "batch_size": 64}),
            (ID_C, {"batch_size": "full", "lr": 2.0}, "diverged",
             {"train_loss": float("nan"), "diverged_epoch": 1, "batch_size": 4000}),
        ]:
            store.start_run(run_id, config(**changes), {"torch": "2.x"})
            store.log_epoch(run_id, 1, {"train_loss": 0.5, "train_acc": 0.8, "val_acc": 0.75})
            store.log_epoch(run_id, 2, {"train_loss": 0.3, "train_acc": 0.9, "val_acc": summary.get("val_acc", 0.1)})
            store.finish_run(run_id, status, summary)
        store.start_run(ID_D, config(seed=1), {})
        store.put_record("hessian", f"{ID_A}|examples=512|mode=eval", {"run_id": ID_A, "top_eigenvalue": 12.5})
        store.put_record("landscape", f"{ID_A}|{ID_B}|alphas=-1:2:31", {"run_a": ID_A, "run_b": ID_B})
        store.put_record("sharpness", f"{ID_C}|eps=0.001", {"run_id": ID_C, "sharpness": 3.0})
    return path


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def listed(capsys, store_path, *argv):
    code, out, err = run(capsys, "runs", "--store", str(store_path), "--format", "json", *argv)
    assert code == 0, err
    return [row["run_id"] for row in json.loads(out)]


# ----------------------------------------------------------------------------- the list


def test_table_shows_the_architecture(store_path, capsys):
    code, out, _ = run(capsys, "runs", "--store", str(store_path))
    assert code == 0
    lines = out.splitlines()
    assert "arch" in lines[0].split()
    by_id = {line.split()[0]: line for line in lines[1:]}
    assert "784-64-10" in by_id[ID_A] and "784-64-64-10" in by_id[ID_B] and "784-512-512-10" in by_id[ID_C]


@pytest.mark.parametrize(("conditions", "expected"), [
    (["lr=.1"], [ID_A, ID_D]),                         # a number as a number: .1 == 0.10 == 0.1
    (["lr=0.10"], [ID_A, ID_D]),
    (["hidden=64"], [ID_A]),                           # a list as a list
    (["hidden=64,64"], [ID_B]),
    (["hidden=[64,64]"], [ID_B]),
    (["hidden=512,512"], [ID_C, ID_D]),                # the default widths, spelled out
    (["val_acc>0.9"], [ID_A]),                         # metrics of the summary
    (["test_acc<=0.5"], [ID_B]),
    (["val_acc>=0.8", "test_acc<0.5"], [ID_B]),        # several --where: all must hold
    (["status=diverged"], [ID_C]),
    (["status!=finished"], [ID_C, ID_D]),
    (["batch_size=64,full", "lr!=0.05"], [ID_A, ID_C, ID_D]),
    (["batch_size>1000"], [ID_C]),                     # 'full' compares as the size it resolved to
    (["train_loss<1"], []),                            # NaN and missing values match nothing
])
def test_where_compares_numbers_lists_and_metrics(store_path, capsys, conditions, expected):
    argv = [word for condition in conditions for word in ("--where", condition)]
    assert listed(capsys, store_path, *argv) == expected


@pytest.mark.parametrize(("condition", "message"), [
    ("colour=red", "--where key 'colour' is unknown; allowed: dataset, model,"),
    ("val_acc~0.9", "has no comparison; allowed: KEY OP VALUE with OP one of != <= >= = < >"),
    ("val_acc>high", "not a number; allowed: a number after >"),
    ("status=done", "--where status 'done' is unknown; allowed: running, finished, diverged"),
    ("tag>3", "--where tag takes = or !=; allowed: e.g. --where tag=…"),
])
def test_bad_where_is_one_line_naming_what_is_allowed(store_path, capsys, condition, message):
    code, out, err = run(capsys, "runs", "--store", str(store_path), "--where", condition)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err, err


def test_sort_ascending_descending_and_missing_values_last(store_path, capsys):
    assert listed(capsys, store_path, "--sort", "val_acc") == [ID_B, ID_A, ID_C, ID_D]
    assert listed(capsys, store_path, "--sort", "-val_acc") == [ID_A, ID_B, ID_C, ID_D]
    assert listed(capsys, store_path, "--sort", "val_acc", "--desc") == [ID_A, ID_B, ID_C, ID_D]
    assert listed(capsys, store_path, "--sort", "lr", "--desc", "--where", "status=finished") == [ID_A, ID_B]
    code, _, err = run(capsys, "runs", "--store", str(store_path), "--sort", "colour")
    assert code == 2 and "--sort key 'colour' is unknown; allowed: run_id, created" in err


def test_csv_export_still_works_with_filters(store_path, capsys, tmp_path):
    out = tmp_path / "sub" / "runs.csv"
    code, stdout, _ = run(capsys, "runs", "--store", str(store_path), "--where", "val_acc>0.5",
                          "--format", "csv", "-o", str(out))
    assert code == 0 and "2 run(s) written to" in stdout
    assert [row["run_id"] for row in csv.DictReader(out.open())] == [ID_A, ID_B]


# ----------------------------------------------------------------------------- id prefixes


def test_a_unique_prefix_names_a_run_and_an_ambiguous_one_lists_candidates(store_path, capsys):
    code, out, _ = run(capsys, "runs", "show", "cafe", "--store", str(store_path))
    assert code == 0 and out.startswith(f"run {ID_C}  diverged")
    code, _, err = run(capsys, "runs", "--store", str(store_path), "show", "abcd")
    assert code == 2 and err.count("\n") == 1
    assert f"run id prefix 'abcd' is ambiguous: it matches {ID_A}, {ID_B}; allowed: a longer prefix" in err
    code, _, err = run(capsys, "runs", "--store", str(store_path), "show", "abc")
    assert code == 2 and "at least 4 characters" in err
    code, _, err = run(capsys, "runs", "--store", str(store_path), "show", "beef")
    assert code == 2 and "unknown run id 'beef'" in err


@pytest.mark.slow
def test_geometry_commands_take_a_prefix(tmp_path):
    """hessian, sharpness and landscape reopen their runs with restore_run, which takes a prefix."""
    import batchlab
    from batchlab.training.restore import restore_run

    store_path = tmp_path / "runs.db"
    result = batchlab.train(batchlab.RunConfig(dataset="mnist-5k", model="mlp", hidden=(8,), epochs=1,
                                               batch_size=500, lr=0.05, device="cpu", val_fraction=0.0),
                            store=store_path, progress=False)
    with RunStore(store_path, create=False) as store:
        assert restore_run(store, result.run_id[:6]).run_id == result.run_id


# ----------------------------------------------------------------------------- show


def test_show_prints_config_environment_epochs_and_every_attached_record(store_path, capsys):
    code, out, _ = run(capsys, "runs", "show", ID_A[:6], "--store", str(store_path))
    assert code == 0
    assert out.startswith(f"run {ID_A}  finished  784-64-10")
    for section in ("config:", "environment:", "summary:", "per-epoch metrics (2 epochs):", "attached records (2):"):
        assert f"\n{section}\n" in out
    assert "torch  2.x" in out
    epochs = out.split("per-epoch metrics (2 epochs):\n")[1].splitlines()
    assert epochs[0].split() == ["epoch", "train_loss", "train_acc", "val_acc"]
    assert epochs[2].split() == ["2", "0.3", "0.9", "0.91"]
    assert f"hessian  {ID_A}|examples=512|mode=eval" in out and "top_eigenvalue=12.5" in out
    assert f"landscape  {ID_A}|{ID_B}|alphas=-1:2:31" in out
    assert "sharpness" not in out

    code, out, _ = run(capsys, "runs", "show", ID_A, "--format", "json", "--store", str(store_path))
    data = json.loads(out)
    assert data["architecture"] == "784-64-10" and len(data["per_epoch"]) == 2
    assert [r["kind"] for r in data["records"]] == ["hessian", "landscape"]


# ----------------------------------------------------------------------------- tag


def test_tags_and_notes_are_stored_shown_and_filtered_on(store_path, capsys):
    code, out, _ = run(capsys, "runs", "tag", ID_A[:5], "baseline", "lecture", "--note", "the defaults",
                       "--store", str(store_path))
    assert code == 0 and out.strip() == f"run {ID_A}: tags baseline, lecture; note the defaults"
    assert run(capsys, "runs", "--store", str(store_path), "tag", ID_B, "baseline")[0] == 0
    assert listed(capsys, store_path, "--where", "tag=baseline") == [ID_A, ID_B]
    assert listed(capsys, store_path, "--where", "tag=lecture,other") == [ID_A]
    assert listed(capsys, store_path, "--where", "tag!=lecture") == [ID_B, ID_C, ID_D]

    _, table, _ = run(capsys, "runs", "--store", str(store_path))
    header, row_a = table.splitlines()[:2]
    assert header.split()[-2:] == ["tags", "note"] and row_a.endswith("baseline,lecture  the defaults")
    _, shown, _ = run(capsys, "runs", "show", ID_A, "--store", str(store_path))
    assert "tags: baseline, lecture\nnote: the defaults\n" in shown

    run(capsys, "runs", "tag", ID_A, "lecture", "--remove", "--note", "", "--store", str(store_path))
    with RunStore(store_path, create=False) as store:
        assert store.tags() == {ID_A: ["baseline"], ID_B: ["baseline"]} and store.notes() == {}


@pytest.mark.parametrize(("argv", "message"), [
    ([ID_A], "nothing to do; allowed: one or more TAGs and/or --note TEXT"),
    ([ID_A, "two,tags"], "tag 'two,tags' is invalid; allowed: 1 … 64 characters without spaces or commas"),
])
def test_bad_tags_are_one_line_errors(store_path, capsys, argv, message):
    code, _, err = run(capsys, "runs", "tag", *argv, "--store", str(store_path))
    assert code == 2 and err.count("\n") == 1 and message in err


# ----------------------------------------------------------------------------- rm


def files_of(store_path, run_id):
    weights = store_path.parent / f"{store_path.stem}-weights"
    return weights / f"{run_id}.pt", weights / f"{run_id}.ckpt.pt"


def test_rm_asks_then_removes_the_run_with_its_files_and_records(store_path, capsys, monkeypatch):
    for path in files_of(store_path, ID_A):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x")
    run(capsys, "runs", "tag", ID_A, "old", "--store", str(store_path))
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    code, out, _ = run(capsys, "runs", "rm", ID_A[:4] + "1", "--store", str(store_path))
    assert code == 1 and "about to remove 1 run(s)" in out and "(2 record(s))" in out and "nothing removed" in out
    assert all(path.exists() for path in files_of(store_path, ID_A))

    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    code, out, _ = run(capsys, "runs", "rm", ID_A[:5], "--store", str(store_path))
    assert code == 0 and f"removed {ID_A} (6 metric value(s), 2 record(s), weights, checkpoint)" in out
    assert not any(path.exists() for path in files_of(store_path, ID_A))
    with RunStore(store_path, create=False) as store:
        assert store.get(ID_A) is None and store.metrics(ID_A) == [] and store.tags() == {}
        assert store.records_naming(ID_A) == []
        assert store.get_record("sharpness", f"{ID_C}|eps=0.001") is not None  # other runs keep theirs


def test_rm_with_yes_does_not_ask_and_closed_stdin_removes_nothing(store_path, capsys, monkeypatch):
    def no_terminal(prompt):
        raise EOFError

    monkeypatch.setattr("builtins.input", no_terminal)
    assert run(capsys, "runs", "rm", ID_C, "--store", str(store_path))[0] == 1
    code, out, _ = run(capsys, "runs", "rm", ID_C, ID_D, "--yes", "--store", str(store_path))
    assert code == 0 and "about to remove" not in out
    assert listed(capsys, store_path) == [ID_A, ID_B]


def test_rm_refuses_a_run_a_live_process_is_training(store_path, capsys):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with sqlite3.connect(store_path) as conn:
            conn.execute("UPDATE runs SET pid = ? WHERE run_id = ?", (sleeper.pid, ID_D))
        code, _, err = run(capsys, "runs", "rm", ID_D, ID_A, "--yes", "--store", str(store_path))
        assert code == 2 and err.count("\n") == 1
        assert f"run {ID_D} is being trained by process {sleeper.pid}" in err
        assert listed(capsys, store_path) == [ID_A, ID_B, ID_C, ID_D]  # nothing removed, not even ID_A
        with RunStore(store_path, create=False) as store, pytest.raises(StoreError, match="being trained"):
            store.delete_run(ID_D)
    finally:
        sleeper.kill()
        sleeper.wait()


# ----------------------------------------------------------------------------- compare


@pytest.mark.slow
def test_compare_marks_differences_and_writes_curves(store_path, capsys, tmp_path):
    figure = tmp_path / "fig" / "curves.png"
    code, out, _ = run(capsys, "runs", "compare", ID_A[:5], ID_B[:5], "-o", str(figure), "--store", str(store_path))
    assert code == 0
    side_by_side = out.split("\n\n")[0].splitlines()[2:]  # after the legend and the header
    marked = {words[1]: True for words in map(str.split, side_by_side) if words[0] == "*"}
    keys = [words[1] if words[0] == "*" else words[0] for words in map(str.split, side_by_side)]
    assert {"lr", "hidden", "arch", "momentum", "test_acc"} <= set(marked)
    assert {"dataset", "batch_size", "status"} <= set(keys) - set(marked)
    assert "\x1b[" not in out  # not a terminal: a marker, no colour
    curves = out.split("per-epoch metrics (run 1, run 2, …):\n")[1].splitlines()
    assert curves[0].split() == ["epoch", "train", "loss", "1", "train", "loss", "2", "val", "acc", "1", "val",
                                 "acc", "2"]
    assert curves[2].split() == ["2", "0.3", "0.3", "0.91", "0.8"]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"curves written to {figure}" in out


def test_compare_on_a_terminal_is_bold_and_coloured_where_runs_differ(store_path):
    with RunStore(store_path, create=False) as store:
        records = [store.get(ID_A), store.get(ID_B)]
        epochs = [store.metrics(ID_A), store.metrics(ID_B)]
    lines = compare_text(records, epochs, colour=True).splitlines()
    coloured = [line for line in lines if line.startswith("\x1b[1;33m")]
    assert coloured and all(line.endswith("\x1b[0m") and "*" in line for line in coloured)
    assert not any("\x1b[" in line for line in lines if "dataset" in line)


def test_compare_needs_two_runs_and_a_figure_suffix(store_path, capsys, tmp_path):
    code, _, err = run(capsys, "runs", "compare", ID_A, "--store", str(store_path))
    assert code == 2 and "needs two or more runs" in err
    code, _, err = run(capsys, "runs", "compare", ID_A, ID_B, "-o", str(tmp_path / "c.txt"), "--store", str(store_path))
    assert code == 2 and "allowed: a file ending in .png, .svg, .pdf" in err


# ----------------------------------------------------------------------------- the store


def test_a_version_2_store_gains_the_tag_tables_and_keeps_every_row(tmp_path):
    path = tmp_path / "old.db"
    with RunStore(path) as store:
        store.start_run(ID_A, config(), {})
        store.log_epoch(ID_A, 1, {"train_loss": 0.5})
        store.finish_run(ID_A, "finished", {"test_acc": 0.9})
        store.put_record("hessian", ID_A, {"x": 1})
    with sqlite3.connect(path) as conn:  # as version 2 left it
        conn.execute("DROP TABLE tags")
        conn.execute("DROP TABLE notes")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with RunStore(path) as store:
        assert store.get(ID_A).summary == {"test_acc": 0.9} and store.metrics(ID_A)[0]["train_loss"] == 0.5
        assert store.get_record("hessian", ID_A) == {"x": 1}
        store.add_tags(ID_A, ["kept"])
        assert store.tags() == {ID_A: ["kept"]}
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert SCHEMA_VERSION == 4


# ----------------------------------------------------------------------------- Ctrl-C


@pytest.mark.slow
def test_ctrl_c_leaves_interrupted_and_the_rerun_resumes(tmp_path, capsys, monkeypatch):
    from batchlab.training import loop

    store = str(tmp_path / "runs.db")
    argv = ["train", "--dataset", "mnist-5k", "--hidden", "16", "--batch-size", "256", "--epochs", "3",
            "--device", "cpu", "--store", store, "--no-progress"]
    real_evaluate = loop.evaluate
    calls = {"n": 0}

    def ctrl_c_in_epoch_2(model, split, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # epoch 2's first evaluation; epoch 1 evaluated train and val
            raise KeyboardInterrupt
        return real_evaluate(model, split, *args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", ctrl_c_in_epoch_2)
    code, _, err = run(capsys, *argv)
    _, table, _ = run(capsys, "runs", "--store", store)
    (row,) = table.splitlines()[1:]
    assert row.split()[1] == "interrupted"
    # The line says what was saved and how to go on.
    assert code == 130 and err.strip().splitlines()[-1] == (f"batchlab: interrupted; run {row.split()[0]} saved after epoch 1 in "
                                           f"{store}; run the same command again to resume from epoch 2")
    monkeypatch.setattr(loop, "evaluate", real_evaluate)
    code, out, err = run(capsys, *argv)
    assert code == 0
    run_id = row.split()[0]
    assert f"run {run_id} resuming from epoch 2" in err
    assert f"run {run_id}: finished" in out


def test_ctrl_c_in_a_sweep_names_each_unfinished_run_and_counts_the_ended(tmp_path, capsys, monkeypatch):
    from batchlab.training import loop

    store = str(tmp_path / "runs.db")
    argv = ["sweep", "--dataset", "mnist-5k", "--hidden", "8", "--batch-size", "500", "1000", "--epochs", "2",
            "--packing", "sequential", "--device", "cpu", "--store", store, "--no-progress"]
    real_evaluate = loop.evaluate
    calls = {"n": 0}

    def ctrl_c_in_the_second_run(model, split, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # the first run evaluated train and val in 2 epochs, then test
            raise KeyboardInterrupt
        return real_evaluate(model, split, *args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", ctrl_c_in_the_second_run)
    code, _, err = run(capsys, *argv)
    with RunStore(store) as opened:
        (stopped,) = [r.run_id for r in opened.runs() if r.status == "interrupted"]
    assert code == 130
    assert err.strip().splitlines()[-1] == (
        f"batchlab: interrupted; 1 run(s) ended and are stored, run {stopped} stopped in its first epoch, before "
        f"anything could be saved in {store}; run the same command again to resume from epoch 1")


def test_ctrl_c_without_a_store_to_read_is_the_plain_line(tmp_path):
    from batchlab.commands._interrupt import interrupt_line, now

    assert interrupt_line(None, now()) == "batchlab: interrupted"
    assert interrupt_line(tmp_path / "none.db", now()) == "batchlab: interrupted"
    (tmp_path / "notes.txt").write_text("not a store\n")
    assert interrupt_line(tmp_path / "notes.txt", now()) == "batchlab: interrupted"
