"""The Ray executor on a real local Ray instance (2 CPUs): same runs as the local executor, and a
task whose worker process is killed is retried without any run being stored twice."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest

from batchlab.config import run_id
from batchlab.store import RunStore
from batchlab.sweep import SweepSpec, run_sweep
from batchlab.sweep.ray_executor import MAX_RETRIES, RayCluster
from batchlab.training.result import FINISHED

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.distributed, pytest.mark.slow]  # Ray and training: seconds per test

FIXED = {"dataset": "mnist-5k", "hidden": [16], "epochs": 2, "lr": 0.1, "device": "cpu"}
TASK_TITLE = b"ray::train_unit"


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module; run_sweep uses it as found and leaves it running."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


def test_ray_sweep_stores_the_same_runs_as_the_local_executor(ray_instance, tmp_path):
    spec = SweepSpec(grid={"batch_size": [64, 128], "momentum": [0.0, 0.9]}, fixed=FIXED)
    on_ray = RunStore(tmp_path / "ray.db")
    results = run_sweep(spec, on_ray, executor="ray", progress=False)
    assert ray.is_initialized()  # an instance found running is not shut down
    local = RunStore(tmp_path / "local.db")
    reference = run_sweep(spec, local, progress=False, packing="sequential")

    expected = [run_id(config, "cpu") for config in spec.configs()]
    assert [r.run_id for r in results] == [r.run_id for r in reference] == expected
    assert results.failed == [] and results.skipped == 0
    for identity in expected:
        stored, alone = on_ray.get(identity), local.get(identity)
        assert stored.status == alone.status == FINISHED
        assert stored.config == alone.config
        assert stored.summary["test_acc"] == pytest.approx(alone.summary["test_acc"], abs=2e-3)
        assert on_ray.has_weights(identity)
        ray_rows, local_rows = on_ray.metrics(identity), local.metrics(identity)
        assert [row["epoch"] for row in ray_rows] == [row["epoch"] for row in local_rows] == [1, 2]
        for ray_row, local_row in zip(ray_rows, local_rows):
            for key in ("train_loss", "val_loss"):
                assert ray_row[key] == pytest.approx(local_row[key], rel=1e-4)
            for key in ("train_acc", "val_acc"):
                assert ray_row[key] == pytest.approx(local_row[key], abs=2e-3)
        weights_ray, weights_local = on_ray.load_weights(identity), local.load_weights(identity)
        for name, tensor in weights_local.items():
            assert weights_ray[name].allclose(tensor, rtol=1e-3, atol=1e-5)

    again = run_sweep(spec, on_ray, executor="ray", progress=False)
    assert again.skipped == 4 and all(r.from_store for r in again)


def _task_processes() -> list[int]:
    """PIDs of Ray workers executing train_unit now (Ray titles a busy worker ``ray::<task>``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                title = handle.read()
        except OSError:
            continue
        if title.startswith(TASK_TITLE):
            found.append(int(entry))
    return found


def _kill_first_task(killed: list[int], stop: threading.Event) -> None:
    """Wait until a worker has been training a unit for a moment, then SIGKILL it."""
    while not stop.is_set():
        busy = _task_processes()
        if busy:
            time.sleep(0.1)  # into the training, not just the start of the task
            if busy[0] in _task_processes():
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
                return
        time.sleep(0.01)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds Ray's worker processes through /proc")
def test_a_killed_worker_is_retried_and_every_run_is_stored_once(ray_instance, tmp_path):
    assert MAX_RETRIES >= 1
    # B = 1 and 2: 10,800 and 5,400 updates per run (3,600 training examples), so a task lasts long enough to be caught
    # (0.4-1.4 s on 2-core CPUs; at B = 8 and 16 a warm worker finished in 0.06-0.1 s on a fast one;
    # η = 0.01, as η = 0.1 does not train at B = 1).
    spec = SweepSpec(grid={"batch_size": [1, 2], "seed": [0]}, fixed=FIXED | {"epochs": 3, "lr": 0.01})
    store = RunStore(tmp_path / "runs.db")
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_task, args=(killed, stop), daemon=True)
    killer.start()
    try:
        results = run_sweep(spec, store, executor="ray", progress=False)
    finally:
        stop.set()
        killer.join(timeout=5)
    assert killed, "no Ray worker was caught training"
    expected = {run_id(config, "cpu") for config in spec.configs()}
    assert results.failed == []
    assert {r.run_id for r in results} == expected
    rows = store.runs()
    assert len(rows) == len(expected) and {r.run_id for r in rows} == expected
    assert all(r.status == FINISHED for r in rows)
    for identity in expected:
        assert [row["epoch"] for row in store.metrics(identity)] == [1, 2, 3]


def test_cluster_gives_auto_the_device_type_of_the_cluster(ray_instance):
    cluster = RayCluster()
    with cluster:
        assert not cluster.started  # the module's instance was already running
        assert cluster.has_gpus is False
        config = SweepSpec(fixed=FIXED | {"device": "auto"}).configs()[0]
        assert cluster.device_type(config) == "cpu"
    cluster.has_gpus = True
    assert cluster.device_type(config) == "cuda"
    assert cluster.device_type(config.replace(device="cpu")) == "cpu"


def test_a_run_that_fails_on_a_worker_is_reported_and_the_rest_are_stored(ray_instance, tmp_path, capsys):
    from batchlab.cli import main

    # mnist-5k ships inside batchlab; full MNIST is not in the empty data folder, which only a
    # worker finds out (on a cluster the data lives on the workers, not on the driver).
    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text(
        f'[fixed]\nhidden = [16]\nepochs = 1\nbatch_size = 256\ndevice = "cpu"\ndata_dir = "{tmp_path / "no-data"}"\n'
        '[grid]\ndataset = ["mnist-5k", "mnist"]\n',
        encoding="utf-8",
    )
    store = tmp_path / "runs.db"
    code = main(["sweep", "--config", str(sweep_file), "--executor", "ray", "--store", str(store), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert "2 run(s): 1 trained, skipped (already in store): 0, failed: 1" in captured.out
    assert "failed on Ray: DataError: dataset 'mnist' is not in" in captured.err
    assert "1 run(s) failed; run the same command again to retry them" in captured.err
    stored = RunStore(store).runs()
    assert [(r.config["dataset"], r.status) for r in stored] == [("mnist-5k", FINISHED)]


def test_a_user_model_from_files_sweeps_on_ray_like_on_the_local_executor(ray_instance, tmp_path, capsys,
                                                                         user_model_flags):
    from batchlab.cli import main

    common = ["sweep", *user_model_flags, "--batch-size", "8", "16", "--momentum", "0.9", "--epochs", "2",
              "--device", "cpu", "--no-progress"]
    assert main([*common, "--executor", "ray", "--store", str(tmp_path / "ray.db")]) == 0
    assert "2 run(s): 2 trained" in capsys.readouterr().out
    assert main([*common, "--packing", "sequential", "--store", str(tmp_path / "local.db")]) == 0
    capsys.readouterr()
    with RunStore(tmp_path / "ray.db") as on_ray, RunStore(tmp_path / "local.db") as local:
        ray_runs = {r.run_id: r for r in on_ray.runs()}
        local_runs = {r.run_id: r for r in local.runs()}
        assert set(ray_runs) == set(local_runs) and len(ray_runs) == 2  # same ids: same model, data, config
        for identity, run in ray_runs.items():
            assert run.status == FINISHED and run.config["model"] == "user:net.make_model"
            assert run.summary["test_acc"] == pytest.approx(local_runs[identity].summary["test_acc"], abs=1e-6)
            assert on_ray.has_weights(identity)
    # A second call finds every run in the store and trains nothing on Ray.
    assert main([*common, "--executor", "ray", "--store", str(tmp_path / "ray.db")]) == 0
    assert "skipped (already in store): 2" in capsys.readouterr().out


def test_runs_that_start_from_another_run_get_its_weights_on_the_workers(ray_instance, tmp_path):
    from batchlab.config import RunConfig
    from batchlab.training import train

    source_config = RunConfig(**{**FIXED, "hidden": (16,)}, batch_size=64)
    source = train(source_config, store=tmp_path / "ray.db", progress=False)
    assert train(source_config, store=tmp_path / "local.db", progress=False).run_id == source.run_id
    spec = SweepSpec(grid={"batch_size": [32, 128]}, fixed={**FIXED, "epochs": 1, "init_from": source.run_id})
    with RunStore(tmp_path / "ray.db") as on_ray, RunStore(tmp_path / "local.db") as local:
        results = run_sweep(spec, on_ray, executor="ray", progress=False)
        reference = run_sweep(spec, local, progress=False, packing="sequential")
        assert results.failed == [] and [r.run_id for r in results] == [r.run_id for r in reference]
        for result, alone in zip(results, reference):
            assert result.status == FINISHED
            # Started from the source's weights: after one epoch already far above a fresh start.
            assert result.summary["train_acc"] == pytest.approx(alone.summary["train_acc"], abs=2e-3)
            assert result.summary["train_acc"] > 0.8
        assert len(on_ray.runs()) == 3  # the source once, and the two runs; nothing else came back


def test_a_sweep_on_ray_keeps_the_final_states_that_continue_from_goes_on_from(ray_instance, tmp_path, capsys):
    from batchlab.training import train

    spec = SweepSpec(grid={"seed": [0, 1]}, fixed={**FIXED, "batch_size": 64, "momentum": 0.9, "epochs": 1})
    with RunStore(tmp_path / "ray.db") as store:
        results = run_sweep(spec, store, executor="ray", progress=False, keep_state=True)
        assert results.failed == [] and all(store.has_final_state(r.run_id) for r in results)
        source = results.runs[0]
        assert store.load_final_state(source.run_id)["optimizer"]["state"]  # the momentum buffer came back
        capsys.readouterr()
        continued = train(source.config.replace(epochs=2, continue_from=source.run_id), store=store, progress=False)
        assert f"continuing run {source.run_id} from epoch 2" in capsys.readouterr().err
        whole = train(source.config.replace(epochs=2), store=store, progress=False)
        weights, reference = store.load_weights(continued.run_id), store.load_weights(whole.run_id)
        for name, tensor in reference.items():  # a worker process's arithmetic, so not to the bit
            assert weights[name].allclose(tensor, rtol=1e-3, atol=1e-5)
