"""A user's own model and data (batchlab.Task, --model-file/--data-file): trained, stored,
skipped when finished, resumed after a kill, a new run whenever the model, the data, the loss or
the metric change, packed runs equal to single ones, and every bad input one line with exit 2
and an untouched store."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

import batchlab
from batchlab.cli import main
from batchlab.config import RunConfig, run_id
from batchlab.errors import ConfigError, DataError
from batchlab.store import RunStore
from batchlab.training import loop
from batchlab.training.packed import plan_packs, train_pack
from batchlab.training.session import run_status

SRC = Path(__file__).resolve().parents[1] / "src"
CONFIG = RunConfig(batch_size=16, lr=0.1, epochs=3, device="cpu")


def blobs(seed: int = 0, n: int = 96, features: int = 4, classes: int = 3):
    """Three Gaussian blobs: (x_train, y_train, x_val, y_val, x_test, y_test)."""
    generator = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(classes, features, generator=generator)
    y = torch.randint(0, classes, (n,), generator=generator)
    x = centres[y] + torch.randn(n, features, generator=generator)
    a, b = n // 2, 3 * n // 4
    return x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:]


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))


def make_wider_model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 3))


def without_times(rows):
    return [{k: v for k, v in row.items() if not k.endswith("time_s")} for row in rows]


def task(**changes) -> batchlab.Task:
    arguments = {"model": make_model, "data": blobs(), "name": "blob-net"} | changes
    return batchlab.Task(arguments.pop("model"), arguments.pop("data"), **arguments)


# ----------------------------------------------------------------------------- Python API


@pytest.mark.slow
def test_a_user_model_trains_is_stored_and_is_then_returned_from_the_store(tmp_path):
    store = RunStore(tmp_path / "r.db")
    first = batchlab.train(CONFIG, task=task(), store=store, progress=False)
    assert first.status == "finished" and not first.from_store
    assert first.config.model == "user:blob-net" and first.config.dataset == "user:data"
    assert first.summary["val_acc"] > 0.8 and "test_acc" in first.summary
    assert [row["epoch"] for row in store.metrics(first.run_id)] == [1, 2, 3]
    again = batchlab.train(CONFIG, task=task(), store=store, progress=False)
    assert again.from_store and again.run_id == first.run_id
    assert again.summary == first.summary


def test_the_factory_is_seeded_so_a_seed_gives_the_same_numbers():
    first = batchlab.train(CONFIG.replace(seed=5), task=task(), progress=False)
    second = batchlab.train(CONFIG.replace(seed=5), task=task(), progress=False)
    assert without_times(first.epochs) == without_times(second.epochs)
    other = batchlab.train(CONFIG.replace(seed=6), task=task(), progress=False)
    assert other.epochs[0]["train_loss"] != first.epochs[0]["train_loss"]


def test_tensors_a_tensor_dataset_and_streamed_data_are_the_same_run_with_the_same_numbers():
    x_train, y_train, x_val, y_val, x_test, y_test = blobs()
    datasets = (TensorDataset(x_train, y_train), TensorDataset(x_val, y_val), TensorDataset(x_test, y_test))
    on_device = task()
    stacked = task(data=datasets)
    streamed = task(data=datasets, keep_on_device=False)
    assert stacked.splits(torch.device("cpu")).train.__class__.__name__ == "TensorSplit"
    assert streamed.splits(torch.device("cpu")).train.__class__.__name__ == "StreamedSplit"
    results = [batchlab.train(CONFIG, task=t, progress=False) for t in (on_device, stacked, streamed)]
    assert len({r.run_id for r in results}) == 1
    assert without_times(results[0].epochs) == without_times(results[1].epochs) == without_times(results[2].epochs)
    assert results[0].summary["test_acc"] == results[2].summary["test_acc"]


def test_a_changed_model_data_loss_or_metric_is_a_new_run_never_the_stale_one(tmp_path):
    store = RunStore(tmp_path / "r.db")
    base = batchlab.train(CONFIG, task=task(), store=store, progress=False)
    x_train, *rest = blobs()
    changed_data = x_train.clone()
    changed_data[0, 0] += 1e-3
    variants = {
        "wider model, same name": task(model=make_wider_model),
        "one value of the data": task(data=(changed_data, *rest)),
        "another loss": task(loss=lambda outputs, targets: F.cross_entropy(outputs, targets, label_smoothing=0.1),
                             loss_name="smoothed"),
        "another metric": task(metric=lambda outputs, targets: (outputs.argmax(1) != targets).double().mean(),
                               metric_name="error"),
    }
    for label, variant in variants.items():
        result = batchlab.train(CONFIG, task=variant, store=store, progress=False)
        assert not result.from_store, label
        assert result.run_id != base.run_id, label
    assert len(store.runs()) == 1 + len(variants)


def test_a_changed_forward_with_the_same_modules_is_a_new_run(tmp_path):
    from batchlab.task.files import load_function

    source = textwrap.dedent("""
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.layer = nn.Linear(4, 3)

            def forward(self, x):
                return self.layer(x)
    """)
    ids = []
    for forward in ("self.layer(x)", "self.layer(x.tanh())"):
        (tmp_path / "net.py").write_text(source.replace("self.layer(x)", forward))
        user = task(model=load_function(f"{tmp_path}/net.py:Net", "--model-file")[0], name="net")
        ids.append((user.model_fingerprint["architecture"],
                    run_id(user.configure(CONFIG), "cpu", user.data_fingerprint, user.model_fingerprint)))
    assert ids[0][0] == ids[1][0]  # the module tree is the same,
    assert ids[0][1] != ids[1][1]  # the run is not


def test_an_interrupted_user_run_resumes_from_its_checkpoint_and_ends_as_if_never_stopped(tmp_path, monkeypatch, capsys):
    store = RunStore(tmp_path / "r.db")
    config = CONFIG.replace(epochs=4, momentum=0.9)
    uninterrupted = batchlab.train(config, task=task(), progress=False)
    real_evaluate = loop.evaluate
    calls = {"n": 0}

    def evaluate_then_ctrl_c(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # epoch 3's training evaluation (epochs 1 and 2 evaluated train and val)
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", evaluate_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        batchlab.train(config, task=task(), store=store, progress=False)
    identity = uninterrupted.run_id
    assert store.get(identity).status == "interrupted" and run_status(store, identity) == "resume"
    monkeypatch.setattr(loop, "evaluate", real_evaluate)
    capsys.readouterr()
    resumed = batchlab.train(config, task=task(), store=store, progress=False)
    assert f"run {identity} resuming from epoch 3" in capsys.readouterr().err
    assert without_times(resumed.epochs) == without_times(uninterrupted.epochs)


def test_a_custom_loss_and_metric_are_reported_under_their_names(capsys):
    x_train, y_train, x_val, y_val, _, _ = blobs()
    targets = [y.float().unsqueeze(1) for y in (y_train, y_val)]

    def mae(outputs, target):
        return (outputs - target).abs().mean()

    regression = batchlab.Task(lambda: nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)),
                               (x_train, targets[0], x_val, targets[1]), name="regressor", loss=F.mse_loss,
                               metric=mae)
    result = batchlab.train(CONFIG, task=regression, progress=False)
    assert result.status == "finished"
    assert {"train_loss", "train_mae", "val_loss", "val_mae"} <= set(result.summary)
    assert "train_acc" not in result.summary and "test_mae" not in result.summary  # no test split given
    assert result.epochs[-1]["train_loss"] < result.epochs[0]["train_loss"]
    end_line = capsys.readouterr().err.strip().splitlines()[-1]  # the run's one plain end line
    assert f"train_mae={result.summary['train_mae']:.4f}" in end_line and "acc" not in end_line


# ----------------------------------------------------------------------------- packing


def test_packed_user_runs_equal_single_user_runs():
    configs = [CONFIG.replace(momentum=momentum, seed=seed) for momentum in (0.0, 0.9) for seed in (0, 1)]
    packed = train_pack(configs, task=task(), progress=False, strategy="packed")
    assert [pack.strategy for pack in packed.plan] == ["packed"]
    for config, result in zip(configs, packed):
        single = batchlab.train(config, task=task(), progress=False)
        assert result.run_id == single.run_id
        for packed_row, single_row in zip(result.epochs, single.epochs):
            for key in ("train_loss", "val_loss", "train_acc", "val_acc"):
                assert packed_row[key] == pytest.approx(single_row[key], rel=1e-4, abs=1e-6), key


def test_packed_user_runs_with_their_own_loss_and_metric_equal_single_ones():
    def mse_metric(outputs, targets):
        return F.mse_loss(outputs, targets).item()

    x_train, y_train, x_val, y_val, _, _ = blobs()
    data = (x_train, y_train.float().unsqueeze(1), x_val, y_val.float().unsqueeze(1))
    regression = batchlab.Task(lambda: nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)), data,
                               name="regressor", loss=F.mse_loss, metric=mse_metric)
    configs = [CONFIG.replace(lr=0.02, seed=seed) for seed in (0, 1)]
    packed = train_pack(configs, task=regression, progress=False, strategy="packed")
    assert [pack.strategy for pack in packed.plan] == ["packed"]
    for config, result in zip(configs, packed):
        single = batchlab.train(config, task=regression, progress=False)
        assert result.epochs[-1]["val_mse_metric"] == pytest.approx(single.epochs[-1]["val_mse_metric"], rel=1e-4)


class Branching(nn.Module):
    """Data-dependent control flow: vmap cannot run it."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 3)

    def forward(self, x):
        return self.layer(x) if x.sum() > 0 else -self.layer(x)


@pytest.mark.parametrize("model, reason", [
    (lambda: nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)), "batch-norm"),
    (lambda: nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3)), "dropout"),
    (Branching, "torch.func cannot run it"),
])
def test_a_model_that_cannot_be_packed_trains_one_at_a_time_with_the_reason(model, reason, capsys):
    user = task(model=model, name="unpackable")
    configs = [user.configure(CONFIG.replace(epochs=1, seed=seed)) for seed in (0, 1)]
    plan = plan_packs(configs, strategy="packed", task=user)
    assert [pack.strategy for pack in plan] == ["sequential", "sequential"]
    assert reason in plan[0].reason
    results = train_pack(configs, task=user, progress=False, strategy="packed")
    assert [r.status for r in results] == ["finished", "finished"]
    assert reason in capsys.readouterr().err


def test_streamed_data_trains_one_at_a_time():
    user = task(keep_on_device=False)
    plan = plan_packs([user.configure(CONFIG.replace(seed=seed)) for seed in (0, 1)], strategy="packed", task=user)
    assert all(pack.strategy == "sequential" and "streamed" in pack.reason for pack in plan)


# ----------------------------------------------------------------------------- command line

MODEL_FILE = """
import time

from torch import nn

def make_model():
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))

def make_wider():
    return nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 3))

def not_a_module():
    return "a string"


class Slow(nn.Module):
    # slow enough that a test can kill its run between two epochs

    def __init__(self):
        super().__init__()
        self.net = make_model()

    def forward(self, x):
        time.sleep(0.02)
        return self.net(x)


def make_slow_model():
    return Slow()
"""

DATA_FILE = """
import torch
from torch.utils.data import TensorDataset

def blobs(seed=0, n=96):
    generator = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(3, 4, generator=generator)
    y = torch.randint(0, 3, (n,), generator=generator)
    x = centres[y] + torch.randn(n, 4, generator=generator)
    return x[:48], y[:48], x[48:72], y[48:72], x[72:], y[72:]

def load_data():
    return blobs()

def load_datasets():
    x, y, xv, yv, xt, yt = blobs()
    return TensorDataset(x, y), TensorDataset(xv, yv), TensorDataset(xt, yt)

def load_other_data():
    return blobs(seed=1)

def mismatched_lengths():
    x, y, xv, yv, xt, yt = blobs()
    return x, y[:-1], xv, yv

def labels_out_of_range():
    x, y, xv, yv, xt, yt = blobs()
    return x, y, xv, yv + 3

def float_labels():
    x, y, xv, yv, xt, yt = blobs()
    return x, y.float(), xv, yv
"""


@pytest.fixture
def user_files(tmp_path):
    (tmp_path / "net.py").write_text(MODEL_FILE)
    (tmp_path / "blobs.py").write_text(DATA_FILE)
    return tmp_path / "net.py", tmp_path / "blobs.py"


def cli_train(store, model, data, *extra):
    return main(["train", "--model-file", str(model), "--data-file", str(data), "--store", str(store),
                 "--batch-size", "16", "--epochs", "2", "--device", "cpu", "--no-progress", *extra])


def test_cli_trains_a_user_model_stores_it_skips_it_and_changes_id_with_model_or_data(tmp_path, user_files, capsys):
    net, data = user_files
    store = tmp_path / "r.db"
    assert cli_train(store, f"{net}:make_model", f"{data}:load_data") == 0
    first = capsys.readouterr().out
    assert ", trained;" in first
    assert cli_train(store, f"{net}:make_model", f"{data}:load_data") == 0
    assert "from the store" in capsys.readouterr().out
    assert cli_train(store, f"{net}:make_model", f"{data}:load_datasets") == 0
    assert ", trained;" in capsys.readouterr().out  # another function name: another data name
    assert cli_train(store, f"{net}:make_wider", f"{data}:load_data") == 0
    assert cli_train(store, f"{net}:make_model", f"{data}:load_other_data") == 0
    with RunStore(store) as opened:
        runs = opened.runs()
    assert len(runs) == 4 and all(r.status == "finished" for r in runs)
    assert {r.config["model"] for r in runs} == {"user:net.make_model", "user:net.make_wider"}

    # The same function name over changed content: a new run, never the stale one.
    (tmp_path / "blobs.py").write_text(DATA_FILE.replace("centres = 3 *", "centres = 2 *"))
    assert cli_train(store, f"{net}:make_model", f"{data}:load_data") == 0
    assert ", trained;" in capsys.readouterr().out


def test_cli_sweep_over_a_user_model_packs_and_skips_on_a_second_call(tmp_path, user_files, capsys):
    net, data = user_files
    store = tmp_path / "r.db"
    command = ["sweep", "--model-file", f"{net}:make_model", "--data-file", f"{data}:load_data",
               "--batch-size", "8", "16", "--momentum", "0", "0.9", "--epochs", "2", "--device", "cpu",
               "--packing", "packed", "--store", str(store), "--no-progress"]
    assert main(command) == 0
    out = capsys.readouterr()
    assert "4 run(s): 4 trained" in out.out
    assert "packed" in out.out
    assert main(command) == 0
    assert "skipped (already in store): 4" in capsys.readouterr().out


def store_state(path: Path) -> tuple:
    """Everything runs leave in a store: rows, metrics, and the files beside it."""
    with RunStore(path) as store:
        runs = [(r.run_id, r.status, r.summary) for r in store.runs()]
        metrics = {r.run_id: store.metrics(r.run_id) for r in store.runs()}
        files = sorted((p.name, p.stat().st_size) for p in store.weights_dir.glob("*"))
    return runs, metrics, files


BAD_INPUTS = {
    "missing file": ("missing.py:make_model", "blobs.py:load_data", "does not exist"),
    "no function named": ("net.py", "blobs.py:load_data", "does not name a function"),
    "no such function": ("net.py:build", "blobs.py:load_data", "has no function build"),
    "not a module": ("net.py:not_a_module", "blobs.py:load_data", "returned a str"),
    "mismatched lengths": ("net.py:make_model", "blobs.py:mismatched_lengths", "48 inputs but 47 targets"),
    "labels out of range": ("net.py:make_model", "blobs.py:labels_out_of_range", "allowed: class indices in [0, 3)"),
    "float labels": ("net.py:make_model", "blobs.py:float_labels", "allowed: int64 class indices"),
    "missing data file": ("net.py:make_model", "nowhere.py:load_data", "does not exist"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_cli_bad_user_input_is_one_line_exit_2_and_leaves_the_store_unchanged(tmp_path, user_files, capsys, case):
    store = tmp_path / "r.db"
    assert cli_train(store, f"{tmp_path}/net.py:make_model", f"{tmp_path}/blobs.py:load_data") == 0
    before = store_state(store)
    capsys.readouterr()
    model, data, message = BAD_INPUTS[case]
    assert cli_train(store, tmp_path / model, tmp_path / data) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("batchlab: error: ") and message in err, err
    assert store_state(store) == before


def test_bad_user_input_in_python_is_a_user_error_before_any_store_is_made(tmp_path):
    with pytest.raises(ConfigError, match="same module twice"):
        shared = make_model()
        task(model=lambda: shared, name="shared")
    with pytest.raises(DataError, match="not an .x, y. pair|sequence of 3"):
        task(data=blobs()[:3])
    with pytest.raises(ConfigError, match="failed on a first batch"):
        task(model=lambda: nn.Linear(5, 3), name="wrong-width")
    with pytest.raises(ConfigError, match="hidden widths"):
        batchlab.train(CONFIG.replace(hidden=(8,)), task=task(), store=tmp_path / "r.db")
    assert not (tmp_path / "r.db").exists()


def _environment() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return os.environ | {"PYTHONPATH": str(SRC) + (os.pathsep + path if path else ""), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_a_sigkilled_cli_run_of_a_user_model_resumes_from_its_last_epoch(tmp_path, user_files):
    net, data = user_files
    store = tmp_path / "r.db"
    epochs = 40
    command = [sys.executable, "-m", "batchlab.cli", "train", "--model-file", f"{net}:make_slow_model",
               "--data-file", f"{data}:load_data", "--store", str(store), "--batch-size", "16",
               "--epochs", str(epochs), "--device", "cpu", "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_environment())
    deadline = time.monotonic() + 120
    try:
        while not list((tmp_path / "r-weights").glob("*.ckpt.pt")):
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.02)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        (identity, status), = conn.execute("SELECT run_id, status FROM runs").fetchall()
    finally:
        conn.close()
    assert status == "running"
    with RunStore(store) as opened:
        last = opened.load_checkpoint(identity)["epoch"]
    assert last < epochs
    resumed = subprocess.run(command, capture_output=True, text=True, env=_environment(), timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"run {identity} resuming from epoch {last + 1}" in resumed.stderr
    with RunStore(store) as opened:
        assert opened.get(identity).status == "finished"
        assert [row["epoch"] for row in opened.metrics(identity)] == list(range(1, epochs + 1))
