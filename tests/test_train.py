"""One training run end to end on the real embedded data: determinism, store reuse, divergence,
resume after a crash, and every bad input of the train command."""

import json
import math
import sqlite3

import pytest

import batchlab
from batchlab.cli import main
from batchlab.config import RunConfig, run_id
from batchlab.store import RunStore

SMALL = dict(dataset="mnist-5k", model="mlp", hidden=(32,), epochs=2, batch_size=256, lr=0.1, device="cpu")


@pytest.mark.slow
def test_same_config_and_seed_give_identical_numbers():
    config = RunConfig(**SMALL, momentum=0.9, seed=3)
    first = batchlab.train(config, progress=False)
    second = batchlab.train(config, progress=False)
    assert first.status == "finished"
    def without_times(rows):
        return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in rows]

    assert without_times(first.epochs) == without_times(second.epochs)
    assert first.summary["test_acc"] == second.summary["test_acc"]
    other_seed = batchlab.train(config.replace(seed=4), progress=False)
    assert other_seed.epochs[0]["train_loss"] != first.epochs[0]["train_loss"]


@pytest.mark.slow
def test_training_learns_real_digits():
    result = batchlab.train(RunConfig(**{**SMALL, "epochs": 3, "batch_size": 32, "lr": 0.01}, momentum=0.9), progress=False)
    assert result.summary["val_acc"] > 0.85
    assert result.summary["test_acc"] > 0.85
    n_train = result.summary["n_train"]
    assert result.summary["updates"] == 3 * math.ceil(n_train / 32)


@pytest.mark.slow
def test_full_batch_is_one_update_per_epoch_and_drop_last_drops():
    full = batchlab.train(RunConfig(**{**SMALL, "batch_size": "full"}), progress=False)
    assert full.summary["updates"] == 2
    n_train = full.summary["n_train"]
    dropped = batchlab.train(RunConfig(**{**SMALL, "batch_size": 1000, "epochs": 1}, drop_last=True), progress=False)
    assert dropped.summary["updates"] == n_train // 1000
    kept = batchlab.train(RunConfig(**{**SMALL, "batch_size": 1000, "epochs": 1}), progress=False)
    assert kept.summary["updates"] == math.ceil(n_train / 1000)


@pytest.mark.slow
def test_max_updates_is_a_fixed_update_budget():
    result = batchlab.train(RunConfig(**{**SMALL, "batch_size": 100, "epochs": 5}, max_updates=50), progress=False)
    assert result.summary["updates"] == 50
    assert result.summary["epochs_completed"] == 2


@pytest.mark.slow
def test_huge_learning_rate_diverges_as_a_result_not_a_crash(tmp_path):
    config = RunConfig(**{**SMALL, "epochs": 4, "lr": 1e6}, momentum=0.9)
    result = batchlab.train(config, store=tmp_path / "runs.db", progress=False)
    assert result.status == "diverged"
    assert result.summary["diverged_epoch"] == 1
    assert len(result.epochs) == 1
    stored = RunStore(tmp_path / "runs.db").get(result.run_id)
    assert stored.status == "diverged"


@pytest.mark.slow
def test_store_returns_finished_run_unless_forced(tmp_path):
    store_path = tmp_path / "runs.db"
    config = RunConfig(**SMALL, momentum=0.5)
    first = batchlab.train(config, store=store_path, progress=False)
    assert not first.from_store
    again = batchlab.train(config, store=store_path, progress=False)
    assert again.from_store
    assert again.run_id == first.run_id == run_id(config, "cpu")
    assert [row["train_loss"] for row in again.epochs] == [row["train_loss"] for row in first.epochs]
    forced = batchlab.train(config, store=store_path, force=True, progress=False)
    assert not forced.from_store
    store = RunStore(store_path)
    assert len(store.runs()) == 1
    assert store.has_weights(first.run_id)
    record = store.get(first.run_id)
    assert record.environment["torch"]
    assert record.config["batch_size"] == 256


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_epoch_checkpoint(tmp_path, monkeypatch):
    store_path = tmp_path / "runs.db"
    config = RunConfig(**{**SMALL, "epochs": 4}, momentum=0.9)
    uninterrupted = batchlab.train(config, progress=False)

    class Crash(Exception):
        pass

    original_log_epoch = RunStore.log_epoch

    def crash_after_epoch_two(self, identity, epoch, metrics):
        original_log_epoch(self, identity, epoch, metrics)
        if epoch == 3:
            raise Crash()

    monkeypatch.setattr(RunStore, "log_epoch", crash_after_epoch_two)
    with pytest.raises(Crash):
        batchlab.train(config, store=store_path, progress=False)
    monkeypatch.setattr(RunStore, "log_epoch", original_log_epoch)
    assert RunStore(store_path).get(uninterrupted.run_id).status == "running"

    resumed = batchlab.train(config, store=store_path, progress=False)
    assert resumed.status == "finished"
    for a, b in zip(resumed.epochs, uninterrupted.epochs):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_acc"] == b["val_acc"]
    assert resumed.summary["test_acc"] == uninterrupted.summary["test_acc"]
    assert [row["epoch"] for row in RunStore(store_path).metrics(resumed.run_id)] == [1, 2, 3, 4]


def test_train_command_prints_table_and_stores(tmp_path, capsys):
    store_path = tmp_path / "runs.db"
    code = main(["train", "--hidden", "32", "--epochs", "1", "--batch-size", "500", "--device", "cpu",
                 "--store", str(store_path), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "train acc" in out and "test acc" in out
    code = main(["train", "--hidden", "32", "--epochs", "1", "--batch-size", "500", "--device", "cpu",
                 "--store", str(store_path), "--no-progress", "--format", "json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["status"] == "finished"


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--model", "resnet"], "unknown model 'resnet'; known: mlp"),
        (["--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'; known: momentum"),
        (["--batch-size", "0"], "batch size 0 is too small"),
        (["--batch-size", "-3"], "batch size -3 is too small"),
        (["--batch-size", "2.5"], "is not an integer"),
        (["--batch-size", "100000"], "larger than the training set"),
        (["--lr", "-1"], "learning rate -1.0 is negative"),
        (["--momentum", "1.0"], "momentum 1.0 is outside [0, 1)"),
        (["--momentum", "-0.5"], "momentum -0.5 is outside [0, 1)"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, flags, expected):
    code = main(["train", "--epochs", "1", "--device", "cpu", "--store", str(tmp_path / "r.db"), "--no-progress", *flags])
    assert code == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_store_that_is_not_batchlab_is_refused(tmp_path, capsys):
    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE people (name TEXT)")
    code = main(["train", "--epochs", "1", "--device", "cpu", "--store", str(foreign), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "not a batchlab run store" in err and err.count("\n") == 1


def test_debug_shows_traceback(tmp_path, capsys):
    code = main(["--debug", "train", "--model", "resnet", "--device", "cpu", "--store", str(tmp_path / "r.db")])
    assert code == 2
    assert "Traceback" in capsys.readouterr().err
