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
