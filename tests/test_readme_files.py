"""The README's model and data files (a classification CNN; a regression MLP that imports a
module beside it and names its loss and metric) with the README's commands, exactly as written:
they train, sweep and time, and the stored runs are measured afterwards (``hessian``,
``sharpness``, ``landscape``) with the loss and metric the model file names."""

from __future__ import annotations

import json

import pytest
from conftest import readme_file_commands, write_readme_files

from batchlab.cli import main
from batchlab.store import RunStore

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def readme_store(tmp_path, monkeypatch, capsys):
    """The README's files written to ``tmp_path`` and its commands run there; the store."""
    monkeypatch.chdir(tmp_path)
    assert write_readme_files(tmp_path) == ["cnn.py", "images.py", "blocks.py", "mlp.py", "curve.py"]
    commands = readme_file_commands()
    assert [command[0] for command in commands] == ["train", "train", "sweep", "timing"]
    for command in commands:
        assert main(command) == 0, command
    capsys.readouterr()
    return tmp_path / "runs.db"


def runs_by_model(store_path) -> dict[str, list]:
    with RunStore(store_path) as store:
        found: dict[str, list] = {}
        for run in store.runs():
            found.setdefault(run.config["model"], []).append(run)
    return found


def test_the_readme_commands_train_both_models_with_their_metrics(readme_store):
    runs = runs_by_model(readme_store)
    assert sorted(runs) == ["user:cnn.make_cnn", "user:mlp.make_mlp"]
    (cnn,) = runs["user:cnn.make_cnn"]
    assert cnn.status == "finished" and cnn.summary["test_acc"] > 0.5
    assert sorted(run.config["batch_size"] for run in runs["user:mlp.make_mlp"]) == [8, 16, 32]
    for run in runs["user:mlp.make_mlp"]:
        assert {"train_mae", "val_mae", "test_mae"} <= set(run.summary) and "val_acc" not in run.summary
        assert run.environment["user_model"]["loss"] == {"name": "mse"}
        assert run.environment["origin"]["model_file"] == f"{readme_store.parent.resolve()}/mlp.py:make_mlp"


def test_stored_runs_of_the_readme_files_are_measured_with_their_loss(readme_store, capsys):
    runs = runs_by_model(readme_store)
    (cnn,) = runs["user:cnn.make_cnn"]
    mlp = {run.config["batch_size"]: run for run in runs["user:mlp.make_mlp"]}
    store = ["--store", str(readme_store)]
    assert main(["hessian", cnn.run_id, *store, "--format", "json", "--no-progress"]) == 0
    hessian = json.loads(capsys.readouterr().out)
    assert hessian["loss_name"] == "cross_entropy"
    assert hessian["loss"] == pytest.approx(cnn.summary["train_loss"], rel=1e-4)
    assert main(["hessian", mlp[16].run_id, *store, "--format", "json", "--no-progress"]) == 0
    hessian = json.loads(capsys.readouterr().out)
    assert hessian["loss_name"] == "mse"  # the mean squared error the model file names
    assert hessian["loss"] == pytest.approx(mlp[16].summary["train_loss"], rel=1e-4)
    assert main(["sharpness", mlp[16].run_id, *store, "--epsilon", "1e-3", "--subspace-dim", "4",
                 "--trace-samples", "2", "--format", "json", "--no-progress"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and rows[0]["loss"] == pytest.approx(mlp[16].summary["train_loss"], rel=1e-4)
    assert main(["landscape", mlp[8].run_id, mlp[32].run_id, *store, "--alphas", "0", "1", "2",
                 "--out", "landscape", "--format", "json", "--no-progress"]) == 0
    line = json.loads(capsys.readouterr().out)["line"]
    assert (line["metric"], line["loss"]) == ("mae", "mse")
    at_a, at_b = line["points"][0], line["points"][-1]
    assert at_a["test_acc"] == pytest.approx(mlp[8].summary["test_mae"], rel=1e-4)  # the metric's column
    assert at_b["train_loss"] == pytest.approx(mlp[32].summary["train_loss"], rel=1e-4)
