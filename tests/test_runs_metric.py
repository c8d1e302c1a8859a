"""``batchlab runs`` and ``runs compare`` show the metric a run recorded: a regression run's own
(``mse``), never empty accuracy columns; a listing of classification runs stays as it was."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import batchlab
from batchlab.cli import main
from batchlab.config import RunConfig
from batchlab.store import RunStore


def regression_task() -> batchlab.Task:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(48, 4, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])
    return batchlab.Task(lambda: nn.Linear(4, 1), (x[:24], y[:24], x[24:36], y[24:36], x[36:], y[36:]),
                         name="line", loss="mse")


def classification_task() -> batchlab.Task:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(48, 4, generator=generator)
    y = (x[:, 0] > 0).long()
    return batchlab.Task(lambda: nn.Linear(4, 2), (x[:24], y[:24], x[24:36], y[24:36], x[36:], y[36:]),
                         name="split")


@pytest.fixture
def stores(tmp_path):
    """A store with a regression run and a classification run, and one with the classification
    run alone; the regression run's id."""
    both, alone = tmp_path / "both.db", tmp_path / "alone.db"
    config = RunConfig(batch_size=8, lr=0.05, epochs=2, device="cpu")
    regression = batchlab.train(config, task=regression_task(), store=both, progress=False)
    for path in (both, alone):
        batchlab.train(config, task=classification_task(), store=path, progress=False)
    return both, alone, regression


def listing(capsys, store, *extra) -> str:
    capsys.readouterr()
    assert main(["runs", "--store", str(store), *extra]) == 0
    return capsys.readouterr().out


def test_the_table_shows_each_runs_own_metric_in_place_of_accuracy(stores, capsys):
    both, _, regression = stores
    lines = listing(capsys, both).splitlines()
    assert lines[0].split()[-5:] == ["metric", "train", "val", "test", "time/update"]
    assert "train acc" not in lines[0]
    row = next(line for line in lines if line.startswith(regression.run_id))
    summary = regression.summary
    assert " mse " in row and f"{summary['test_mse']:.4g}" in row and f"{summary['train_mse']:.4g}" in row
    other = next(line for line in lines[1:] if not line.startswith(regression.run_id))
    assert " acc " in other


def test_a_listing_of_classification_runs_keeps_its_accuracy_columns(stores, capsys):
    _, alone, _ = stores
    header = listing(capsys, alone).splitlines()[0]
    assert "train acc" in header and "val acc" in header and "test acc" in header and "metric" not in header


def test_json_gives_the_metric_and_its_values_for_a_regression_run_and_leaves_classification_rows_alone(stores,
                                                                                                      capsys):
    both, _, regression = stores
    rows = {row["run_id"]: row for row in json.loads(listing(capsys, both, "--format", "json"))}
    row = rows.pop(regression.run_id)
    assert row["metric"] == "mse" and "train_acc" not in row and "test_acc" not in row
    assert row["test_mse"] == pytest.approx(regression.summary["test_mse"])
    assert list(row).index("train_mse") < list(row).index("updates")  # where the accuracies stand for others
    assert not any(key.startswith("summary_") and key.endswith("_mse") for key in row)  # each value once
    (other,) = rows.values()
    assert "metric" not in other and other["train_acc"] is not None


def test_compare_shows_the_regression_metric_in_the_summary_and_the_curves(stores, capsys):
    both, _, regression = stores
    with RunStore(both) as store:
        other = next(r.run_id for r in store.runs() if r.run_id != regression.run_id)
    capsys.readouterr()
    assert main(["runs", "compare", regression.run_id, other, "--store", str(both)]) == 0
    out = capsys.readouterr().out
    assert any("test_mse" in line.split() for line in out.splitlines())
    curves = out.split("per-epoch metrics")[1].splitlines()[1]
    assert curves.split() == ["epoch", "train", "loss", "1", "train", "loss", "2", "val", "mse", "1", "val", "acc",
                              "2"]
