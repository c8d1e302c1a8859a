"""``batchlab runs`` through ``batchlab.cli.main``: table, CSV, JSON, filters and errors."""

import csv
import io
import json

import pytest

from batchlab.cli import main
from batchlab.store import RunStore
from conftest import config


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        for run_id, changes, status, summary in [
            ("aaaa", {"batch_size": 64, "momentum": 0.9}, "finished",
             {"train_acc": 0.95, "val_acc": 0.9, "test_acc": 0.89, "time_per_update_s": 1e-3}),
            ("bbbb", {"batch_size": "full"}, "finished",
             {"train_acc": 0.8, "val_acc": 0.78, "test_acc": 0.77, "time_per_update_s": 4e-2}),
            ("cccc", {"batch_size": 256, "lr": 5.0}, "diverged", {"diverged_epoch": 1}),
        ]:
            store.start_run(run_id, config(**changes), {"host": "test"})
            store.log_epoch(run_id, 1, {"train_loss": 0.5, "train_acc": 0.8})
            store.log_epoch(run_id, 2, {"train_loss": 0.3, "train_acc": 0.9})
            store.finish_run(run_id, status, summary)
        store.start_run("dddd", config(seed=1), {"host": "test"})
    return path


def test_table_by_default(store_path, capsys):
    assert main(["runs", "--store", str(store_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["run", "id", "status"]
    assert "λ" in lines[0] and "test acc" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ["aaaa", "bbbb", "cccc", "dddd"]
    assert "0.8900" in lines[1] and "1.000 ms" in lines[1]
    assert "full" in lines[2]
    assert "diverged" in lines[3]


def test_csv_with_status_and_where_filters(store_path, capsys):
    argv = ["runs", "--store", str(store_path), "--format", "csv", "--status", "finished",
            "--where", "batch-size=64,full"]
    assert main(argv) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["run_id"], r["batch_size"]) for r in rows] == [("aaaa", "64"), ("bbbb", "full")]
    assert float(rows[0]["test_acc"]) == 0.89


def test_json_with_numeric_where(store_path, capsys):
    assert main(["runs", "--store", str(store_path), "--format", "json", "--where", "momentum=0.9"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["run_id"] for d in data] == ["aaaa"]
    assert data[0]["momentum"] == 0.9 and data[0]["time_per_update_s"] == 1e-3


def test_several_where_keys_combine(store_path, capsys):
    assert main(["runs", "--store", str(store_path), "--format", "json",
                 "--where", "batch_size=256", "--where", "lr=5"]) == 0
    assert [d["run_id"] for d in json.loads(capsys.readouterr().out)] == ["cccc"]


def test_per_epoch_json_and_csv(store_path, capsys, tmp_path):
    assert main(["runs", "--store", str(store_path), "--format", "json", "--per-epoch", "--status", "diverged"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert [row["epoch"] for row in run["per_epoch"]] == [1, 2]
    out = tmp_path / "out" / "epochs.csv"
    assert main(["runs", "--store", str(store_path), "--format", "csv", "--per-epoch", "-o", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 and {r["epoch"] for r in rows} == {"1", "2"}


def test_output_file_is_written(store_path, tmp_path, capsys):
    out = tmp_path / "export" / "runs.json"
    assert main(["runs", "--store", str(store_path), "--format", "json", "-o", str(out)]) == 0
    assert "4 run(s) written to" in capsys.readouterr().out
    assert len(json.loads(out.read_text())) == 4
    assert [p.name for p in out.parent.iterdir()] == ["runs.json"]


def test_no_matching_runs(store_path, capsys):
    assert main(["runs", "--store", str(store_path), "--where", "seed=7"]) == 0
    assert capsys.readouterr().out.strip() == f"no runs in {store_path} match the filters"


def test_missing_store_is_one_line_error_with_exit_code_2(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "runs.db"
    assert main(["runs", "--store", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"batchlab: error: no run store at {missing}")
    assert not missing.exists() and not missing.parent.exists()


def test_store_that_is_not_batchlabs_is_one_line_error(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    assert main(["runs", "--store", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a batchlab run store" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--where", "colour=red"], "--where key 'colour' is unknown; allowed: dataset"),
        (["--where", "batch_size"], "has no comparison; allowed: KEY OP VALUE"),
        (["--per-epoch"], "allowed: --format csv or --format json"),
        (["--status", "done"], "invalid choice"),
    ],
)
def test_bad_options_are_one_line_errors(store_path, capsys, argv, message):
    assert main(["runs", "--store", str(store_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as info:
        main(["runs", "--help"])
    assert info.value.code == 0
    assert "Example: batchlab runs" in capsys.readouterr().out
