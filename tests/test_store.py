"""The SQLite run store: round trips, protection of results, files that are not stores, exports."""

import csv
import io
import json
import math
import pickle
import sqlite3

import pytest
import torch

from batchlab.errors import StoreError
from batchlab.store import EXPORT_COLUMNS, SCHEMA_VERSION, RunStore, export_runs
from conftest import config as stored_config


def config(**changes):
    """This module's runs: the shared stored config with momentum 0.9, three epochs, two hidden layers of 16."""
    return stored_config(momentum=0.9, epochs=3, hidden=[16, 16]) | changes


ENVIRONMENT = {"torch": torch.__version__, "device_name": "cpu", "host": "test-host"}


def finished_run(store, run_id="run-a", summary=None, **config_changes):
    store.start_run(run_id, config(**config_changes), ENVIRONMENT)
    for epoch in (1, 2):
        store.log_epoch(run_id, epoch, {"train_loss": 1.0 / epoch, "train_acc": 0.5 + 0.1 * epoch})
    store.finish_run(run_id, "finished", summary or {"test_acc": 0.71, "updates": 20})


# ------------------------------------------------------------------------- opening


def test_new_path_creates_file_parents_and_schema(tmp_path):
    path = tmp_path / "a" / "b" / "runs.db"
    with RunStore(path) as store:
        assert store.path == path
        assert store.weights_dir == tmp_path / "a" / "b" / "runs-weights"
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert meta == {"schema": "batchlab-runs", "schema_version": str(SCHEMA_VERSION)}
    assert mode == "wal"


def test_reopening_keeps_the_runs(tmp_path):
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        finished_run(store)
    with RunStore(path, create=False) as again:
        assert again.get("run-a").status == "finished"


def test_missing_store_without_create_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="no run store at") as info:
        RunStore(tmp_path / "absent.db", create=False)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "absent.db").exists()


def test_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("just some text, not a database\n" * 10)
    expected = r"is not a batchlab run store \(not an SQLite file\); allowed: a store made by batchlab, or a new path"
    with pytest.raises(StoreError, match=expected):
        RunStore(path)
    assert path.read_text().startswith("just some text")


def test_someone_elses_sqlite_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(StoreError, match="is not a batchlab run store") as info:
        RunStore(path)
    assert "\n" not in str(info.value)
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert tables == {"customers"}
    assert mode != "wal"


def test_sqlite_database_with_a_foreign_meta_table_is_refused(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema', 'someone-else')")
    with pytest.raises(StoreError, match="schema is 'someone-else'"):
        RunStore(path)


def test_newer_schema_version_is_refused(tmp_path):
    path = tmp_path / "runs.db"
    RunStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match=f"schema version '{SCHEMA_VERSION + 1}', newer"):
        RunStore(path)


def test_directory_path_is_refused(tmp_path):
    with pytest.raises(StoreError, match=r"is not a batchlab run store \(a folder\)"):
        RunStore(tmp_path)


def test_empty_file_becomes_a_store(tmp_path):
    path = tmp_path / "runs.db"
    path.touch()
    with RunStore(path) as store:
        finished_run(store)
        assert store.get("run-a") is not None


# ---------------------------------------------------------------------------- runs


def test_run_round_trip(store):
    store.start_run("run-a", config(), ENVIRONMENT)
    running = store.get("run-a")
    assert running.status == "running"
    assert running.config == config()
    assert running.environment == ENVIRONMENT
    assert running.summary == {}
    assert running.finished is None and running.started is not None

    summary = {"test_acc": 0.75, "updates": 30, "time_per_update_s": 1.5e-3, "diverged_epoch": None}
    store.finish_run("run-a", "finished", summary)
    record = store.get("run-a")
    assert record.status == "finished"
    assert record.summary == summary
    assert record.finished >= record.started
    assert record.ended
    assert store.get("missing") is None


def test_summary_keeps_nan_and_numpy_like_values(store):
    store.start_run("run-a", config(), ENVIRONMENT)
    summary = {"train_loss": float("nan"), "acc": torch.tensor(0.5), "hist": torch.arange(3)}
    store.finish_run("run-a", "diverged", summary)
    summary = store.get("run-a").summary
    assert math.isnan(summary["train_loss"])
    assert summary["acc"] == 0.5 and summary["hist"] == [0, 1, 2]


def test_metrics_one_dict_per_epoch_sorted(store):
    store.start_run("run-a", config(), ENVIRONMENT)
    store.log_epoch("run-a", 2, {"train_loss": 0.5, "val_acc": 0.8})
    store.log_epoch("run-a", 1, {"train_loss": 0.9, "val_acc": 0.6, "skipped": None})
    assert store.metrics("run-a") == [
        {"epoch": 1, "train_loss": 0.9, "val_acc": 0.6},
        {"epoch": 2, "train_loss": 0.5, "val_acc": 0.8},
    ]
    assert store.metrics("other") == []


def test_log_epoch_again_replaces_instead_of_duplicating(store):
    store.start_run("run-a", config(), ENVIRONMENT)
    store.log_epoch("run-a", 1, {"train_loss": 0.9})
    store.log_epoch("run-a", 1, {"train_loss": 0.7})
    assert store.metrics("run-a") == [{"epoch": 1, "train_loss": 0.7}]
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == 1


def test_nan_metric_reads_back_as_nan(store):
    store.start_run("run-a", config(), ENVIRONMENT)
    store.log_epoch("run-a", 1, {"train_loss": float("nan"), "big": float("inf")})
    (row,) = store.metrics("run-a")
    assert math.isnan(row["train_loss"]) and row["big"] == math.inf


def test_log_epoch_rejects_unknown_runs_and_bad_values(store):
    with pytest.raises(StoreError, match="unknown run id 'ghost'"):
        store.log_epoch("ghost", 1, {"train_loss": 0.1})
    store.start_run("run-a", config(), ENVIRONMENT)
    with pytest.raises(StoreError, match="allowed: a number"):
        store.log_epoch("run-a", 1, {"train_loss": "low"})
    with pytest.raises(StoreError, match="epoch -1 is invalid"):
        store.log_epoch("run-a", -1, {"train_loss": 0.1})
    assert store.metrics("run-a") == []


def test_finish_run_rejects_unknown_status_and_run(store):
    store.start_run("run-a", config(), ENVIRONMENT)
    with pytest.raises(StoreError, match="allowed: finished, diverged, failed"):
        store.finish_run("run-a", "done", {})
    with pytest.raises(StoreError, match="unknown run id"):
        store.finish_run("ghost", "finished", {})


@pytest.mark.parametrize("status", ["finished", "diverged"])
def test_ended_run_is_protected_from_start_run(store, status):
    store.start_run("run-a", config(), ENVIRONMENT)
    store.log_epoch("run-a", 1, {"train_loss": 0.5})
    store.finish_run("run-a", status, {"test_acc": 0.7})
    with pytest.raises(StoreError, match=f"run run-a is already {status}.*force=True"):
        store.start_run("run-a", config(), ENVIRONMENT)
    record = store.get("run-a")
    assert record.status == status and record.summary == {"test_acc": 0.7}
    assert store.metrics("run-a") == [{"epoch": 1, "train_loss": 0.5}]


def test_force_restarts_an_ended_run_from_scratch(store):
    finished_run(store)
    store.start_run("run-a", config(lr=0.2), ENVIRONMENT, force=True)
    record = store.get("run-a")
    assert record.status == "running" and record.summary == {} and record.config["lr"] == 0.2
    assert store.metrics("run-a") == []


def test_unfinished_run_resumes_with_its_metrics_when_a_checkpoint_exists(store):
    store.start_run("run-a", config(), ENVIRONMENT)
    first = store.get("run-a")
    store.log_epoch("run-a", 1, {"train_loss": 0.9})
    store.save_checkpoint("run-a", {"epoch": 1})
    store.start_run("run-a", config(), ENVIRONMENT)
    resumed = store.get("run-a")
    assert resumed.status == "running"
    assert resumed.created == first.created
    assert store.metrics("run-a") == [{"epoch": 1, "train_loss": 0.9}]


def test_unfinished_run_without_checkpoint_starts_over(store):
    store.start_run("run-a", config(), ENVIRONMENT)
    store.log_epoch("run-a", 1, {"train_loss": 0.9})
    store.log_epoch("run-a", 2, {"train_loss": 0.8})
    store.finish_run("run-a", "failed", {"error": "out of memory"})
    store.start_run("run-a", config(), ENVIRONMENT)
    assert store.get("run-a").status == "running"
    assert store.metrics("run-a") == []


def test_delete_run_removes_row_metrics_weights_and_checkpoint(store):
    finished_run(store)
    finished_run(store, "run-b")
    store.save_weights("run-a", {"w": torch.ones(3)})
    store.save_checkpoint("run-a", {"epoch": 1})
    store.delete_run("run-a")
    assert store.get("run-a") is None
    assert store.metrics("run-a") == []
    assert not store.has_weights("run-a")
    assert store.load_checkpoint("run-a") is None
    assert store.get("run-b") is not None and len(store.metrics("run-b")) == 2
    store.delete_run("never-existed")


def test_runs_filters_by_status_and_config(store):
    finished_run(store, "a", batch_size=64, momentum=0.0)
    finished_run(store, "b", batch_size=1024, momentum=0.9)
    finished_run(store, "c", batch_size="full", momentum=0.9)
    store.start_run("d", config(batch_size=64), ENVIRONMENT)

    assert [r.run_id for r in store.runs()] == ["a", "b", "c", "d"]
    assert [r.run_id for r in store.runs(status="running")] == ["d"]
    assert [r.run_id for r in store.runs(where={"batch_size": 64})] == ["a", "d"]
    assert [r.run_id for r in store.runs(where={"batch_size": [1024, "full"]})] == ["b", "c"]
    assert [r.run_id for r in store.runs(where={"momentum": 0.9, "batch_size": 1024.0})] == ["b"]
    assert [r.run_id for r in store.runs(where={"hidden": [16, 16]})] == ["a", "b", "c", "d"]
    assert store.runs(where={"no_such_key": 1}) == []
    with pytest.raises(StoreError, match="allowed: running, finished, diverged, failed"):
        store.runs(status="done")


# ---------------------------------------------------------------- weights, checkpoints


def test_weights_round_trip_with_weights_only(store):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    assert not store.has_weights("run-a")
    path = store.save_weights("run-a", model.state_dict())
    assert path == store.weights_dir / "run-a.pt"
    assert store.has_weights("run-a")
    loaded = store.load_weights("run-a")
    assert loaded.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded[key], value)
    assert [p.name for p in store.weights_dir.iterdir()] == ["run-a.pt"]  # no temporary left


def test_missing_weights_is_a_store_error(store):
    with pytest.raises(StoreError, match="run run-a has no saved weights"):
        store.load_weights("run-a")


def test_checkpoint_round_trip_with_optimizer_state_and_rng(store):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    payload = {
        "epoch": 2,
        "updates": 40,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng_state": torch.get_rng_state(),
        "history": [{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": float("nan")}],
        "hidden": (8, 8),
    }
    assert store.load_checkpoint("run-a") is None
    store.save_checkpoint("run-a", payload)
    loaded = store.load_checkpoint("run-a")
    assert loaded["epoch"] == 2 and loaded["updates"] == 40 and tuple(loaded["hidden"]) == (8, 8)
    assert torch.equal(loaded["rng_state"], payload["rng_state"])
    assert torch.equal(loaded["model"]["weight"], model.weight)
    buffer = loaded["optimizer"]["state"][0]["momentum_buffer"]
    assert torch.equal(buffer, optimizer.state_dict()["state"][0]["momentum_buffer"])
    assert loaded["history"][0] == {"epoch": 1, "train_loss": 0.5}
    assert math.isnan(loaded["history"][1]["train_loss"])
    store.delete_checkpoint("run-a")
    assert store.load_checkpoint("run-a") is None
    store.delete_checkpoint("run-a")  # deleting twice is fine


class NotATensor:
    """A class a weights_only load must refuse to rebuild."""

    def __init__(self):
        self.value = 1


def test_loading_refuses_arbitrary_pickled_objects(store):
    store.weights_dir.mkdir(parents=True)
    torch.save({"payload": NotATensor()}, store.weights_dir / "run-a.pt")
    torch.save({"payload": NotATensor()}, store.weights_dir / "run-a.ckpt.pt")
    with pytest.raises(StoreError, match="cannot be loaded safely"):
        store.load_weights("run-a")
    with pytest.raises(StoreError, match="cannot be loaded safely"):
        store.load_checkpoint("run-a")


# ---------------------------------------------------------------------------- timings


def test_timing_round_trip_and_filters(store):
    first = store.add_timing({
        "device": "cpu", "device_name": "x86", "data_path": "device-resident", "model": "mlp",
        "batch_size": 64, "n_examples": 4500, "per_update_median_s": 1e-3, "per_update_q25_s": 9e-4,
        "per_update_q75_s": 1.1e-3, "per_epoch_s": 0.07, "repeats": 7, "extrapolated": False,
        "synthetic_data": True, "environment": ENVIRONMENT, "warmup_updates": 5,
    })
    second = store.add_timing({"device": "cpu", "model": "cnn", "batch_size": 256, "extra": {"note": "b"}})
    assert second > first
    (row,) = store.timings(model="mlp")
    assert row["id"] == first and row["batch_size"] == 64 and row["repeats"] == 7
    assert row["per_update_median_s"] == 1e-3 and row["per_epoch_s"] == 0.07
    assert row["extrapolated"] is False and row["synthetic_data"] is True
    assert row["environment"] == ENVIRONMENT
    assert row["extra"] == {"warmup_updates": 5}
    assert row["created"]
    assert [r["id"] for r in store.timings(device="cpu")] == [first, second]
    assert [r["id"] for r in store.timings(synthetic_data=True)] == [first]
    assert [r["id"] for r in store.timings(synthetic_data=None)] == [second]
    assert store.timings(model="cnn")[0]["extra"] == {"note": "b"}
    with pytest.raises(StoreError, match="unknown timing filter"):
        store.timings(colour="red")


# ---------------------------------------------------------------------------- records


def test_records_round_trip_and_replace(store):
    assert store.get_record("sharpness", "a:eps=1e-3") is None
    store.put_record("sharpness", "b:eps=1e-3", {"run_id": "b", "sharpness": 2.5})
    store.put_record("sharpness", "a:eps=1e-3", {"run_id": "a", "sharpness": 1.0})
    store.put_record("sharpness", "a:eps=1e-3", {"run_id": "a", "sharpness": 1.5})
    store.put_record("hessian", "a", {"top_eigenvalue": 12.0})
    assert store.get_record("sharpness", "a:eps=1e-3") == {"run_id": "a", "sharpness": 1.5}
    assert store.records("sharpness") == [{"run_id": "a", "sharpness": 1.5}, {"run_id": "b", "sharpness": 2.5}]
    assert [key for key, _ in store.record_items("sharpness")] == ["a:eps=1e-3", "b:eps=1e-3"]
    assert store.records("hessian") == [{"top_eigenvalue": 12.0}]
    assert store.records("nothing") == []


# ---------------------------------------------------------------------------- lifetime


def test_store_pickles_as_its_path(store):
    finished_run(store)
    copy = pickle.loads(pickle.dumps(store))
    assert copy.path == store.path and copy.get("run-a").status == "finished"
    copy.close()


def test_integrity_check_of_a_used_store(store):
    finished_run(store)
    assert store.integrity_check() == "ok"


# ---------------------------------------------------------------------------- export


def test_export_table_csv_json(store):
    finished_run(store, "run-a", summary={"train_acc": 0.91, "val_acc": 0.88, "test_acc": 0.87,
                                          "updates": 20, "time_per_update_s": 2.5e-3, "batch_size": 64})
    finished_run(store, "run-b", batch_size="full", summary={"train_acc": float("nan"), "diverged_epoch": 2})
    records = store.runs()

    table = export_runs(records, "table").splitlines()
    assert table[0].split()[:7] == ["run", "id", "status", "data", "model", "arch", "opt"]
    assert "λ" in table[0] and "time/update" in table[0]
    assert "0.9100" in table[1] and "2.500 ms" in table[1] and "0.9" in table[1]
    assert "full" in table[2] and "nan" in table[2]

    rows = list(csv.DictReader(io.StringIO(export_runs(records, "csv"))))
    assert list(rows[0])[: len(EXPORT_COLUMNS)] == list(EXPORT_COLUMNS)
    assert rows[0]["run_id"] == "run-a" and float(rows[0]["test_acc"]) == 0.87
    assert rows[0]["summary_batch_size"] == "64" and rows[0]["hidden"] == "[16, 16]"
    assert rows[1]["batch_size"] == "full" and rows[1]["diverged_epoch"] == "2"

    data = json.loads(export_runs(records, "json"))
    assert [d["run_id"] for d in data] == ["run-a", "run-b"]
    assert data[0]["time_per_update_s"] == 2.5e-3 and data[0]["epochs"] == 3
    assert data[1]["train_acc"] is None  # NaN becomes null: strict JSON


def test_export_with_per_epoch_metrics(store):
    finished_run(store, "run-a")
    data = json.loads(export_runs(store.runs(), "json", metrics_for=store))
    assert data[0]["per_epoch"] == store.metrics("run-a")
    rows = list(csv.DictReader(io.StringIO(export_runs(store.runs(), "csv", metrics_for=store.metrics))))
    assert [(r["run_id"], r["epoch"]) for r in rows] == [("run-a", "1"), ("run-a", "2")]
    assert float(rows[1]["train_loss"]) == 0.5
    with pytest.raises(StoreError, match="allowed: csv or json"):
        export_runs(store.runs(), "table", metrics_for=store)


def test_export_loads_into_pandas(store):
    pandas = pytest.importorskip("pandas")
    finished_run(store, "run-a", summary={"test_acc": 0.8})
    finished_run(store, "run-b", summary={"test_acc": 0.7})
    frame = pandas.read_csv(io.StringIO(export_runs(store.runs(), "csv")))
    assert list(frame["run_id"]) == ["run-a", "run-b"]
    assert list(frame["test_acc"]) == [0.8, 0.7]
    from_json = pandas.DataFrame(json.loads(export_runs(store.runs(), "json")))
    assert list(from_json["test_acc"]) == [0.8, 0.7]


def test_export_empty_and_unknown_format():
    assert export_runs([], "table") == "(no runs)"
    assert export_runs([], "json") == "[]"
    assert export_runs([], "csv").splitlines() == [",".join(EXPORT_COLUMNS)]
    with pytest.raises(StoreError, match="allowed: table, csv, json"):
        export_runs([], "xml")


# ------------------------------------------------------------------------- a run's batch size


def test_a_stored_runs_batch_size_is_the_resolved_one_else_the_configured_number(store):
    finished_run(store, "full", summary={"batch_size": 4000}, batch_size="full")
    finished_run(store, "fixed", summary={"updates": 20}, batch_size=64)
    store.start_run("never-resolved", config(batch_size="full"), ENVIRONMENT)
    sizes = {record.run_id: record.batch_size_value for record in store.runs()}
    assert sizes == {"full": 4000, "fixed": 64, "never-resolved": None}
