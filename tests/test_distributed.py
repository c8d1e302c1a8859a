"""Data-parallel training on torchrun: how a batch is cut, real 2-process gloo runs that equal a
one-process run, a killed process that torchrun restarts, and bad input before any process.

Tolerance: a 2-process run differs from the one-process run only in the order of float
additions in the gradient all-reduce; after 2 epochs the losses agree to below 1e-6 relative
(measured), so they are compared at 1e-5 relative, accuracies to one example.
"""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import batchlab
from batchlab.cli import main
from batchlab.config import RunConfig, run_id
from batchlab.distributed import plan_data_parallel, train_on_processes
from batchlab.errors import ConfigError
from batchlab.store import RunStore

SMALL = dict(dataset="mnist-5k", model="mlp", hidden=(32,), lr=0.1, momentum=0.9, device="cpu")
LOSS_RTOL = 1e-5


def assert_same_epochs(one: list[dict], many: list[dict], n_train: int, n_val: int) -> None:
    assert [row["epoch"] for row in many] == [row["epoch"] for row in one]
    for a, b in zip(one, many):
        assert b["updates"] == a["updates"] and b["epoch_updates"] == a["epoch_updates"]
        for key in ("train_loss", "val_loss", "batch_loss_mean"):
            assert b[key] == pytest.approx(a[key], rel=LOSS_RTOL), key
        assert abs(b["train_acc"] - a["train_acc"]) <= 1 / n_train + 1e-12
        assert abs(b["val_acc"] - a["val_acc"]) <= 1 / n_val + 1e-12


# ---------------------------------------------------------------------------------- the plan


def test_shards_cover_each_batch_once_and_weights_give_the_batch_mean():
    config = RunConfig(**SMALL, batch_size=8)
    plan = plan_data_parallel(config, 21, 4, "cpu", None)  # batches 8, 8, 5
    assert plan.slices == ((0, 8), (8, 16), (16, 21))
    for start, end in plan.slices:
        shards = [plan.shard(start, end, rank) for rank in range(4)]
        assert shards[0][0] == start and shards[-1][1] == end
        assert all(shards[r][1] == shards[r + 1][0] for r in range(3))
        sizes = [high - low for low, high in shards]
        assert max(sizes) - min(sizes) <= 1
        # DDP averages over 4 processes: Σ_r (N/b)·|shard_r| / N = 1, every example weighted 1/b.
        assert sum(plan.loss_weight(start, end) * size for size in sizes) / 4 == pytest.approx(1.0)
    assert [plan.shard(0, 8, r) for r in range(4)] == [(0, 2), (2, 4), (4, 6), (6, 8)]


def test_a_plain_model_shares_the_one_process_run_id_and_per_process_batch_norm_does_not():
    assert plan_data_parallel(RunConfig(**SMALL, batch_size=8), 100, 2, "cpu", None).execution is None
    bn = RunConfig(**{**SMALL, "model": "keskar-f1"}, batch_size=8)
    per_process = plan_data_parallel(bn, 100, 2, "cpu", None)
    assert not per_process.sync_batch_norm
    assert per_process.execution == {"processes": 2, "batch_norm": "per-process"}
    assert run_id(bn, "cpu", execution=per_process.execution) != run_id(bn, "cpu")
    synced = plan_data_parallel(bn, 100, 2, "cuda", None)
    assert synced.sync_batch_norm and synced.execution is None
    assert plan_data_parallel(bn, 100, 1, "cpu", None).execution is None


@pytest.mark.parametrize(
    ("changes", "world", "device", "sync_bn", "says"),
    [
        ({"batch_size": 64}, 3, "cpu", None, "does not split evenly over 3 processes"),
        ({"batch_size": 4}, 8, "cpu", None, "8 processes are more than the batch of 4"),
        ({"batch_size": 8, "model": "keskar-c1"}, 2, "cpu", None, "uses dropout"),
        ({"batch_size": 8, "model": "keskar-f1"}, 2, "cpu", True, "needs CUDA"),
    ],
)
def test_what_cannot_be_split_is_one_line(changes, world, device, sync_bn, says):
    config = RunConfig(**{**SMALL, **changes})
    with pytest.raises(ConfigError, match=says) as caught:
        plan_data_parallel(config, 100, world, device, sync_bn)
    assert "\n" not in str(caught.value) and "allowed" in str(caught.value)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--batch-size", "64", "--nproc", "3"], "does not split evenly over 3 processes"),
        (["--batch-size", "64", "--nproc", "128"], "128 processes are more than the batch of 64"),
        (["--batch-size", "64", "--max-restarts", "1"], "--max-restarts restarts the processes of --nproc"),
    ],
)
def test_bad_data_parallel_input_exits_2_with_one_line_and_stores_nothing(tmp_path, capsys, flags, says):
    store = tmp_path / "runs.db"
    code = main(["train", "--device", "cpu", "--epochs", "1", "--store", str(store), *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and says in err
    assert not store.exists()


def test_the_module_outside_torchrun_is_one_line(capsys, monkeypatch):
    from batchlab.distributed.__main__ import main as module_main

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert module_main(["--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not started by torchrun" in err


# ---------------------------------------------------------------------------------- real runs


@pytest.mark.slow
@pytest.mark.distributed
def test_two_gloo_processes_train_the_one_process_run(tmp_path):
    # 1000 examples in batches of 64: 15 full batches and a last one of 40 (20 per process).
    config = RunConfig(**SMALL, batch_size=64, epochs=2, train_subset=1000)
    store = tmp_path / "runs.db"
    many = train_on_processes(config, 2, store=RunStore(store), progress=False)
    one = batchlab.train(config, progress=False)
    assert many.status == one.status == "finished"
    assert many.run_id == one.run_id
    assert many.environment["data_parallel"]["processes"] == 2
    assert many.environment["data_parallel"]["backend"] == "gloo"
    n_train, n_val = one.summary["n_train"], 500
    assert n_train == 1000 and one.summary["updates_per_epoch"] == math.ceil(1000 / 64)
    assert_same_epochs(one.epochs, many.epochs, n_train, n_val)
    assert many.summary["test_acc"] == pytest.approx(one.summary["test_acc"], abs=1e-3)
    # Process 0 stored the run under the shared id: a one-process request finds it there.
    again = batchlab.train(config, store=store, progress=False)
    assert again.from_store and again.run_id == many.run_id
    assert_same_epochs(one.epochs, again.epochs, n_train, n_val)


@pytest.mark.slow
@pytest.mark.distributed
def test_a_killed_process_is_restarted_and_the_run_resumes_losing_nothing(tmp_path):
    epochs, batch = 4, 128
    config = RunConfig(**SMALL, batch_size=batch, epochs=epochs)
    identity = run_id(config, "cpu")
    db = tmp_path / "runs.db"
    flags = ["--store", str(db), "--model", "mlp", "--hidden", "32", "--lr", "0.1", "--momentum", "0.9",
             "--batch-size", str(batch), "--epochs", str(epochs), "--device", "cpu", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(batchlab.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")]))
    job = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "--max-restarts", "1", "-m", "batchlab.distributed", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not (db.exists() and RunStore(db).has_checkpoint(identity)):
            assert job.poll() is None, job.communicate()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
        owner = RunStore(db).get(identity)
        os.kill(owner.pid, signal.SIGKILL)  # process 0, the one that owns the store
        out, err = job.communicate(timeout=180)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, err
    assert "resuming from epoch" in err
    store = RunStore(db)
    record = store.get(identity)
    assert record.status == "finished"
    assert record.environment["data_parallel"]["restart"] == 1
    stored = store.metrics(identity)
    assert [row["epoch"] for row in stored] == list(range(1, epochs + 1))
    one = batchlab.train(config, progress=False)
    assert_same_epochs(one.epochs, stored, one.summary["n_train"], 500)


@pytest.mark.slow
@pytest.mark.distributed
def test_a_user_model_from_files_trains_on_two_processes_as_on_one(tmp_path, capsys, user_model_flags):
    common = ["train", *user_model_flags, "--batch-size", "16", "--epochs", "2", "--lr", "0.1", "--momentum", "0.9",
              "--device", "cpu", "--no-progress", "--format", "json"]
    assert main([*common, "--nproc", "2", "--store", str(tmp_path / "many.db")]) == 0
    capsys.readouterr()
    assert main([*common, "--store", str(tmp_path / "one.db")]) == 0
    capsys.readouterr()
    with RunStore(tmp_path / "many.db") as many_store, RunStore(tmp_path / "one.db") as one_store:
        (many,), (one,) = many_store.runs(), one_store.runs()
        assert many.run_id == one.run_id and many.config["model"] == "user:net.make_model"
        assert many.status == one.status == "finished"
        assert_same_epochs(one_store.metrics(one.run_id), many_store.metrics(many.run_id), 48, 24)
        assert many.summary["test_acc"] == pytest.approx(one.summary["test_acc"], abs=1 / 12 + 1e-9)


@pytest.mark.slow
@pytest.mark.distributed
def test_torchrun_with_the_module_trains_a_user_model_from_files(tmp_path, user_model_flags):
    db = tmp_path / "runs.db"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(batchlab.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")]))
    job = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "batchlab.distributed", *user_model_flags, "--batch-size", "16", "--epochs", "2",
         "--device", "cpu", "--no-progress", "--store", str(db)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert job.returncode == 0, job.stderr
    (run,) = RunStore(db).runs()
    assert run.status == "finished" and run.config["model"] == "user:net.make_model"
    assert run.environment["data_parallel"]["processes"] == 2


ERROR_TASK_FILE = """
import torch
from torch import nn
from torch.nn import functional as F

import batchlab


def make_model():
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))


def load_data():
    generator = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(3, 4, generator=generator)
    y = torch.randint(0, 3, (96,), generator=generator)
    x = centres[y] + torch.randn(96, 4, generator=generator)
    return x[:48], y[:48], x[48:72], y[48:72], x[72:], y[72:]


def error_rate(outputs, targets):
    return (outputs.argmax(dim=1) != targets).double().mean()


def make_task():
    return batchlab.Task(make_model, load_data(), name="blobs_net", loss=F.cross_entropy, metric=error_rate,
                         metric_name="error")
"""


@pytest.mark.slow
@pytest.mark.distributed
def test_a_custom_metric_is_logged_under_its_name_every_epoch_single_packed_and_on_two_processes(
        tmp_path, monkeypatch):
    from batchlab.training.packed import train_pack

    (tmp_path / "error_task.py").write_text(ERROR_TASK_FILE)
    monkeypatch.syspath_prepend(str(tmp_path))  # the processes import the task's functions from here
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(Path(batchlab.__file__).parents[1]),
                                                      os.environ.get("PYTHONPATH", "")]))
    import error_task

    config = RunConfig(batch_size=16, epochs=2, lr=0.1, momentum=0.9, device="cpu")
    single = batchlab.train(config, task=error_task.make_task(), progress=False)
    (packed,) = train_pack([config], task=error_task.make_task(), progress=False, strategy="packed")
    many = train_on_processes(config, 2, task=error_task.make_task(), store=tmp_path / "many.db", progress=False)
    with RunStore(tmp_path / "many.db") as store:
        stored = store.metrics(many.run_id)
    expected = {"epoch", "train_loss", "train_error", "val_loss", "val_error", "batch_loss_mean", "updates",
                "epoch_updates", "epoch_time_s"}
    for rows in (single.epochs, packed.epochs, many.epochs, stored):
        assert [row["epoch"] for row in rows] == [1, 2]
        assert [set(row) for row in rows] == [expected, expected]
    assert "test_error" in many.summary and "train_acc" not in many.summary
