"""``batchlab runs --format tensorboard --out DIR``: what is written reads back through
TensorBoard's own event reader with the right per-epoch scalars and hyperparameters."""

import math

import pytest

from batchlab.cli import main
from batchlab.store import EXPORTERS, RunStore
from batchlab.store.export import FOLDER, TEXT

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")
pytest.importorskip("torch.utils.tensorboard")


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        for run_id, batch_size, momentum, status, summary in [
            ("aaaa000011112222", 64, 0.9, "finished", {"batch_size": 64, "val_acc": 0.9, "test_acc": 0.88}),
            ("bbbb000011112222", "full", 0.0, "diverged", {"batch_size": 4000, "diverged_epoch": 2}),
        ]:
            config = {"dataset": "mnist-5k", "model": "mlp", "optimizer": "momentum", "batch_size": batch_size,
                      "lr": 0.1, "momentum": momentum, "seed": 3, "hidden": [32], "data_dir": "/somewhere",
                      "max_updates": None}
            store.start_run(run_id, config, {})
            for epoch in (1, 2):
                store.log_epoch(run_id, epoch, {"train_loss": 1.0 / epoch, "train_acc": 0.4 * epoch, "val_loss": 1.5 / epoch,
                                                "val_acc": 0.3 * epoch, "updates": 10 * epoch, "epoch_time_s": 0.5 + epoch})
            store.finish_run(run_id, status, summary)
    return path


def read_back(folder):
    accumulator = event_accumulator.EventAccumulator(str(folder))
    accumulator.Reload()
    scalars = {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
               for tag in accumulator.Tags()["scalars"]}
    hparams = {}
    for content in accumulator.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            for key, value in data.session_start_info.hparams.items():
                hparams[key] = getattr(value, value.WhichOneof("kind"))
    return scalars, hparams


def test_tensorboard_export_reads_back_with_scalars_and_hparams(store_path, tmp_path, capsys):
    out = tmp_path / "tb"
    assert main(["runs", "--store", str(store_path), "--format", "tensorboard", "--out", str(out)]) == 0
    assert f"2 run(s) written to {out} (tensorboard)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["aaaa000011112222", "bbbb000011112222"]

    scalars, hparams = read_back(out / "aaaa000011112222")
    assert scalars["loss/train"] == [(1, 1.0), (2, 0.5)]
    assert [(s, pytest.approx(v)) for s, v in scalars["accuracy/val"]] == [(1, 0.3), (2, 0.6)]
    assert scalars["progress/updates"] == [(1, 10.0), (2, 20.0)]
    assert scalars["time/epoch_s"] == [(1, 1.5), (2, 2.5)]
    assert {"loss/val", "accuracy/train"} <= set(scalars)
    # The same values against the update count (the global step), in a section of their own.
    assert scalars["by_update/loss/train"] == [(10, 1.0), (20, 0.5)]
    assert [(s, pytest.approx(v)) for s, v in scalars["by_update/accuracy/val"]] == [(10, 0.3), (20, 0.6)]
    assert "by_update/progress/updates" not in scalars
    assert scalars["final/test_acc"][0][1] == pytest.approx(0.88)
    assert hparams["batch_size"] == 64 and hparams["momentum"] == pytest.approx(0.9) and hparams["lr"] == pytest.approx(0.1)
    assert hparams["hidden"] == "32" and hparams["arch"] == "784-32-10" and hparams["status"] == "finished"
    assert hparams["effective_step"] == pytest.approx(1.0) and hparams["seed"] == 3
    assert "data_dir" not in hparams and "max_updates" not in hparams

    scalars, hparams = read_back(out / "bbbb000011112222")
    assert hparams["batch_size"] == 4000 and hparams["status"] == "diverged"  # 'full' as its size
    assert math.isnan(scalars["final/test_acc"][0][1])  # same metric names in every run


def test_exporting_again_replaces_a_run_folder_and_filters_apply(store_path, tmp_path, capsys):
    out = tmp_path / "tb"
    argv = ["runs", "--store", str(store_path), "--format", "tensorboard", "--out", str(out)]
    assert main(argv) == 0 and main([*argv, "--where", "status=finished"]) == 0
    scalars, _ = read_back(out / "aaaa000011112222")
    assert scalars["loss/train"] == [(1, 1.0), (2, 0.5)]  # once, not twice


def test_folder_and_file_formats_need_their_own_destination(store_path, tmp_path, capsys):
    assert main(["runs", "--store", str(store_path), "--format", "tensorboard"]) == 2
    err = capsys.readouterr().err
    assert "--format tensorboard writes a folder; allowed: --format tensorboard --out DIR" in err
    assert "-o FILE" not in err and "(not" not in err  # names only the flags given
    assert main(["runs", "--store", str(store_path), "--format", "tensorboard", "-o", str(tmp_path / "y")]) == 2
    assert "writes a folder, not the file -o" in capsys.readouterr().err
    assert main(["runs", "--store", str(store_path), "--format", "csv", "--out", str(tmp_path / "x")]) == 2
    assert "--format csv writes one file; allowed: -o FILE" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_the_registry_lists_every_format_the_command_offers():
    from batchlab.commands.runs import FIGURE_FORMATS  # noqa: F401 - the command module imports cleanly

    assert {name: e.writes for name, e in EXPORTERS.items()} == {
        "table": TEXT, "csv": TEXT, "json": TEXT, "tensorboard": FOLDER}


def test_the_update_count_comes_from_epoch_updates_when_a_row_lacks_it_and_user_metrics_get_tags():
    from batchlab.store.tensorboard import scalar_tag, update_counts

    assert update_counts([{"epoch_updates": 3}, {"epoch_updates": 3}, {"epoch_updates": 2}]) == [3, 6, 8]
    assert update_counts([{"updates": 5, "epoch_updates": 5}, {"updates": 9}]) == [5, 9]
    assert update_counts([{"train_loss": 1.0}]) == [None]
    assert scalar_tag("val_mse") == "mse/val" and scalar_tag("train_acc") == "accuracy/train"
    assert scalar_tag("lr") == "other/lr"


@pytest.fixture
def mixed_store(tmp_path):
    """A store with a classification run and a regression run (its metric the mean absolute
    error), both trained from model and data files; the regression run's id and the other's."""
    from conftest import REGRESSION_MODEL_FILE, USER_DATA_FILE, write_user_files

    store = tmp_path / "runs.db"
    regression_data = USER_DATA_FILE.replace("y = torch.randint(0, 3, (96,), generator=generator)",
                                             "y = torch.randn(96, 1, generator=generator)").replace("x = centres[y] + ",
                                                                                                     "x = ")
    for name, model, data in [("classification", None, None),
                              ("regression", REGRESSION_MODEL_FILE + 'metric = "mae"\n', regression_data)]:
        folder = tmp_path / name
        folder.mkdir()
        files = write_user_files(folder) if model is None else write_user_files(folder, model, data)
        assert main(["train", *files, "--batch-size", "8", "--epochs", "2", "--lr", "0.05", "--device", "cpu",
                     "--store", str(store), "--no-progress"]) == 0
    with RunStore(store) as opened:
        runs = opened.runs()
        ids = {("regression" if "train_mae" in run.summary else "classification"): run.run_id for run in runs}
    return store, ids


def test_a_regression_run_exports_its_own_metric_and_no_accuracy(mixed_store, tmp_path, capsys):
    store, ids = mixed_store
    out = tmp_path / "tb"
    assert main(["runs", "--store", str(store), "--format", "tensorboard", "--out", str(out)]) == 0
    with RunStore(store) as opened:
        summaries = {kind: opened.get(run_id).summary for kind, run_id in ids.items()}
        regression_rows = opened.metrics(ids["regression"])

    scalars, _ = read_back(out / ids["regression"])
    for split in ("train", "val"):
        assert [(s, pytest.approx(v)) for s, v in scalars[f"mae/{split}"]] == [
            (row["epoch"], row[f"{split}_mae"]) for row in regression_rows]
        assert [s for s, _ in scalars[f"by_update/mae/{split}"]] == [row["updates"] for row in regression_rows]
    # The test split, measured once with the final weights, at the last epoch and the last update.
    assert scalars["mae/test"] == [(2, pytest.approx(summaries["regression"]["test_mae"]))]
    assert scalars["by_update/mae/test"][0][0] == regression_rows[-1]["updates"]
    assert scalars["final/test_mae"][0][1] == pytest.approx(summaries["regression"]["test_mae"])
    assert {"final/train_mae", "final/val_mae", "final/test_loss", "loss/test"} <= set(scalars)
    assert not [tag for tag in scalars if "acc" in tag]  # no empty accuracy tags for a regression run

    scalars, _ = read_back(out / ids["classification"])
    assert scalars["final/test_acc"][0][1] == pytest.approx(summaries["classification"]["test_acc"])
    assert "accuracy/test" in scalars and "by_update/accuracy/val" in scalars
    assert not [tag for tag in scalars if "mae" in tag]

    # Both runs' HParams summaries list every final metric (the view takes the first it finds).
    for run_id in ids.values():
        assert {"final/test_acc", "final/test_mae", "final/val_mae", "final/time_per_update_s"} <= set(
            listed_metrics(out / run_id))


def listed_metrics(folder) -> list[str]:
    """The metric names the run's HParams experiment summary lists."""
    accumulator = event_accumulator.EventAccumulator(str(folder))
    accumulator.Reload()
    for content in accumulator.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("experiment"):
            return [info.name.tag for info in data.experiment.metric_infos]
    return []
