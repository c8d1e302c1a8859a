"""The README's classification CNN and regression MLP (the MLP imports a module beside it and
names its loss and metric), given as files, through every command that trains or measures:
``train`` (one process and ``--nproc 2``), ``sweep`` (local and Ray), ``timing``, then
``hessian RUN``, ``sharpness RUN`` and ``landscape A B`` on the stored runs — with the same
metric keys everywhere (``*_acc`` for the CNN, ``*_mae`` for the MLP)."""

from __future__ import annotations

import json

import pytest
from conftest import write_readme_files

from batchlab.cli import main
from batchlab.store import RunStore

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

# model flags, the metric key its runs report, and a learning rate that trains it in 2 epochs
MODELS = {
    "cnn": (["--model-file", "cnn.py:make_cnn", "--data-file", "images.py:load_images"], "acc", "0.05"),
    "mlp": (["--model-file", "mlp.py:make_mlp", "--data-file", "curve.py:load_curve"], "mae", "0.05"),
}
COMMON = ["--epochs", "2", "--device", "cpu", "--no-progress", "--store", "runs.db"]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_readme_files(tmp_path)
    return tmp_path


def runs_of(model_file: str, store_path: str = "runs.db") -> list:
    name = "user:" + model_file.split(":")[0].removesuffix(".py") + "." + model_file.split(":")[1]
    with RunStore(store_path) as store:
        return [run for run in store.runs() if run.config["model"] == name]


def metric_keys(run) -> set[str]:
    return {key for key in run.summary if key.split("_", 1)[0] in ("train", "val", "test")
            and not key.endswith(("_loss", "_s"))}


def measure(run_a, run_b, metric: str, capsys) -> None:
    """hessian and sharpness of ``run_a``, the landscape from ``run_a`` to ``run_b``: each rebuilt
    from the files the runs kept, at the loss the runs report."""
    loss = run_a.summary["train_loss"]
    assert main(["hessian", run_a.run_id, "--store", "runs.db", "--format", "json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == pytest.approx(loss, rel=1e-4)
    assert main(["sharpness", run_a.run_id, "--store", "runs.db", "--epsilon", "1e-3", "--full-space-only",
                 "--trace-samples", "2", "--format", "json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["loss"] == pytest.approx(loss, rel=1e-4)
    assert main(["landscape", run_a.run_id, run_b.run_id, "--store", "runs.db", "--alphas", "0", "1", "2",
                 "--out", "landscape", "--format", "json", "--no-progress"]) == 0
    line = json.loads(capsys.readouterr().out)["line"]
    assert line["metric"] == metric
    assert line["points"][0]["test_acc"] == pytest.approx(run_a.summary[f"test_{metric}"], rel=1e-4)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_train_sweep_timing_and_the_measurements_of_your_model(folder, model, capsys):
    flags, metric, lr = MODELS[model]
    assert main(["train", *flags, "--batch-size", "8", "--lr", lr, *COMMON]) == 0
    assert main(["sweep", *flags, "--batch-size", "8", "24", "--lr", lr, *COMMON]) == 0
    out = capsys.readouterr().out
    assert f"train {metric}" in out and "1 trained, skipped (already in store): 1" in out  # B = 8 trained once
    assert main(["timing", *flags, "--batch-size", "8", "24", "--repeats", "5", "--warmup", "1",
                 "--store", "runs.db", "--out", "timing", "--format", "json", "--no-progress"]) == 0
    capsys.readouterr()
    runs = {run.config["batch_size"]: run for run in runs_of(flags[1])}
    assert sorted(runs) == [8, 24]
    expected = {f"{part}_{metric}" for part in ("train", "val", "test")}
    assert all(metric_keys(run) == expected for run in runs.values()), [metric_keys(r) for r in runs.values()]
    measure(runs[8], runs[24], metric, capsys)


@pytest.mark.distributed
@pytest.mark.parametrize("model", sorted(MODELS))
def test_nproc_runs_of_your_model_report_the_same_metrics_and_are_measured(folder, model, capsys):
    flags, metric, lr = MODELS[model]
    assert main(["train", *flags, "--batch-size", "8", "--lr", lr, "--nproc", "2", *COMMON]) == 0
    # one process in a store of its own: it has the same run id
    assert main(["train", *flags, "--batch-size", "8", "--lr", lr, *COMMON[:-1], "single.db"]) == 0
    capsys.readouterr()
    (spread,) = runs_of(flags[1])
    (single,) = runs_of(flags[1], "single.db")
    assert spread.environment["data_parallel"]["processes"] == 2 and spread.run_id == single.run_id
    assert metric_keys(spread) == metric_keys(single) == {f"{p}_{metric}" for p in ("train", "val", "test")}
    assert spread.summary[f"test_{metric}"] == pytest.approx(single.summary[f"test_{metric}"], abs=1e-4)
    measure(spread, spread, metric, capsys)


@pytest.mark.distributed
@pytest.mark.parametrize("model", sorted(MODELS))
def test_ray_runs_of_your_model_report_the_same_metrics_and_are_measured(folder, model, capsys):
    pytest.importorskip("ray")
    flags, metric, lr = MODELS[model]
    sweep = ["sweep", *flags, "--batch-size", "8", "24", "--lr", lr, *COMMON]
    assert main([*sweep, "--executor", "ray", "--ray-cpus", "2"]) == 0
    assert "2 run(s): 2 trained" in capsys.readouterr().out
    runs = {run.config["batch_size"]: run for run in runs_of(flags[1])}
    assert all(metric_keys(run) == {f"{p}_{metric}" for p in ("train", "val", "test")} for run in runs.values())
    assert all(run.environment["origin"]["model_file"].endswith(flags[1]) for run in runs.values())
    measure(runs[8], runs[24], metric, capsys)
