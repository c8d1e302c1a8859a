"""`batchlab lecture` end to end at a tiny scale: the report, its figures, summary.json, reuse of the
store on a second call, and bad input."""

import json
import re

import pytest

from batchlab import lecture
from batchlab.cli import main
from batchlab.store import RunStore

TINY = lecture.LectureScale(
    name="quick",
    studies=(lecture.AccuracyStudy(dataset="mnist-5k", model="mlp", hidden=(8,), batch_sizes=(256, "full"),
                                   momenta=(0.9,), lr=0.05, epochs=1, lr_grid=(0.05, 0.2), patience=1,
                                   patience_epochs=2),),
    seeds=1,
    timing_batch_sizes=(1, 8),
    timing_n_examples=64,
    timing_budget_s=0.01,
    timing_paths=("resident",),
    critical_lr=0.1,
    critical_momentum=0.9,
    critical_updates=3,
    noise_batches=2,
    toy_surfaces=("ball",),
)
SECTIONS = ("timing", "accuracy", "noise", "summary", "momentum")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny_scale(monkeypatch):
    monkeypatch.setitem(lecture.SCALES, "quick", TINY)


def test_lecture_writes_a_self_contained_report_and_reuses_the_store(tmp_path, tiny_scale, capsys):
    store_path, out = tmp_path / "runs.db", tmp_path / "report"
    argv = ["lecture", "--store", str(store_path), "--out", str(out), "--device", "cpu"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Speed of one update, no parallelism (CPU)" in printed and "batchlab lecture took" in printed

    page = (out / "report.html").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert "http://" not in page and "https://" not in page and 'src="//' not in page
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "AMD" in page or "cpu" in page  # the device is stated
    figure_ids = re.findall(r'<figure id="fig-([^"]+)"', page)
    assert {"timing-mlp", "noise-scan", "noise-gradients", "toy-ball"} <= set(figure_ids)
    for figure_id in figure_ids:
        assert (out / "figures" / f"{figure_id}.png").is_file()
        assert (out / "figures" / f"{figure_id}.svg").is_file()

    summary = json.loads((out / "summary.json").read_text())
    assert {"schema", "device", "environment", "settings", "summary_table", "accuracy", "noise", "timing",
            "figures", "sections", "stage_seconds", "toy_findings"} <= set(summary)
    assert [s["id"] for s in summary["sections"]] == list(SECTIONS)
    assert set(summary["noise"]) == {"start", "end"}
    assert summary["settings"]["scale"] == "quick"
    assert all(row["verdict"] in ("agrees", "disagrees", "within noise", "not converged", "machine busy — not judged",
                                  "not measured")
               for row in summary["summary_table"]["rows"])

    with RunStore(store_path) as store:
        finished_before = {r.run_id: r.finished for r in store.runs()}
        timings_before = len(store.timings())
        noise_before = len(store.records("noise"))
    assert len(finished_before) == 2 * (2 + 2) + 1  # 2 η × (equal epochs + until the loss stops), the full batch
    protocols = {row["protocol"] for row in summary["summary_table"]["rows"] if row["protocol"]}
    assert protocols == {"equal epochs (1)", "until the training loss stops improving (patience 1)"}
    assert "each batch size at its best η" in page

    assert main(argv) == 0
    capsys.readouterr()
    with RunStore(store_path) as store:
        assert {r.run_id: r.finished for r in store.runs()} == finished_before
        assert len(store.timings()) == timings_before
        assert len(store.records("noise")) == noise_before


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "number of seeds"),
    (["--scale", "huge"], "invalid choice"),
    (["--device", "tpu"], "device"),
])
def test_bad_input_is_a_one_line_error(tmp_path, tiny_scale, capsys, argv, message):
    code = main(["lecture", "--store", str(tmp_path / "runs.db"), "--out", str(tmp_path / "out"), *argv])
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("batchlab: error: ") and message in error and error.count("\n") == 1
    assert not (tmp_path / "out" / "report.html").exists()


def test_update_budget_runs_get_enough_epochs_for_the_budget_to_bind():
    study = lecture.AccuracyStudy(dataset="mnist-5k", model="mlp", hidden=(8,), batch_sizes=(64,), momenta=(0.0,),
                                  lr=0.1, epochs=2, update_budget=100, update_batch_sizes=(10, 1000),
                                  update_momenta=(0.9,))
    configs = lecture.study_configs(study, seeds=2, device="cpu", data_dir=None)
    assert [(c.batch_size, c.max_updates) for c in configs] == [(64, None)] * 2 + [(10, 100)] * 2 + [(1000, 100)] * 2
    n_train = 3600  # mnist-5k: 4,000 training images less the 10 % validation split
    for config in configs[2:]:
        per_epoch = -(-n_train // config.batch_size)
        assert (config.epochs - 1) * per_epoch < 100 <= config.epochs * per_epoch


def test_full_scale_leaves_out_datasets_that_are_not_here(tmp_path):
    studies, notes = lecture.available_studies(lecture.SCALES["full"], str(tmp_path))
    names = [s.dataset for s in studies]
    assert "cifar10" not in names and "mnist" not in names  # no files in an empty data folder
    assert any("batchlab data fetch cifar10" in note for note in notes)


def test_every_learning_rate_of_the_grid_runs_under_every_protocol():
    study = lecture.AccuracyStudy(dataset="mnist-5k", model="mlp", hidden=(8,), batch_sizes=(8, "full"),
                                  momenta=(0.9,), lr=0.1, epochs=2, update_budget=50, update_batch_sizes=(8,),
                                  update_momenta=(0.9,), lr_grid=(0.01, 0.1), patience=2, patience_epochs=5)
    configs = lecture.study_configs(study, seeds=1, device="cpu", data_dir=None)
    kinds = {(c.lr, c.batch_size, c.max_updates, c.stop_patience, c.epochs) for c in configs}
    assert kinds == {(lr, b, u, p, e) for lr in (0.01, 0.1) for (b, u, p, e) in (
        (8, None, 0, 2), ("full", None, 0, 2), (8, 50, 0, 1), (8, None, 2, 5), ("full", None, 2, 5))}
