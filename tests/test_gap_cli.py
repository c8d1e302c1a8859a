"""``batchlab gap`` and ``batchlab landscape`` end to end, with the experiment shrunk to tiny networks."""

from __future__ import annotations

import json

import pytest

import batchlab
from batchlab.cli import main
from dataclasses import replace

from batchlab.experiments import gap as gap_package
from batchlab.experiments.gap import experiment
from batchlab.experiments.gap.experiment import NetworkPlan
from batchlab.report.context import ReportContext
from batchlab.experiments.gap.report import gap_section
from batchlab.store import RunStore


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_networks() -> dict[str, NetworkPlan]:
    """Both of the experiment's networks shrunk to a few seconds: one hidden layer of 8, a few epochs."""
    common = dict(dataset="mnist-5k", sb=100, lb_fraction=0.1, sb_epochs=3, lb_epochs=10, stop_patience=3,
                  sharpness_examples=100, landscape_examples=200, landscape_test_examples=150)
    return {
        "f1": NetworkPlan("f1", "F1", "keskar-f1", hidden=(8,), **common),
        "c1": NetworkPlan("c1", "C1", "mlp", hidden=(8,), **common),
    }


@pytest.fixture(scope="module")
def gap_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gap")
    patch = pytest.MonkeyPatch()
    patch.setattr(experiment, "_quick_networks", tiny_networks)
    # A loose at-a-minimum rule (99 % of ‖∇f(θ₀)‖), so that these one-epoch points count as minima
    # and every measurement and figure is exercised; test_gap_minima.py checks the 1 % rule itself.
    plan_gap = gap_package.plan_gap
    patch.setattr(gap_package, "plan_gap", lambda *a, **k: replace(plan_gap(*a, **k), minimum_fraction=0.99))
    try:
        argv = ["gap", "--scale", "quick", "--seeds", "1", "--store", str(folder / "runs.db"),
                "--out", str(folder / "out"), "--device", "cpu"]
        code = main(argv)
        again = main(argv + ["--format", "json"])
    finally:
        patch.undo()
    return folder, code, again


@pytest.mark.slow
def test_gap_prints_tables_with_the_papers_numbers_and_a_verdict(gap_run, capsys):
    folder, code, _ = gap_run
    assert code == 0
    record = json.loads((folder / "out" / "gap.json").read_text())
    assert record["plan"]["scale"] == "quick" and record["plan"]["seeds"] == 1
    assert len(record["load_average"]) == 2 and record["seconds"] > 0
    assert [n["plan"]["paper"] for n in record["networks"]] == ["F1", "C1"]
    for network in record["networks"]:
        runs = network["runs"]
        assert [(r["regime"], r["batch_size"]) for r in runs] == [("SB", 100), ("LB", 400)]
        assert all(r["status"] == "finished" and 0 < r["test_acc"] <= 1 for r in runs)
        for run in runs:  # measured at a minimum, else the rule's note and no number
            spaces = {(s["space"], s["epsilon"]) for s in run["sharpness"]}
            assert spaces == ({("full", 1e-3), ("full", 5e-4)} if run["minimum"]["at_minimum"] else set())
        assert all(s["examples"] == 100 for r in runs for s in r["sharpness"])
        if all(r["minimum"]["at_minimum"] for r in runs):
            line = network["parametric"]["line"]
            assert len(line["points"]) == 31 and line["train_examples"] == 200 and line["test_examples"] == 150
            assert network["parametric"]["run_a"] == runs[0]["run_id"]
        else:
            assert network["parametric"] is None
    # The small net (C1 here) reaches the loose rule; keskar-f1's batch-normalized net does not after these epochs.
    assert [all(r["minimum"]["at_minimum"] for r in n["runs"]) for n in record["networks"]] == [False, True]
    assert "not at a minimum (‖∇f‖ = " in record["tables"]["minima"]["rows"][0][6]
    accuracy = record["tables"]["accuracy"]
    assert accuracy["rows"][0][0] == "F1" and "98.03" in accuracy["rows"][0]
    assert "707.23" in record["tables"]["sharpness"]["rows"][0]  # C1's paper value: F1 has no point at a minimum
    assert "comparisons with the paper agree" in record["paragraph"]
    for name in ("gap-parametric", "gap-sharpness"):
        assert (folder / "out" / f"{name}.png").stat().st_size > 0
        assert (folder / "out" / f"{name}.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.slow
def test_a_second_run_reuses_every_run_and_measurement(gap_run, capsys):
    folder, _, again = gap_run
    assert again == 0
    record = json.loads((folder / "out" / "gap.json").read_text())
    runs = [r for n in record["networks"] for r in n["runs"]]
    assert all(r["from_store"] for r in runs)
    assert all(s["from_store"] for r in runs for s in r["sharpness"])
    with RunStore(folder / "runs.db", create=False) as store:
        assert len(store.runs()) == 4
        assert len(store.records("gap")) == 1
        assert len(store.records("sharpness")) == 4  # C1's two minima at two ε
        assert len(store.records("curvature")) == 2
        assert len(store.records("landscape")) == 1


@pytest.mark.slow
def test_the_report_section_is_built_from_the_store(gap_run):
    folder, _, _ = gap_run
    with RunStore(folder / "runs.db", create=False) as store:
        section = gap_section(ReportContext(store))
    assert section.id == "gap"
    assert [f.id for f in section.figures] == ["gap-parametric", "gap-sharpness"]
    assert all(f.png.startswith(b"\x89PNG") and "<svg" in f.svg and "matplotlib.org" not in f.svg
               for f in section.figures)
    assert "C1: training loss" in section.figures[0].caption
    assert [t.title.split(" —")[0] for t in section.tables][:2] == ["Table 2", "Tables 3 & 4"]
    assert len(section.tables) == 4 and "‖∇f‖ ≤ 99 % of ‖∇f(θ₀)‖" in section.tables[2].caption
    assert "Departure from the paper" in " ".join(section.notes)
    assert "All 4 runs were read back from the store" in section.notes[-1]  # the second pass wrote the record
    assert "comparisons with the paper agree" in section.intro


def test_an_empty_store_has_no_gap_section(tmp_path):
    with RunStore(tmp_path / "runs.db") as store:
        assert gap_section(ReportContext(store)) is None


@pytest.mark.slow
def test_landscape_command_writes_figures_table_and_record(gap_run, capsys, tmp_path):
    folder, _, _ = gap_run
    store_path = folder / "runs.db"
    record = json.loads((folder / "out" / "gap.json").read_text())
    sb, lb = (r["run_id"] for r in record["networks"][0]["runs"])
    capsys.readouterr()
    code = main(["landscape", sb, lb, "--store", str(store_path), "--alphas", "-0.5", "1.5", "5", "--bn", "recompute",
                 "--examples", "100", "--test-examples", "100", "--contour", sb, "--grid", "3",
                 "--out", str(tmp_path), "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    assert "batch norm: recompute" in out and "contour around" in out
    assert len([line for line in out.splitlines() if line.strip().startswith(("-0.50", "0.00", "0.50", "1.00", "1.50"))]) == 5
    stem = f"landscape-{sb[:8]}-{lb[:8]}-bn-recompute"
    for name in (f"{stem}.png", f"{stem}.svg", f"contour-{sb[:8]}.png", f"contour-{sb[:8]}.svg", f"{stem}.json"):
        assert (tmp_path / name).exists(), name
    with RunStore(store_path, create=False) as store:
        keys = [key for key, _ in store.record_items("landscape")]
    assert any(key.startswith(f"parametric|{sb}|{lb}|alphas=-0.5:1.5:5|bn=recompute") for key in keys)
    assert any(key.startswith(f"contour|{sb}|steps=3") for key in keys)


@pytest.mark.slow
def test_landscape_refuses_runs_of_different_architectures(tmp_path, capsys, one_error_line):
    store_path = tmp_path / "runs.db"
    base = dict(dataset="mnist-5k", epochs=1, batch_size=500, lr=0.05, device="cpu", val_fraction=0.0)
    a = batchlab.train(batchlab.RunConfig(model="mlp", hidden=(8,), **base), store=store_path, progress=False)
    b = batchlab.train(batchlab.RunConfig(model="mlp", hidden=(9,), **base), store=store_path, progress=False)
    capsys.readouterr()
    assert main(["landscape", a.run_id, b.run_id, "--store", str(store_path), "--out", str(tmp_path)]) == 2
    assert "differ in hidden ((8) vs (9))" in one_error_line()
    assert main(["landscape", a.run_id, "0123456789abcdef", "--store", str(store_path), "--out", str(tmp_path)]) == 2
    assert "unknown run id" in one_error_line()
    assert main(["landscape", a.run_id, a.run_id, "--store", str(store_path), "--alphas", "0", "1", "2.5"]) == 2
    assert "not an integer" in one_error_line()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["gap", "--networks", "f2"], "unknown network 'f2' at scale quick; allowed: f1, c1"),
        (["gap", "--seeds", "0"], "seeds 0 is invalid"),
        (["gap", "--scale", "huge"], "invalid choice"),
        (["gap", "--momentum", "0.5"], "--momentum needs --optimizer momentum"),
        (["gap", "--optimizer", "momentum", "--lr", "-1"], "learning rate -1.0 is invalid; allowed: a number > 0"),
        (["gap", "--optimizer", "momentum", "--momentum", "1"], "momentum 1.0 is invalid; allowed: 0 ≤ λ < 1"),
        (["gap", "--scale", "standard", "--networks", "f1"], "unknown network 'f1' at scale standard; allowed: c1"),
    ],
)
def test_gap_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, one_error_line):
    assert main(argv + ["--store", str(tmp_path / "runs.db"), "--out", str(tmp_path)]) == 2
    assert message in one_error_line()


@pytest.mark.slow
def test_a_store_with_the_lectures_and_the_papers_gap_records_shows_both(gap_run, tmp_path):
    import shutil
    from dataclasses import replace

    from batchlab.experiments import lecture
    from batchlab.experiments.lecture.stages import run_sharp_minima_stage
    from batchlab.report import build_report

    folder, _, _ = gap_run
    shutil.copy(folder / "runs.db", tmp_path / "runs.db")
    study = lecture.SharpMinimaStudy(
        datasets=("mnist-5k",), train_subset=1000, model="mlp", hidden=(8,), small_batch=50, large_fraction=0.5,
        lr=0.1, momentum=0.9, target_train_acc=0.6, sb_epochs=2, lb_epochs=4, seeds=1,
        sharpness_examples=100, landscape_examples=100, landscape_test_examples=100, train_on_epochs=2,
        train_on_rounds=1, curvature_examples=100, trace_samples=2, minimum_fraction=0.9)
    scale = replace(lecture.SCALES["quick"], sharp_minima=study)
    with RunStore(tmp_path / "runs.db") as store:
        run_sharp_minima_stage(store, scale, "cpu", None, False, lambda text: None)
        report, ctx = build_report(store)
    ids = [section.id for section in report.sections]
    assert ids.index("gap") + 1 == ids.index("gap-paper")
    assert ctx.gap_records[0]["plan"]["scale"] == "lecture-quick" and ctx.gap_records[1]["plan"]["scale"] == "quick"
    figure_ids = [figure.id for section in report.sections for figure in section.figures]
    assert len(figure_ids) == len(set(figure_ids))
    assert {"gap-parametric", "gap-paper-gap-parametric"} <= set(figure_ids)
    assert "records" not in ids  # every sharpness and landscape record belongs to a run shown above
