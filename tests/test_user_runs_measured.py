"""A model file's loss and metric (functions or names), and stored runs of a user's model measured
later: rebuilt from the files the run kept, or from files given where they are now, refused in
one line when a file changed, is gone, or was never given."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from torch import nn

import batchlab
from batchlab.cli import main
from batchlab.errors import ConfigError
from batchlab.store import RunStore
from batchlab.task.files import load_function, task_from_files

pytestmark = pytest.mark.usefixtures("one_thread")

REGRESSION_MODEL = """
from torch import nn

loss = "mse"


def make_model():
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0))
"""

WITH_FUNCTIONS = """
import torch
from torch import nn


def loss(outputs, targets):
    return ((outputs - targets) ** 2).mean()


def metric(outputs, targets):
    return (outputs - targets).abs().max()


def make_model():
    return nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))
"""

REGRESSION_DATA = """
import torch

NOISE = 0.1


def load_data():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=generator)
    y = x[:, 0] - x[:, 2] + NOISE * torch.randn(64, generator=generator)
    return x[:32], y[:32], x[32:48], y[32:48], x[48:], y[48:]
"""


@pytest.fixture
def regression(tmp_path):
    """``(folder, flags)`` of a regression model file naming ``loss = "mse"`` and its data file."""
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "net.py").write_text(REGRESSION_MODEL)
    (folder / "data.py").write_text(REGRESSION_DATA)
    return folder, ["--model-file", f"{folder}/net.py:make_model", "--data-file", f"{folder}/data.py:load_data"]


def train(store, flags, batch_size=16):
    assert main(["train", *flags, "--batch-size", str(batch_size), "--lr", "0.05", "--epochs", "2", "--device",
                 "cpu", "--no-progress", "--store", str(store)]) == 0


def only_run(store_path):
    with RunStore(store_path) as store:
        runs = store.runs()
    assert len(runs) == 1
    return runs[0]


def hessian(store, run_id, *extra):
    return main(["hessian", run_id, "--store", str(store), "--format", "json", "--no-progress", *extra])


# ------------------------------------------------------------------------------ loss and metric


def test_named_losses_and_metrics_in_python():
    x, y = torch.randn(20, 3), torch.randn(20)
    data = (x[:12], y[:12], x[12:], y[12:])

    def model():
        return nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))

    task = batchlab.Task(model, data, loss="mse", metric="mae")
    assert (task.objective.loss_name, task.objective.metric_name) == ("mse", "mae")
    assert batchlab.Task(model, data, loss="mse").objective.metric_name == "mse"  # the loss's own metric
    with pytest.raises(ConfigError, match="loss 'huber' is unknown; allowed: cross_entropy, mse or a function"):
        batchlab.Task(model, data, loss="huber")
    with pytest.raises(ConfigError, match=r"loss mse failed on a first batch .*outputs and targets of one shape, "
                                          r"got \[2, 1\] and \[2\]"):
        batchlab.Task(lambda: nn.Linear(3, 1), data, loss="mse", name="column")


def test_a_model_file_names_its_loss_and_metric_by_function(tmp_path, regression):
    folder, _ = regression
    (folder / "fn.py").write_text(WITH_FUNCTIONS)
    task = task_from_files(f"{folder}/fn.py:make_model", f"{folder}/data.py:load_data")
    assert (task.objective.loss_name, task.objective.metric_name) == ("loss", "metric")
    assert task.origin == {"model_file": f"{folder.resolve()}/fn.py:make_model",
                           "data_file": f"{folder.resolve()}/data.py:load_data"}


def test_a_model_file_with_a_bad_loss_is_one_line(tmp_path, regression, one_error_line):
    folder, flags = regression
    (folder / "net.py").write_text(REGRESSION_MODEL.replace('loss = "mse"', "loss = 3"))
    assert main(["train", *flags, "--store", str(tmp_path / "r.db")]) == 2
    assert f"--model-file: {folder}/net.py sets loss = 3; allowed: cross_entropy, mse or a function" in one_error_line()
    assert not (tmp_path / "r.db").exists()


# ------------------------------------------------------------------------------ measured later


def test_a_run_keeps_its_files_and_is_measured_from_them_with_its_loss(tmp_path, regression, capsys):
    _, flags = regression
    train(tmp_path / "r.db", flags)
    run = only_run(tmp_path / "r.db")
    assert run.environment["origin"]["data_file"].endswith("/files/data.py:load_data")
    capsys.readouterr()
    assert hessian(tmp_path / "r.db", run.run_id[:6]) == 0
    value = json.loads(capsys.readouterr().out)
    assert value["loss_name"] == "mse" and value["loss"] == pytest.approx(run.summary["train_loss"], rel=1e-4)


def test_a_changed_file_is_one_line_saying_what_changed_and_nothing_is_stored(tmp_path, regression, one_error_line,
                                                                             capsys):
    folder, flags = regression
    train(tmp_path / "r.db", flags)
    run = only_run(tmp_path / "r.db")
    capsys.readouterr()
    (folder / "data.py").write_text(REGRESSION_DATA.replace("NOISE = 0.1", "NOISE = 0.2"))
    assert hessian(tmp_path / "r.db", run.run_id) == 2
    error = one_error_line()
    assert f"the data of {folder.resolve()}/data.py:load_data (" in error and "changed since the run trained" in error
    assert "allowed: the files as they were" in error and "train the changed files again" in error
    (folder / "data.py").write_text(REGRESSION_DATA)
    (folder / "net.py").write_text(REGRESSION_MODEL.replace("nn.Tanh()", "nn.ReLU()"))
    assert main(["sharpness", run.run_id, "--store", str(tmp_path / "r.db"), "--no-progress"]) == 2
    assert "the model of" in one_error_line()
    with RunStore(tmp_path / "r.db") as store:
        assert store.records("hessian") == [] and store.records("sharpness") == []


def test_moved_files_are_named_on_the_command_and_gone_ones_say_so(tmp_path, regression, one_error_line, capsys):
    folder, flags = regression
    train(tmp_path / "r.db", flags)
    run = only_run(tmp_path / "r.db")
    capsys.readouterr()
    moved = shutil.move(folder, tmp_path / "moved")
    assert hessian(tmp_path / "r.db", run.run_id) == 2
    assert f"was trained from {folder.resolve()}/net.py, which is gone; allowed: --model-file" in one_error_line()
    assert hessian(tmp_path / "r.db", run.run_id, "--model-file", f"{moved}/net.py:make_model",
                   "--data-file", f"{moved}/data.py:load_data") == 0
    assert json.loads(capsys.readouterr().out)["loss_name"] == "mse"
    assert hessian(tmp_path / "r.db", run.run_id, "--model-file", f"{moved}/net.py:make_model") == 2
    assert "--model-file needs --data-file" in one_error_line()


def test_a_run_of_a_python_task_is_measured_from_files_that_give_the_same_model_and_data(tmp_path, regression,
                                                                                         one_error_line, capsys):
    folder, flags = regression
    factory = load_function(f"{folder}/net.py:make_model", "--model-file")[0]
    data = load_function(f"{folder}/data.py:load_data", "--data-file")[0]()
    task = batchlab.Task(factory, data, name="in-python", loss="mse")
    result = batchlab.train(batchlab.RunConfig(batch_size=16, lr=0.05, epochs=2, device="cpu"), task=task,
                            store=tmp_path / "r.db", progress=False)
    capsys.readouterr()
    assert hessian(tmp_path / "r.db", result.run_id) == 2
    assert "given to it in Python" in one_error_line()
    assert hessian(tmp_path / "r.db", result.run_id, *flags) == 0  # other names, the same content
    assert json.loads(capsys.readouterr().out)["loss"] == pytest.approx(result.summary["train_loss"], rel=1e-4)


def test_files_for_a_registry_run_are_refused(tmp_path, regression, one_error_line, capsys):
    _, flags = regression
    registry = batchlab.train(batchlab.RunConfig(dataset="mnist-5k", model="mlp", hidden=(4,), epochs=1,
                                                 batch_size=1000, device="cpu"), store=tmp_path / "r.db", progress=False)
    capsys.readouterr()
    assert hessian(tmp_path / "r.db", registry.run_id, *flags) == 2
    assert "trained the registry model mlp on mnist-5k; allowed: --model-file and --data-file only for runs of " \
           "your own model" in one_error_line()


def test_a_landscape_between_runs_of_other_data_is_refused(tmp_path, regression, one_error_line, capsys):
    folder, flags = regression
    train(tmp_path / "r.db", flags)
    first = only_run(tmp_path / "r.db")
    other = tmp_path / "other"
    other.mkdir()
    (other / "net.py").write_text(REGRESSION_MODEL)
    (other / "data.py").write_text(REGRESSION_DATA.replace("NOISE = 0.1", "NOISE = 0.3"))
    train(tmp_path / "r.db", ["--model-file", f"{other}/net.py:make_model", "--data-file", f"{other}/data.py:load_data"])
    with RunStore(tmp_path / "r.db") as store:
        second = next(run for run in store.runs() if run.run_id != first.run_id)
    capsys.readouterr()
    assert main(["landscape", first.run_id, second.run_id, "--store", str(tmp_path / "r.db"), "--alphas", "0", "1",
                 "2", "--out", str(tmp_path / "l"), "--no-progress"]) == 2
    assert "trained other models or data" in one_error_line()
