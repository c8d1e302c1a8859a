"""`batchlab lecture` end to end at a tiny scale: the report, its figures, summary.json, reuse of the
store on a second call, and bad input."""

import json
import re

import pytest

from batchlab.analysis.verdicts import VERDICTS
from batchlab.experiments import lecture
from batchlab.cli import main
from batchlab.store import RunStore

TINY = lecture.LectureScale(
    name="quick",
    studies=(lecture.AccuracyStudy(dataset="mnist-5k", model="mlp", hidden=(8,), batch_sizes=(256, "full"),
                                   momenta=(0.9,), lr=0.05, epochs=1, lr_grid=(0.05, 0.2), patience=1,
                                   patience_updates=2, lr_extension_cap=1),),
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
    sharp_minima=lecture.SharpMinimaStudy(
        datasets=("mnist-5k",), train_subset=1000, model="mlp", hidden=(8,), small_batch=50, large_fraction=0.5,
        lr=0.1, momentum=0.9, target_train_acc=0.6, sb_epochs=3, lb_epochs=6, seeds=1,
        sharpness_examples=100, landscape_examples=100, landscape_test_examples=100, train_on_epochs=1,
        train_on_rounds=1, curvature_examples=100, trace_samples=2,
        # A loose rule, so that this tiny network's points count as minima and every measure is exercised.
        minimum_fraction=0.9,
    ),
)
SECTIONS = ("summary", "timing", "accuracy", "noise", "gap", "momentum")  # the summary leads


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny_scale(monkeypatch):
    monkeypatch.setitem(lecture.SCALES, "quick", TINY)


@pytest.mark.slow
def test_lecture_writes_a_self_contained_report_and_reuses_the_store(tmp_path, tiny_scale, capsys):
    store_path, out = tmp_path / "runs.db", tmp_path / "report"
    argv = ["lecture", "--store", str(store_path), "--out", str(out), "--device", "cpu"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Speed of one update, no parallelism (CPU)" in printed and "batchlab lecture took" in printed

    page = (out / "report.html").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}"' in page
    # The report leads with its answer: the summary comes before every other section.
    assert page.index('<section id="summary"') < min(page.index(f'<section id="{s}"') for s in SECTIONS if s != "summary")
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
    assert all(row["verdict"] in VERDICTS for row in summary["summary_table"]["rows"])

    with RunStore(store_path) as store:
        finished_before = {r.run_id: r.finished for r in store.runs()}
        timings_before = len(store.timings())
        noise_before = len(store.records("noise"))
        searches = store.get_record("lecture", "settings")["lr_search"]
    # Each η tried (2 a grid, one more beyond an edge the best lay on) at each batch size under equal
    # epochs and given enough updates, the full batch's critical point, and flat vs sharp's SB and LB.
    assert len(searches) == 2 * 2 and all(len(s["tried"]) in (2, 3) for s in searches)
    assert all(s["kind"] in ("interior", "bounded by divergence", "cap reached") for s in searches)
    assert len(finished_before) == sum(len(s["tried"]) for s in searches) + 1 + 2
    protocols = {row["protocol"] for row in summary["summary_table"]["rows"] if row["protocol"]}
    assert protocols == {"equal epochs (1)", "given enough updates (until the training loss stops improving, "
                         "patience 1, update cap)", "equal training accuracy (60%)"}
    assert "each batch size at its best η" in page

    # Flat vs sharp: both regimes trained to the same training accuracy, their sharpness, the line.
    assert {"gap-parametric", "gap-sharpness"} <= set(figure_ids)
    flat_sharp = [row for row in summary["summary_table"]["rows"] if row["protocol"] == "equal training accuracy (60%)"]
    assert [row["quantity"] for row in flat_sharp] == ["test accuracy", "sharpness φ"]
    assert all(row["small"]["batch_size"] == 50 and row["large"]["batch_size"] == 500 for row in flat_sharp)
    assert "one optimizer and one set of hyperparameters for both regimes" in page
    with RunStore(store_path) as store:
        (gap,) = store.records("gap")
        assert gap["plan"]["scale"] == "lecture-quick"
        runs = gap["networks"][0]["runs"]
        assert {r["regime"] for r in runs} == {"SB", "LB"}
        for run in runs:
            if run["reached_target_at"] is not None:
                assert run["train_acc"] >= 0.6
            assert len(run["sharpness"]) == 1

    assert main(argv) == 0
    capsys.readouterr()
    with RunStore(store_path) as store:
        assert {r.run_id: r.finished for r in store.runs()} == finished_before
        assert len(store.timings()) == timings_before
        assert len(store.records("noise")) == noise_before
        assert len(store.records("sharpness")) == 2 and len(store.records("gap")) == 1


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
                                  update_momenta=(0.9,), lr_grid=(0.01, 0.1), patience=2, patience_updates=500)
    configs = lecture.study_configs(study, seeds=1, device="cpu", data_dir=None)
    kinds = {(c.lr, c.batch_size, c.max_updates, c.stop_patience, c.epochs) for c in configs}
    # Given enough updates: an update cap of 500 (2 epochs at B = 8 on 3,600 images, 500 full-batch epochs).
    assert kinds == {(lr, b, u, p, e) for lr in (0.01, 0.1) for (b, u, p, e) in (
        (8, None, 0, 2), ("full", None, 0, 2), (8, 50, 0, 1), (8, 500, 2, 2), ("full", 500, 2, 500))}


def _with_fashion(monkeypatch, present, also_missing=()):
    """Make Fashion-MNIST present or not (and ``also_missing`` datasets absent), whatever is on disk."""
    import batchlab.data as data

    real = data.locate

    def locate(spec, data_dir=None):
        if spec.name in also_missing:
            return None
        if spec.name == "fashion-mnist":
            return "/data" if present else None
        return real(spec, data_dir)

    monkeypatch.setattr(data, "locate", locate)


def test_flat_vs_sharp_uses_a_fashion_mnist_subset_when_present(monkeypatch):
    from batchlab.experiments.lecture.stages import sharp_minima_plan

    _with_fashion(monkeypatch, True)
    plan, notes = sharp_minima_plan(lecture.SCALES["quick"], "cpu", None)
    (network,) = plan.networks
    assert notes == [] and plan.scale == "lecture-quick" and plan.seeds == 3
    assert (network.dataset, network.train_subset, network.sb, network.lb_fraction) == ("fashion-mnist", 2048, 32, 0.1)
    sb, lb = network.config("SB", 32, 0, "cpu", None), network.config("LB", 205, 0, "cpu", None)
    assert sb.target_train_acc == lb.target_train_acc == 1.0 and sb.train_subset == 2048
    # The same optimizer and hyperparameters for both regimes: only the batch size and the epoch cap differ.
    differ = {name for name in sb.to_dict() if sb.to_dict()[name] != lb.to_dict()[name]}
    assert differ == {"batch_size", "epochs"}
    assert (sb.optimizer, sb.momentum, sb.lr) == ("momentum", 0.9, 0.02)
    assert network.train_on_rounds > 0 and plan.minimum_fraction == 0.01


def test_flat_vs_sharp_falls_back_to_the_embedded_digits_and_says_so(monkeypatch):
    from batchlab.experiments.lecture.stages import sharp_minima_plan

    _with_fashion(monkeypatch, False)
    plan, notes = sharp_minima_plan(lecture.SCALES["quick"], "cpu", None)
    (network,) = plan.networks
    assert network.dataset == "mnist-5k" and network.train_subset == 2048  # 2,048 of its 4,000 images
    assert len(notes) == 1 and "fashion-mnist is not on this machine" in notes[0] and network.note == notes[0]


def test_flat_vs_sharp_is_left_out_when_its_data_are_missing_or_too_small(monkeypatch, tmp_path):
    from dataclasses import replace

    from batchlab.experiments.lecture.stages import sharp_minima_plan

    _with_fashion(monkeypatch, False, also_missing=("mnist",))
    plan, notes = sharp_minima_plan(lecture.SCALES["full"], "cpu", str(tmp_path))
    assert plan is None and "none of fashion-mnist, mnist is on this machine" in notes[0] and "left out" in notes[0]
    too_small = replace(TINY, sharp_minima=replace(TINY.sharp_minima, large_fraction=0.01))
    plan, notes = sharp_minima_plan(too_small, "cpu", None)
    assert plan is None and "is not larger than SB = 50" in notes[0]
    assert sharp_minima_plan(replace(TINY, sharp_minima=None), "cpu", None) == (None, [])


def test_seeds_option_applies_to_the_flat_vs_sharp_study_too():
    scale = lecture.with_seeds(lecture.SCALES["quick"], 5)
    assert scale.seeds == 5 and scale.sharp_minima.seeds == 5
