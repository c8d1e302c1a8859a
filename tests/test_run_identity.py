"""Runs under the same names that trained another model or other data are told apart: the data
and model columns of ``batchlab runs`` carry short fingerprints, ``runs compare`` marks them, and
the accuracy analysis (the report's) never averages them as seeds of one setting."""

from __future__ import annotations

import json

import pytest

from batchlab.analysis.accuracy import accuracy_vs_batch_size
from batchlab.cli import main
from batchlab.store import RunStore
from batchlab.store.identity import data_digest, fingerprints, model_digest

MODEL = {"name": "net.make_model", "architecture": "a" * 64, "code": "c" * 64, "parameters": 131,
         "loss": {"name": "cross_entropy"}, "metric": {"name": "acc"}}


def user_config(seed):
    return {"dataset": "user:blobs.load_data", "model": "user:net.make_model", "optimizer": "momentum",
            "batch_size": 16, "lr": 0.1, "momentum": 0.0, "seed": seed, "epochs": 2, "hidden": None,
            "val_fraction": 0.0, "split_seed": 0, "device": "cpu"}


def data_entry(sha):
    return {"name": "blobs.load_data", "splits": {"train": [48, [[4], "float32"], [[], "int64"]]}, "sha256": sha}


@pytest.fixture
def store_path(tmp_path):
    """Three seeds of one configuration: seeds 0 and 1 on one version of the data, seed 2 on an
    edited one (another sha256), and a registry run, which has no fingerprints."""
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        for run_id, seed, sha, acc in (("aaaa0001", 0, "1" * 64, 0.9), ("aaaa0002", 1, "1" * 64, 0.8),
                                       ("bbbb0003", 2, "2" * 64, 0.3)):
            store.start_run(run_id, user_config(seed), {"data": data_entry(sha), "user_model": MODEL})
            store.log_epoch(run_id, 1, {"train_loss": 0.5, "train_acc": acc})
            store.finish_run(run_id, "finished", {"train_acc": acc, "val_acc": acc, "test_acc": acc})
        store.start_run("cccc0004", user_config(0) | {"dataset": "mnist-5k", "model": "mlp"}, {})
        store.finish_run("cccc0004", "finished", {"train_acc": 0.5, "val_acc": 0.5})
    return path


def test_fingerprints_are_short_and_only_where_a_run_has_them():
    environment = {"data": data_entry("1" * 64), "user_model": MODEL}
    assert fingerprints(environment) == {"model_fingerprint": model_digest(MODEL), "data_fingerprint": "11111111"}
    assert len(model_digest(MODEL)) == 8 and model_digest(MODEL | {"code": "d" * 64}) != model_digest(MODEL)
    assert fingerprints({}) == {} and data_digest(None) is None and model_digest(None) is None


def test_the_runs_table_shows_data_and_model_with_their_fingerprints(store_path, capsys):
    assert main(["runs", "--store", str(store_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[3:5] == ["data", "model"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["aaaa0001"][2:4] == ["user:blobs.load_data·11111111", f"user:net.make_model·{model_digest(MODEL)}"]
    assert rows["bbbb0003"][2] == "user:blobs.load_data·22222222"
    assert rows["cccc0004"][2:4] == ["mnist-5k", "mlp"]  # a registry run is named by its config


def test_json_has_the_fingerprint_columns(store_path, capsys):
    assert main(["runs", "--store", str(store_path), "--format", "json"]) == 0
    rows = {row["run_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["bbbb0003"]["data_fingerprint"] == "22222222"
    assert "data_fingerprint" not in rows["cccc0004"]


def test_compare_marks_a_data_difference(store_path, capsys):
    assert main(["runs", "compare", "aaaa0001", "bbbb0003", "--store", str(store_path)]) == 0
    lines = capsys.readouterr().out.split("\n\n")[0].splitlines()
    marked = {line.split()[1] for line in lines[2:] if line.startswith("*")}
    assert "data_fingerprint" in marked and "model_fingerprint" not in marked
    assert "dataset" not in marked and "model" not in marked  # the names are the same


def test_seeds_on_other_data_are_never_averaged_together(store_path):
    with RunStore(store_path) as store:
        panels = accuracy_vs_batch_size(store.runs())
    (user,) = [panel for panel in panels if panel.dataset == "user:blobs.load_data"]
    assert len(user.curves) == 2
    by_data = {curve.settings["data_fingerprint"]: curve for curve in user.curves}
    same, edited = by_data["11111111"].points[0], by_data["22222222"].points[0]
    assert same.seeds == [0, 1] and same.mean("val_acc") == pytest.approx(0.85)
    assert edited.seeds == [2] and edited.mean("val_acc") == pytest.approx(0.3)
    assert sorted(curve.label for curve in user.curves) == ["momentum, λ = 0, data = 11111111",
                                                            "momentum, λ = 0, data = 22222222"]
    (registry,) = [panel for panel in panels if panel.dataset == "mnist-5k"]
    assert "data_fingerprint" not in registry.curves[0].settings
