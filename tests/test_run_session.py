"""A run's life in the store (train/session.py): force never loses a finished run, concurrent
starts of one configuration all succeed with one stored run, what a run trained on is part of its
id, and an interrupted run says so and resumes."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import batchlab
from batchlab import data as datasets
from batchlab.config import RunConfig, run_id
from batchlab.data.identity import data_fingerprint, load_splits
from batchlab.errors import DataError
from batchlab.store import RunStore
from batchlab.training import loop
from batchlab.training.session import RunSession, run_status
from test_data_readers import tiny_idx_spec, write_idx_dataset

TINY = dict(dataset="tiny-idx", model="mlp", hidden=(8,), epochs=2, batch_size=2, lr=0.05, device="cpu",
            val_fraction=0.0)
SMALL = dict(dataset="mnist-5k", model="mlp", hidden=(16,), epochs=2, batch_size=256, lr=0.1, device="cpu")


@pytest.fixture
def tiny_dataset(tmp_path, monkeypatch):
    """A registered 6-image IDX dataset written under ``tmp_path/data``; returns that folder."""
    monkeypatch.setitem(datasets.DATASETS, "tiny-idx", tiny_idx_spec())
    write_idx_dataset(tmp_path / "data" / "tiny-idx")
    datasets.clear_split_cache()
    yield tmp_path / "data"
    datasets.clear_split_cache()


def store_state(store: RunStore) -> tuple:
    """Everything a run leaves in a store: rows, metrics and the files beside it."""
    runs = [(r.run_id, r.status, r.summary) for r in store.runs()]
    metrics = {r.run_id: store.metrics(r.run_id) for r in store.runs()}
    files = sorted((p.name, p.stat().st_size) for p in store.weights_dir.glob("*")) if store.weights_dir.exists() else []
    return runs, metrics, files


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_force_with_unreadable_data_keeps_the_finished_run(tmp_path, tiny_dataset, damage):
    store = RunStore(tmp_path / "r.db")
    config = RunConfig(**TINY, data_dir=str(tiny_dataset))
    first = batchlab.train(config, store=store, progress=False)
    assert first.status == "finished" and store.has_weights(first.run_id)
    before = store_state(store)

    broken = tmp_path / "broken"
    if damage == "truncated":
        write_idx_dataset(broken / "tiny-idx")
        image_file = next((broken / "tiny-idx").glob("train-images*"))
        image_file.write_bytes(image_file.read_bytes()[:20])
    datasets.clear_split_cache()
    # The data folder is where the data lives, not what it is: the same run id.
    again = config.replace(data_dir=str(broken))
    assert run_id(again, "cpu") == first.run_id
    with pytest.raises(DataError):
        batchlab.train(again, store=store, force=True, progress=False)
    assert store_state(store) == before


def test_force_replaces_the_run_and_the_analyses_of_its_old_minimum(tmp_path, tiny_dataset):
    store = RunStore(tmp_path / "r.db")
    config = RunConfig(**TINY, data_dir=str(tiny_dataset))
    first = batchlab.train(config, store=store, progress=False)
    store.put_record("hessian", f"{first.run_id}|k=1", {"top": [1.0]})
    store.put_record("hessian", "someotherrun|k=1", {"top": [2.0]})
    second = batchlab.train(config, store=store, force=True, progress=False)
    assert not second.from_store and second.run_id == first.run_id
    assert [key for key, _ in store.record_items("hessian")] == ["someotherrun|k=1"]
    assert len(store.metrics(first.run_id)) == config.epochs


def test_a_run_another_process_ends_meanwhile_is_returned_from_the_store(tmp_path, tiny_dataset):
    path = tmp_path / "r.db"
    config = RunConfig(**TINY, data_dir=str(tiny_dataset))
    session = RunSession(config, RunStore(path), "cpu")
    assert session.stored_result() is None  # nothing stored yet: this process will train it
    finished = batchlab.train(config, store=RunStore(path), progress=False)  # "another process"
    stored = session.claim({"host": "test"})
    assert stored is not None and stored.from_store and stored.run_id == finished.run_id
    assert stored.summary == finished.summary


def test_a_run_another_live_process_trains_is_waited_for(tmp_path, tiny_dataset, monkeypatch):
    path = tmp_path / "r.db"
    store = RunStore(path)
    config = RunConfig(**TINY, data_dir=str(tiny_dataset))
    identity = run_id(config, "cpu")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert store.claim_run(identity, config.to_dict(), {}).action == "start"
        with store._conn() as conn:  # the row now says: the other process trains it
            conn.execute("UPDATE runs SET pid = ? WHERE run_id = ?", (other.pid, identity))
        decision = store.claim_run(identity, config.to_dict(), {})
        assert decision.action == "busy" and decision.record.pid == other.pid

        def other_process_finishes():
            RunStore(path).finish_run(identity, "finished", {"test_acc": 0.5})

        monkeypatch.setattr(sys.modules["batchlab.training.session"], "_wait", other_process_finishes)
        result = batchlab.train(config, store=store, progress=False)
        assert result.from_store and result.summary == {"test_acc": 0.5}
    finally:
        other.kill()
        other.wait()


def test_a_run_whose_process_died_is_taken_over(tmp_path, tiny_dataset):
    store = RunStore(tmp_path / "r.db")
    config = RunConfig(**TINY, data_dir=str(tiny_dataset))
    identity = run_id(config, "cpu")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.claim_run(identity, config.to_dict(), {})
    with store._conn() as conn:
        conn.execute("UPDATE runs SET pid = ? WHERE run_id = ?", (dead.pid, identity))
    result = batchlab.train(config, store=store, progress=False)
    assert result.status == "finished" and not result.from_store


@pytest.mark.slow
def test_four_processes_starting_one_configuration_all_succeed_with_one_stored_run(tmp_path):
    store_path = tmp_path / "r.db"
    command = [sys.executable, "-m", "batchlab.cli", "train", "--dataset", "mnist-5k", "--hidden", "16",
               "--epochs", "2", "--batch-size", "512", "--device", "cpu", "--store", str(store_path)]
    env = os.environ | {"PYTHONPATH": str(Path(batchlab.__file__).parents[1])}
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(4)]
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err
    store = RunStore(store_path)
    runs = store.runs()
    assert len(runs) == 1 and runs[0].status == "finished"
    assert [row["epoch"] for row in store.metrics(runs[0].run_id)] == [1, 2]


def test_user_splits_under_a_registry_name_get_their_own_id(tmp_path):
    store = RunStore(tmp_path / "r.db")
    config = RunConfig(**{**SMALL, "epochs": 1})
    registry = load_splits(config)
    assert data_fingerprint(config, registry) is None
    own = registry.replace(train=datasets.TensorSplit(registry.train.x[:500], registry.train.y[:500]), origin=None)
    fingerprint = data_fingerprint(config, own)
    assert fingerprint["name"] == "mnist-5k" and fingerprint["shapes"]["train"][0] == [500, 1, 28, 28]

    mine = batchlab.train(config, store=store, splits=own, progress=False)
    assert mine.run_id != run_id(config, "cpu") and mine.summary["n_train"] == 500
    assert mine.environment["data"] == fingerprint
    plain = batchlab.train(config, store=store, progress=False)
    assert not plain.from_store and plain.run_id == run_id(config, "cpu")
    assert plain.summary["n_train"] == len(registry.train)
    # The same tensors again are the same data: found in the store.
    assert batchlab.train(config, store=store, splits=own, progress=False).from_store


def test_changed_content_changes_the_fingerprint():
    config = RunConfig(**SMALL)
    splits = load_splits(config).replace(origin=None)
    y = splits.train.y.clone()
    y[0] = (y[0] + 1) % 10
    changed = splits.replace(train=datasets.TensorSplit(splits.train.x, y))
    assert data_fingerprint(config, splits) != data_fingerprint(config, changed)


def test_training_subset_is_part_of_the_id_and_trains_on_that_many_examples():
    config = RunConfig(**{**SMALL, "epochs": 1}, train_subset=300)
    assert run_id(config, "cpu") != run_id(config.replace(train_subset=None), "cpu")
    # Fields added later leave the ids of earlier runs as they were.
    assert "train_subset" not in batchlab.config.resolved_identity(config.replace(train_subset=None), "cpu")
    result = batchlab.train(config, progress=False)
    assert result.summary["n_train"] == 300
    with pytest.raises(batchlab.ConfigError, match=r"training subset 99999 is larger"):
        load_splits(config.replace(train_subset=99999))


@pytest.mark.slow
def test_interrupted_run_is_marked_and_resumes_from_its_checkpoint(tmp_path, monkeypatch, capsys):
    store = RunStore(tmp_path / "r.db")
    config = RunConfig(**{**SMALL, "epochs": 3})
    real_evaluate = loop.evaluate
    calls = {"n": 0}

    def evaluate_then_ctrl_c(model, split, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # epoch 2's training evaluation (epoch 1 evaluated train and val)
            raise KeyboardInterrupt
        return real_evaluate(model, split, *args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", evaluate_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        batchlab.train(config, store=store, progress=False)
    identity = run_id(config, "cpu")
    assert store.get(identity).status == "interrupted"
    assert run_status(store, identity) == "resume"
    monkeypatch.setattr(loop, "evaluate", real_evaluate)
    capsys.readouterr()
    result = batchlab.train(config, store=store, progress=False)
    assert result.status == "finished"
    assert f"run {identity} resuming from epoch 2" in capsys.readouterr().err
    assert [row["epoch"] for row in store.metrics(identity)] == [1, 2, 3]


@pytest.mark.slow
def test_packed_runs_use_the_same_session_rules(tmp_path):
    from batchlab.training.packed import train_pack

    store = RunStore(tmp_path / "r.db")
    configs = [RunConfig(**{**SMALL, "epochs": 1, "lr": lr}) for lr in (0.05, 0.1)]
    first = train_pack(configs, store=store, progress=False, strategy="packed")
    assert [r.status for r in first] == ["finished", "finished"]
    again = train_pack(configs, store=store, progress=False, strategy="packed")
    assert all(r.from_store for r in again)
    assert [r.summary for r in again] == [r.summary for r in first]


def test_a_version_1_store_is_upgraded_in_place_and_keeps_its_runs(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    with RunStore(path) as store:
        store.claim_run("abc", {"dataset": "mnist-5k"}, {})
        store.finish_run("abc", "finished", {"test_acc": 0.9})
    with sqlite3.connect(path) as conn:  # make it look as version 1 wrote it
        schema = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
        conn.execute("ALTER TABLE runs RENAME TO runs_new")
        conn.execute(schema.replace(", 'interrupted'", ""))
        conn.execute("INSERT INTO runs SELECT * FROM runs_new")
        conn.execute("DROP TABLE runs_new")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with RunStore(path) as store:
        assert store.get("abc").summary == {"test_acc": 0.9}
        store.claim_run("def", {}, {})
        store.mark_interrupted("def")
        assert store.get("def").status == "interrupted"


def test_a_version_3_store_is_upgraded_in_place_and_its_runs_are_reused(tmp_path, tiny_dataset):
    import sqlite3

    from batchlab.store import SCHEMA_VERSION

    path = tmp_path / "v3.db"
    config = RunConfig(**TINY, data_dir=str(tiny_dataset))
    first = batchlab.train(config, store=path, progress=False)
    with sqlite3.connect(path) as conn:  # make it look as version 3 (before "failed to train") wrote it
        schema = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
        assert "'failed to train'" in schema
        conn.execute("ALTER TABLE runs RENAME TO runs_new")
        conn.execute(schema.replace(", 'failed to train'", ""))
        conn.execute("INSERT INTO runs SELECT * FROM runs_new")
        conn.execute("DROP TABLE runs_new")
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    again = batchlab.train(config, store=path, progress=False)
    assert again.from_store and again.summary == first.summary
    with RunStore(path) as store:
        assert store.get(first.run_id).status == first.status
        store.claim_run("other", {}, {})
        store.finish_run("other", "failed to train", {})
        assert store.get("other").status == "failed to train"
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert version == str(SCHEMA_VERSION)


def test_a_run_that_does_not_learn_ends_failed_to_train_and_is_a_result(tmp_path):
    store = RunStore(tmp_path / "r.db")
    config = RunConfig(**{**SMALL, "epochs": 1, "lr": 1e-9})  # the weights barely move: accuracy stays at chance
    first = batchlab.train(config, store=store, progress=False)
    assert first.status == "failed to train"
    assert "chance" in first.summary["failure"] or "above the initial" in first.summary["failure"]
    # the initial loss is the first update's (one batch of 256): close to the whole split's
    assert first.summary["initial_loss"] == pytest.approx(first.summary["train_loss"], rel=0.05)
    assert "test_acc" not in first.summary  # left out like a diverged run
    assert store.get(first.run_id).status == "failed to train"
    again = batchlab.train(config, store=store, progress=False)
    assert again.from_store and again.status == "failed to train"
    forced = batchlab.train(config, store=store, progress=False, force=True)
    assert not forced.from_store and forced.status == "failed to train"
