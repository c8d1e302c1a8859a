"""run_sweep and `batchlab sweep`: same ids as single runs, skip and resume, dry run, results."""

from __future__ import annotations

import json
import math
import sys

import pytest

import batchlab
from batchlab.cli import main
from batchlab.config import RunConfig, run_id
from batchlab.errors import ConfigError, UserError
from batchlab.store import RunStore
from batchlab.sweep import Results, SweepSpec, plan_only, run_sweep
from batchlab.sweep.summary import summary_table
from batchlab.training.result import DIVERGED, FINISHED, RunResult

FIXED = {"dataset": "mnist-5k", "hidden": [16], "epochs": 2, "lr": 0.1, "device": "cpu"}
SPEC = SweepSpec(grid={"batch_size": [256], "momentum": [0.0, 0.9], "seed": [0, 1]}, fixed=FIXED)
FLAGS = ["--hidden", "16", "--epochs", "2", "--lr", "0.1", "--device", "cpu", "--no-progress"]


@pytest.mark.slow
def test_sweep_stores_every_run_under_the_id_of_a_single_train(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    results = run_sweep(SPEC, store, progress=False)
    configs = SPEC.configs()
    assert [r.run_id for r in results] == [run_id(c, "cpu") for c in configs]
    assert [r.config for r in results] == configs
    assert results.skipped == 0 and results.failed == []
    assert all(r.status == FINISHED and not r.from_store for r in results)
    assert {r.run_id for r in store.runs(status=FINISHED)} == {r.run_id for r in results}
    assert all(store.has_weights(r.run_id) for r in results)

    # The same config trained alone gives the same id and the same numbers.
    single = batchlab.train(configs[3], store=tmp_path / "single.db", progress=False)
    assert single.run_id == results[3].run_id
    swept = store.metrics(single.run_id)
    assert [row["epoch"] for row in swept] == [1, 2]
    for alone, row in zip(single.epochs, swept):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert row[key] == pytest.approx(alone[key], rel=1e-4, abs=1e-6)


@pytest.mark.slow
def test_second_sweep_skips_what_is_stored_and_trains_only_new_points(tmp_path, capsys):
    store = RunStore(tmp_path / "runs.db")
    first = run_sweep(SPEC, store, progress=False)
    assert "[4/4] run " in capsys.readouterr().err
    finished_at = {r.run_id: store.get(r.run_id).finished for r in first}

    again = run_sweep(SPEC, store, progress=False)
    assert "run " not in capsys.readouterr().err  # nothing trained, nothing reported
    assert again.skipped == 4
    assert all(r.from_store for r in again)
    assert [r.run_id for r in again] == [r.run_id for r in first]
    assert {r.run_id: store.get(r.run_id).finished for r in again} == finished_at

    wider = SweepSpec(grid={"batch_size": [256], "momentum": [0.0, 0.9], "seed": [0, 1, 2]}, fixed=FIXED)
    grown = run_sweep(wider, store, progress=False)
    assert len(grown) == 6 and grown.skipped == 4
    assert sorted(r.config.seed for r in grown if not r.from_store) == [2, 2]
    assert len(store.runs()) == 6
    assert {rid: store.get(rid).finished for rid in finished_at} == finished_at
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[")]
    assert lines[0].startswith("[5/6] run ") and lines[1].startswith("[6/6] run ")
    assert "B=256 lr=0.1 λ=0 seed=2 finished val_acc=" in lines[0]


@pytest.mark.slow
def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    spec = SweepSpec(grid={"batch_size": [256], "seed": [0, 1]}, fixed=FIXED | {"epochs": 3})
    store = RunStore(tmp_path / "runs.db")
    real_finish = RunStore.finish_run
    calls = []

    def finish_then_die(self, identity, status, summary):
        calls.append(identity)
        if len(calls) == 2:  # the second run is interrupted right before it is closed
            raise KeyboardInterrupt
        real_finish(self, identity, status, summary)

    monkeypatch.setattr(RunStore, "finish_run", finish_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, store, progress=False, packing="sequential")
    monkeypatch.setattr(RunStore, "finish_run", real_finish)

    interrupted = calls[1]
    # Stopped while it was being closed: marked interrupted like a run stopped during an epoch.
    assert store.get(interrupted).status == "interrupted"
    assert store.load_checkpoint(interrupted)["epoch"] == 2
    wall_times = _wall_times(store, interrupted)

    plan = plan_only(spec, store)
    assert plan.finished == {calls[0]} and plan.resuming == {interrupted} and plan.to_train == 1
    results = run_sweep(spec, store, progress=False, packing="sequential")
    assert results.skipped == 1
    resumed = _wall_times(store, interrupted)
    assert {e: t for e, t in resumed.items() if e <= 2} == {e: t for e, t in wall_times.items() if e <= 2}
    assert resumed[3] > wall_times[3]
    assert store.get(interrupted).status == FINISHED
    assert store.load_checkpoint(interrupted) is None
    assert [row["epoch"] for row in results[1].epochs] == [1, 2, 3]


def _wall_times(store: RunStore, identity: str) -> dict[int, float]:
    rows = store._read("SELECT epoch, MIN(wall_time) AS t FROM metrics WHERE run_id = ? GROUP BY epoch", (identity,))
    return {row["epoch"]: row["t"] for row in rows}


def test_dry_run_prints_the_plan_and_trains_nothing(tmp_path, capsys):
    store = tmp_path / "runs.db"
    assert main(["sweep", "--batch-size", "256", "--seed", "0", "1", "--store", str(store), "--dry-run", *FLAGS]) == 0
    out = capsys.readouterr().out
    assert "sweep: 2 run(s); skipped (already in store): 0; to train: 2 (0 resume from a checkpoint)" in out
    assert "2 runs of mlp B=256" in out
    assert "dry run: nothing trained" in out
    assert not store.exists()

    assert main(["sweep", "--batch-size", "256", "--seed", "0", "--store", str(store), *FLAGS]) == 0
    capsys.readouterr()
    assert main(["sweep", "--batch-size", "256", "512", "--seed", "0", "1", "--store", str(store),
                 "--dry-run", "--packing", "sequential", *FLAGS]) == 0
    out = capsys.readouterr().out
    assert "sweep: 4 run(s); skipped (already in store): 1; to train: 3" in out
    assert "sequential   1 run(s)  1 run of mlp B=256" in out
    assert "sequential   2 run(s)  2 runs of mlp B=512: trained one at a time, as asked" in out
    assert len(RunStore(store).runs()) == 1


def test_cli_sweep_prints_progress_summary_and_exports(tmp_path, capsys):
    store = tmp_path / "runs.db"
    export = tmp_path / "out" / "sweep.csv"
    argv = ["sweep", "--batch-size", "256", "--momentum", "0", "0.9", "--store", str(store),
            "-o", str(export), *FLAGS]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "skipped (already in store): 0" in captured.out
    assert f"2 run(s): 2 trained, skipped (already in store): 0, failed: 0; store {store}" in captured.out
    assert "[1/2] run " in captured.err and "[2/2] run " in captured.err
    table = [line.split() for line in captured.out.splitlines() if line.strip().startswith(("B ", "256 "))]
    assert table[0][:5] == ["B", "λ", "runs", "train", "acc"]
    assert [row[:3] for row in table[1:]] == [["256", "0", "1"], ["256", "0.9", "1"]]

    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(export)
    assert list(frame["momentum"]) == [0.0, 0.9]
    assert set(frame["status"]) == {FINISHED}

    assert main(argv) == 0
    assert "2 run(s): 0 trained, skipped (already in store): 2" in capsys.readouterr().out


@pytest.mark.slow
def test_results_to_pandas_filter_and_files(tmp_path):
    pandas = pytest.importorskip("pandas")
    store = RunStore(tmp_path / "runs.db")
    results = run_sweep(SPEC, store, progress=False)
    frame = results.to_pandas()
    assert len(frame) == 4
    for column in ("run_id", "status", "batch_size", "lr", "momentum", "seed", "train_acc", "val_acc",
                   "test_acc", "hidden", "finished"):
        assert column in frame.columns
    assert list(frame["run_id"]) == [r.run_id for r in results]
    assert frame.loc[1, "val_acc"] == pytest.approx(results[1].summary["val_acc"])
    assert frame["finished"].notna().all()

    momentum = results.filter(momentum=0.9)
    assert [r.config.seed for r in momentum] == [0, 1] and all(r.config.momentum == 0.9 for r in momentum)
    assert len(results.filter(momentum=[0, 0.9], seed=1)) == 2
    assert len(results.filter(hidden=[16])) == 4 and len(results.filter(hidden=(32,))) == 0
    with pytest.raises(ConfigError, match="unknown filter field"):
        results.filter(batch=16)

    csv_path = results.filter(seed=0).to_csv(tmp_path / "r.csv")
    assert list(pandas.read_csv(csv_path)["seed"]) == [0, 0]
    json_path = results.to_json(tmp_path / "r.json")
    rows = json.loads(json_path.read_text())
    assert [row["run_id"] for row in rows] == list(frame["run_id"])

    # Without a store the rows come from the results themselves.
    loose = Results(results.runs)
    assert list(loose.to_pandas()["val_acc"]) == pytest.approx(list(frame["val_acc"]))
    assert set(loose.to_pandas()["device"]) == {"cpu"}


def test_summary_table_is_mean_and_sample_std_over_seeds():
    def result(batch_size, momentum, seed, train_acc, val_acc, status=FINISHED):
        config = RunConfig(batch_size=batch_size, momentum=momentum, seed=seed)
        return RunResult(f"{batch_size}-{momentum}-{seed}", config, status, [],
                         {"train_acc": train_acc, "val_acc": val_acc})

    runs = [
        result(16, 0.0, 0, 0.90, 0.80), result(16, 0.0, 1, 0.94, 0.84),
        result(16, 0.9, 0, 0.50, 0.40),
        result("full", 0.0, 0, math.nan, math.nan, DIVERGED), result("full", 0.0, 1, 0.70, 0.60),
    ]
    lines = summary_table(runs).splitlines()
    assert lines[0].split() == ["B", "λ", "runs", "train", "acc", "val", "acc", "diverged"]
    # mean 0.92, sample std of (0.90, 0.94) = 0.0283
    assert lines[1].split() == ["16", "0", "2", "0.9200", "±", "0.0283", "0.8200", "±", "0.0283", "0"]
    assert lines[2].split() == ["16", "0.9", "1", "0.5000", "0.4000", "0"]
    assert lines[3].split() == ["full", "0", "2", "0.7000", "0.6000", "1"]
    other_lr = RunResult("x", RunConfig(batch_size=16, lr=0.5), FINISHED, [], {"train_acc": 1.0, "val_acc": 1.0})
    lines = summary_table([*runs, other_lr]).splitlines()
    assert lines[0].split()[:3] == ["B", "λ", "lr"]
    assert lines[-1].split() == ["16", "0", "0.5", "1", "1.0000", "1.0000", "0"]


def test_ray_executor_without_ray_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if not installed
    code = main(["sweep", "--executor", "ray", "--store", str(tmp_path / "runs.db"), *FLAGS])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "batchlab: error: --executor ray needs the ray extra: pip install 'batchlab[ray]'"
    )
    with pytest.raises(UserError, match="needs the ray extra"):
        run_sweep(SPEC, None, executor="ray")


def test_unknown_executor_or_packing():
    with pytest.raises(ConfigError, match="unknown executor 'dask'; allowed: local, ray"):
        run_sweep(SPEC, None, executor="dask")
    with pytest.raises(ConfigError, match="unknown packing 'dense'"):
        run_sweep(SPEC, None, packing="dense")


@pytest.mark.slow
def test_progress_bar_counts_runs_with_skipped_ones_done_from_the_start(tmp_path, capsys):
    store = RunStore(tmp_path / "runs.db")
    one = SweepSpec(grid={"batch_size": [256], "seed": [0]}, fixed=FIXED)
    run_sweep(one, store, progress=False)
    capsys.readouterr()
    two = SweepSpec(grid={"batch_size": [256], "seed": [0, 1]}, fixed=FIXED)
    run_sweep(two, store, progress=True)
    err = capsys.readouterr().err
    assert "sweep:" in err and "1/2" in err and "2/2" in err
    assert "[2/2] run" not in err  # a bar, not plain lines


def test_ray_units_pack_on_gpu_clusters_and_split_runs_on_cpu_clusters():
    from batchlab.sweep.plan import ray_units

    spec = SweepSpec(grid={"optimizer": ["momentum", "adam"], "batch_size": [64, 128], "seed": [0, 1]},
                     fixed=FIXED | {"device": "auto"})
    configs = spec.configs()
    on_cpus = ray_units(configs, cluster_has_gpus=False)
    assert [unit.configs for unit in on_cpus] == [(config,) for config in configs]
    assert {unit.strategy for unit in on_cpus} == {"sequential"}

    on_gpus = ray_units(configs, cluster_has_gpus=True)
    adam = [unit for unit in on_gpus if unit.configs[0].optimizer == "adam"]
    packed = [unit for unit in on_gpus if unit.strategy == "packed"]
    assert len(adam) == 4 and all(len(unit.configs) == 1 and "no packed update rule" in unit.reason for unit in adam)
    assert [[(c.batch_size, c.seed) for c in unit.configs] for unit in packed] == [[(64, 0), (64, 1)], [(128, 0), (128, 1)]]
