"""advise on your own model: --model-file/--data-file on the command line (the recommended command
names the files), task= in Python, a regression model with MSE advised on a loss target, and the
one rule for registry options beside the files."""

from __future__ import annotations

import json
import shlex
import textwrap

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import batchlab
from batchlab.cli import build_parser, main
from batchlab.errors import ConfigError

MODEL = """
from torch import nn

def make_model():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
"""

# Two classes on either side of a plane; the helper lives beside the data file and is imported by it.
HELPER = """
import torch

def blobs(n, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = (x @ torch.tensor([1.0, 1.0, -1.0, 0.5]) > 0).long()
    return x, y
"""

DATA = """
from blobs_helper import blobs

def load_data():
    x, y = blobs(160, 0)
    xv, yv = blobs(40, 1)
    return x, y, xv, yv
"""

SMALL = ["--batch-size", "8", "32", "--seeds", "1", "--lr-points", "2", "--min-updates", "60", "--budget-epochs", "1",
         "--device", "cpu", "--target", "val_acc=0.9"]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "net.py").write_text(textwrap.dedent(MODEL))
    (tmp_path / "blobs_helper.py").write_text(textwrap.dedent(HELPER))
    (tmp_path / "data.py").write_text(textwrap.dedent(DATA))
    return [f"{tmp_path / 'net.py'}:make_model", f"{tmp_path / 'data.py'}:load_data"]


@pytest.mark.slow
def test_advise_takes_your_files_and_its_command_names_them(tmp_path, files, capsys):
    argv = ["advise", "--model-file", files[0], "--data-file", files[1], *SMALL,
            "--store", str(tmp_path / "runs.db"), "--out", str(tmp_path / "out"), "--format", "json"]
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["plan"]["template"]["model"] == "user:net.make_model"
    assert record["plan"]["template"]["dataset"] == "user:data.load_data"
    command = record["recommendation"]["command"]
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert args.model_file == files[0] and args.data_file == files[1]
    assert args.batch_size == record["recommendation"]["choice"]["batch_size"]
    assert all(row["steps"] >= 1 for row in record["rows"] if row["reached"]), record["rows"]
    assert record["noise"] is not None  # cross-entropy: the noise scale is measured on your model too


def test_registry_options_beside_the_files_are_refused_in_one_line(files, capsys):
    for extra, named in ((["--model", "mlp"], "--model mlp"), (["--val-fraction", "0.2"], "--val-fraction 0.2"),
                         (["--hidden", "16"], "--hidden 16")):
        assert main(["advise", "--model-file", files[0], "--data-file", files[1], *extra, "--device", "cpu"]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("batchlab: error:")]
        assert len(errors) == 1 and named in errors[0] and "--model-file" in errors[0]
    assert main(["advise", "--model-file", files[0], "--device", "cpu"]) == 2
    assert "--model-file needs --data-file" in capsys.readouterr().err


# ------------------------------------------------------------------ regression in Python


def _regression_task():
    generator = torch.Generator().manual_seed(0)
    weights = torch.tensor([[1.0], [-1.0], [0.5], [1.5]])
    x, xv = torch.randn(160, 4, generator=generator), torch.randn(40, 4, generator=generator)

    def make_regressor():
        return nn.Linear(4, 1)

    def mse(outputs, targets):
        return F.mse_loss(outputs, targets)

    return batchlab.Task(make_regressor, (x, x @ weights, xv, xv @ weights), loss=F.mse_loss, metric=mse,
                         name="regressor")


def test_a_regression_task_needs_a_loss_target():
    task = _regression_task()
    with pytest.raises(ConfigError, match="not accuracy, so there is no default target"):
        batchlab.advise(batchlab.RunConfig(device="cpu"), task=task, batch_sizes=[8, 32])
    with pytest.raises(ConfigError, match="needs accuracy, but the task's metric is mse"):
        batchlab.advise(batchlab.RunConfig(device="cpu"), task=task, batch_sizes=[8, 32], target="val_acc=0.9")


@pytest.mark.slow
def test_a_regression_model_with_mse_is_advised_on_a_loss_target():
    task = _regression_task()
    result = batchlab.advise(batchlab.RunConfig(device="cpu"), task=task, batch_sizes=[8, 32], seeds=1,
                             lr_points=2, min_updates=60, budget_epochs=1, target="val_loss=0.5")
    assert any(row["reached"] for row in result.rows)
    assert result.plan.target.key == "val_loss<=0.5"
    command = result.recommendation["command"]
    assert command.startswith("batchlab.train(batchlab.RunConfig(batch_size=") and command.endswith(", task=task)")
    assert result.noise is None  # the noise scale is measured for cross-entropy only


REGRESSOR = """
from torch import nn

loss = "mse"
metric = "mae"


def make_regressor():
    return nn.Linear(4, 1)
"""

LINE = """
import torch


def load_line():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=generator)
    y = x @ torch.tensor([[1.0], [-1.0], [0.5], [1.5]])
    return x[:160], y[:160], x[160:], y[160:]
"""


@pytest.mark.slow
def test_a_regression_model_file_is_advised_from_the_command_line(tmp_path, capsys):
    (tmp_path / "reg.py").write_text(textwrap.dedent(REGRESSOR))
    (tmp_path / "line.py").write_text(textwrap.dedent(LINE))
    files = ["--model-file", f"{tmp_path / 'reg.py'}:make_regressor",
             "--data-file", f"{tmp_path / 'line.py'}:load_line"]
    common = [*files, "--batch-size", "8", "32", "--seeds", "1", "--lr-points", "2", "--min-updates", "60",
              "--budget-epochs", "1", "--device", "cpu", "--store", str(tmp_path / "runs.db"),
              "--out", str(tmp_path / "out")]
    assert main(["advise", *common]) == 2  # no default target for a metric that is not accuracy
    assert "--target val_loss=" in capsys.readouterr().err
    assert main(["advise", *common, "--target", "val_loss=0.5", "--format", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["plan"]["target"]["key"] == "val_loss<=0.5"
    assert any(row["reached"] for row in record["rows"])
    args = build_parser().parse_args(shlex.split(record["recommendation"]["command"])[1:])
    assert args.model_file == files[1] and args.data_file == files[3]
