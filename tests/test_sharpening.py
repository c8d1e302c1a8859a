"""Sharpness during training: λ_max every k updates, warm-started Lanczos, the bound line, the command."""

from __future__ import annotations

import json
import math

import pytest
import torch

from batchlab.cli import main
from batchlab.config import RunConfig
from batchlab.data.identity import load_splits
from batchlab.errors import ConfigError
from batchlab.experiments.sharpening import plan_sharpening
from batchlab.experiments.sharpening.experiment import findings, ordering
from batchlab.experiments.sharpening.plots import plot_sharpening
from batchlab.experiments.sharpening.trajectory import SharpnessProbe, probe_subset, sharpness_trajectories
from batchlab.geometry.hessian import top_eigenvalues
from batchlab.geometry.stability import stability_bound


def tiny_config(**changes) -> RunConfig:
    """An MLP 784-8-10 on 300 mnist-5k digits: a Hessian of 6,370 dimensions, products in milliseconds."""
    return RunConfig(**{"dataset": "mnist-5k", "model": "mlp", "hidden": (8,), "batch_size": 30, "lr": 0.1,
                        "momentum": 0.9, "val_fraction": 0.0, "train_subset": 300, **changes})


@pytest.fixture(scope="module")
def tiny():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    splits = load_splits(tiny_config())
    probe = probe_subset(splits.train, 100, 0)
    configs = [tiny_config(lr=0.05), tiny_config(lr=0.2)]
    try:
        warm = sharpness_trajectories(configs, splits, updates=12, every=4, probe=probe, device=torch.device("cpu"))
        cold = sharpness_trajectories(configs, splits, updates=12, every=4, probe=probe, device=torch.device("cpu"),
                                      warm=False)
    finally:
        torch.set_num_threads(threads)
    return splits, probe, configs, warm, cold


def test_lambda_max_is_recorded_every_k_updates(tiny):
    _, _, configs, warm, _ = tiny
    for trajectory, config in zip(warm, configs):
        assert trajectory.config == config
        assert [p.update for p in trajectory.points] == [0, 4, 8, 12]
        assert all(p.sharpness is not None and p.sharpness > 0 and p.products >= 1 for p in trajectory.points)
        assert all(p.residual <= 1e-3 * p.sharpness for p in trajectory.points)
        assert trajectory.initial is not None and trajectory.final is not None


def test_the_last_update_is_measured_when_k_does_not_divide_the_updates(tiny):
    splits, probe, configs, _, _ = tiny
    (trajectory,) = sharpness_trajectories(configs[:1], splits, updates=5, every=2, probe=probe,
                                           device=torch.device("cpu"))
    assert [p.update for p in trajectory.points] == [0, 2, 4, 5]


def test_warm_start_gives_the_cold_start_value(tiny):
    _, _, _, warm, cold = tiny
    for hot, fresh in zip(warm, cold):
        # Training is untouched by the measurement: the same losses at the same updates.
        assert [p.loss for p in hot.points] == [p.loss for p in fresh.points]
        for a, b in zip(hot.points, fresh.points):
            assert a.sharpness == pytest.approx(b.sharpness, rel=3e-3)
        assert hot.points[0].products == fresh.points[0].products  # the first measurement starts cold


def test_warm_start_saves_products_when_the_point_moves_little(tiny):
    _, probe, _, _, _ = tiny
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    warm, cold = SharpnessProbe(*probe), SharpnessProbe(*probe, warm=False)
    warm.measure(model, 0), cold.measure(model, 0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1.001)
    moved_warm, moved_cold = warm.measure(model, 1), cold.measure(model, 1)
    assert moved_warm.sharpness == pytest.approx(moved_cold.sharpness, rel=3e-3)
    assert moved_warm.products < moved_cold.products / 2


def test_the_probe_agrees_with_the_geometry_modules_top_eigenvalue(tiny):
    splits, probe, configs, _, _ = tiny
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10))
    point = SharpnessProbe(*probe).measure(model, 0)
    reference = top_eigenvalues(model, *probe, k=1, chunk_size=None)
    assert point.sharpness == pytest.approx(reference.values[0], rel=3e-3)


def test_the_figure_draws_each_bound_as_a_dashed_line(tiny):
    _, _, configs, warm, _ = tiny
    runs = [{"batch_size": 30, "lr": t.config.lr, "status": t.status, "points": [p.to_list() for p in t.points],
             "bound": stability_bound("momentum", t.config.lr, 0.9).value} for t in warm]
    figure = plot_sharpening(runs, 0.9)
    top = figure.axes[0]
    dashed = sorted(line.get_ydata()[0] for line in top.get_lines() if line.get_linestyle() == "--")
    assert dashed == pytest.approx(sorted(2 * 1.9 / c.lr for c in configs))
    assert len([line for line in top.get_lines() if line.get_linestyle() == "-"]) == len(configs)


def test_ordering_counts_pairs_by_eta_over_b():
    def run(ratio, end, status="finished"):
        return {"lr_over_b": ratio, "status": status, "summary": {"end": end}}

    as_stated = ordering([run(1e-3, 5.0), run(1e-2, 2.0), run(1e-4, 9.0), run(1e-1, 100.0, "diverged")])
    assert (as_stated["pairs"], as_stated["ordered"]) == (3, 3) and as_stated["spearman"] == pytest.approx(-1.0)
    reversed_ = ordering([run(1e-3, 1.0), run(1e-2, 2.0)])
    assert (reversed_["pairs"], reversed_["ordered"], reversed_["spearman"]) == (1, 0, None)


def test_findings_name_the_failed_runs_and_leave_them_out():
    good = {"batch_size": 32, "lr": 0.1, "lr_over_b": 0.1 / 32, "status": "finished", "reason": "",
            "summary": {"start": 2.0, "peak": 40.0, "peak_update": 20, "end": 10.0, "rise": 20.0,
                        "peak_over_bound": 40 / 38}}
    bad = {**good, "lr": 0.3, "status": "failed to train", "reason": "at chance",
           "summary": {**good["summary"], "peak_over_bound": 2.0}}
    text = " ".join(findings([good, bad]))
    assert "1 of 1 finished runs reached 90% of the bound" in text
    assert "B = 32, η = 0.3: failed to train (at chance)" in text


@pytest.mark.parametrize("changes, message", [
    ({"every": 50, "updates": 10}, "every 50 is more than the 10 updates"),
    ({"lrs": [0.1, -1.0]}, "learning rates"),
    ({"momentum": 1.0}, "momentum 1.0 is invalid"),
    ({"batch_sizes": ["half"]}, "batch size 'half'"),
    ({"probe_examples": 0}, "probe examples 0 is invalid"),
])
def test_plan_refuses_bad_values(changes, message):
    with pytest.raises(ConfigError, match=message):
        plan_sharpening("quick", **changes)


def test_command_refuses_bad_input_in_one_line(tmp_path, capsys):
    code = main(["sharpening", "--every", "300", "--store", str(tmp_path / "runs.db"), "--out", str(tmp_path / "o")])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and error == ["batchlab: error: every 300 is more than the 200 updates; allowed: 1 … 200"]
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_command_writes_strict_json_the_figure_and_a_record_the_report_shows(tmp_path, capsys):
    from batchlab.report.build import build_report
    from batchlab.store import RunStore

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(["sharpening", "--batch-size", "20", "200", "--lr", "0.05", "0.2", "--updates", "6", "--every",
                     "3", "--probe-examples", "60", "--hidden", "8", "--store", str(tmp_path / "runs.db"), "--out",
                     str(tmp_path / "out"), "--device", "cpu", "--format", "json"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0

    def no_constant(name):
        raise AssertionError(f"non-strict JSON constant {name}")

    printed = json.loads(capsys.readouterr().out, parse_constant=no_constant)
    assert {(r["batch_size"], r["lr"]) for r in printed["runs"]} == {(20, 0.05), (20, 0.2), (200, 0.05), (200, 0.2)}
    assert all([p[0] for p in r["points"]] == [0, 3, 6] for r in printed["runs"])
    assert all(math.isclose(r["bound"], 2 * 1.9 / r["lr"]) for r in printed["runs"])
    assert printed["probe"]["examples"] == 60 and printed["findings"]
    assert {p.rsplit("/", 1)[-1] for p in printed["files"]} == {"sharpening.json", "sharpening.png", "sharpening.svg"}
    with RunStore(tmp_path / "runs.db") as store:
        report, _ = build_report(store)
    section = report.section("sharpening")
    assert section is not None and section.figures[0].id == "sharpening"
    assert "60 fixed training examples" in section.intro


def test_a_batch_larger_than_the_training_set_is_refused_before_anything_trains(tmp_path, capsys):
    code = main(["sharpening", "--batch-size", "32", "5000", "--updates", "2", "--every", "1", "--store",
                 str(tmp_path / "runs.db"), "--out", str(tmp_path / "o"), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 2 and "batchlab: error: batch size 5000" in captured.err and "B = 32" not in captured.err
