"""The lecture's momentum claims, asserted on computed trajectories -- and where momentum does not help."""

import json

import numpy as np
import pytest

from batchlab.errors import ConfigError
from batchlab.toy.experiments import BETTER, FASTER, SLOWER, lecture_toy_experiments
from batchlab.toy.surfaces import get_surface
from batchlab.toy.trajectory import escape_step, run_trajectory


@pytest.fixture(scope="module")
def report():
    return lecture_toy_experiments()


# ------------------------------------------------------------------ the claims, on trajectories


def test_ball_gd_stops_in_the_shallow_minimum_and_momentum_rolls_on_to_the_global_one():
    surface = get_surface("ball")
    hilltop = surface.critical_point("hilltop").point[0]
    gd = run_trajectory(surface, momentum=0.0)
    ball = run_trajectory(surface, momentum=0.9)
    assert gd.converged and gd.ended_at == "shallow minimum"
    assert gd.points[:, 0].max() < hilltop  # GD never even reached the top of the hill
    assert ball.converged and ball.ended_at == "global minimum"
    assert ball.final_loss < gd.final_loss - 0.9
    # the momentum run crossed the hill while the loss was going *up*: inertia, not the gradient
    crossing = int(np.argmax(ball.points[:, 0] > hilltop))
    assert surface.grad(ball.points[crossing - 1])[0] > 0  # gradient pushed it back ...
    assert ball.points[crossing, 0] > ball.points[crossing - 1, 0]  # ... yet it moved on


def test_ball_gd_crawls_over_the_flat_stretch_momentum_does_not():
    surface = get_surface("ball")
    knee, shallow = surface.knee, surface.critical_point("shallow minimum").point[0]

    def steps_on_flat(trajectory):
        x = trajectory.points[:, 0]
        return int(np.count_nonzero((x > knee + 0.2) & (x < shallow - 0.5)))

    assert steps_on_flat(run_trajectory(surface, momentum=0.0)) > 5 * steps_on_flat(run_trajectory(surface, momentum=0.9))


def test_ball_too_little_momentum_does_not_get_out():
    surface = get_surface("ball")
    for lam in (0.3, 0.5, 0.7):
        assert run_trajectory(surface, momentum=lam).ended_at == "shallow minimum", lam


def test_ball_too_much_momentum_overshoots_the_better_minimum():
    surface = get_surface("ball")
    good = run_trajectory(surface, momentum=0.9)
    wild = run_trajectory(surface, momentum=0.99)
    global_x = surface.global_minimum.point[0]
    # it shoots far past the global minimum before coming back ...
    assert wild.points[:, 0].max() - global_x > 2 * (good.points[:, 0].max() - global_x)
    # ... and needs ten times the steps to settle; at λ = 0.95 it is even thrown back over the hill
    assert wild.steps > 10 * run_trajectory(surface, momentum=0.8).steps
    assert run_trajectory(surface, momentum=0.95).ended_at == "shallow minimum"


def test_two_minima_gd_shallow_momentum_deep_small_lambda_shallow():
    surface = get_surface("two-minima")
    assert run_trajectory(surface, momentum=0.0).ended_at == "shallow minimum"
    assert run_trajectory(surface, momentum=0.5).ended_at == "shallow minimum"
    deep = run_trajectory(surface, momentum=0.9)
    assert deep.converged and deep.ended_at == "deep minimum"
    assert deep.final_loss == pytest.approx(surface.global_minimum.loss, abs=1e-9)


def test_saddle_exactly_on_the_stable_manifold_nobody_escapes():
    # Honest: in exact arithmetic momentum does not get off the saddle either.
    surface = get_surface("saddle")
    for lam in (0.0, 0.5, 0.9, 0.99):
        trajectory = run_trajectory(surface, momentum=lam)
        assert trajectory.converged and trajectory.ended_at == "saddle", lam
        assert np.all(trajectory.points[:, 1] == 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_saddle_noise_lets_both_escape_momentum_sooner(seed):
    surface = get_surface("saddle")
    saddle = surface.critical_point("saddle")
    escapes = {
        lam: escape_step(run_trajectory(surface, momentum=lam, steps=400, noise_std=1e-3, seed=seed), surface, saddle, 0.5)
        for lam in (0.0, 0.5, 0.9)
    }
    assert all(step is not None for step in escapes.values()), escapes
    assert escapes[0.9] < escapes[0.5] < escapes[0.0]


def test_saddle_tiny_offset_escape_matches_the_linearized_growth_rate():
    # Near the saddle y grows by 1 + 2η per GD step and by the larger root of
    # z² − (1 + λ + 2η) z + λ = 0 with momentum; escape times scale like 1 / log(rate).
    surface = get_surface("saddle")
    saddle = surface.critical_point("saddle")
    eta = surface.lr
    steps = {}
    for lam in (0.0, 0.9):
        trajectory = run_trajectory(surface, start=(1.5, 1e-6), momentum=lam)
        steps[lam] = escape_step(trajectory, surface, saddle, 0.5)
        assert trajectory.ended_at in ("minimum y>0", "minimum y<0")
    rate_gd = 1 + 2 * eta
    rate_momentum = max(np.roots([1, -(1 + 0.9 + 2 * eta), 0.9]).real)
    predicted_ratio = np.log(rate_momentum) / np.log(rate_gd)
    assert steps[0.0] / steps[0.9] == pytest.approx(predicted_ratio, rel=0.35)
    assert steps[0.9] < steps[0.0]


def test_valley_momentum_is_faster_to_the_same_minimum_and_too_much_is_slower():
    surface = get_surface("valley")
    runs = {lam: run_trajectory(surface, momentum=lam) for lam in (0.0, 0.9, 0.99)}
    assert all(t.converged and t.ended_at == "minimum" for t in runs.values())
    assert runs[0.9].steps < runs[0.0].steps / 2
    assert runs[0.99].steps > runs[0.0].steps


# ------------------------------------------------------------------ the report


def test_every_lecture_claim_holds_at_the_default_settings(report):
    failed = [f"{f.surface}: {f.claim} ({f.evidence})" for f in report.findings if not f.holds]
    assert not failed
    assert {f.surface for f in report.findings} == {"ball", "saddle", "valley", "two-minima"}


def test_report_records_agree_with_fresh_trajectories(report):
    study = report.study("ball")
    record = study.run("start", 0.9)
    fresh = run_trajectory(get_surface("ball"), momentum=0.9)
    assert record.ended_at == fresh.ended_at and record.steps == fresh.steps
    assert record.end == tuple(fresh.final_point)
    assert record.method == "momentum" and study.run("start", 0.0).method == "GD"


def test_sweep_verdicts_are_relative_to_gd(report):
    ball = {p.record.momentum: p.verdict for p in report.study("ball").sweep}
    assert ball[0.9] == BETTER and ball[0.5] == FASTER
    valley = {p.record.momentum: p.verdict for p in report.study("valley").sweep}
    assert valley[0.9] == FASTER and valley[0.99] == SLOWER
    summary = report.study("two-minima").sweep_summary()
    assert 0.9 in summary[BETTER] and 0.5 not in summary[BETTER]
    assert 0.0 not in [m for values in summary.values() for m in values]


def test_findings_follow_the_runs_not_the_script():
    # With gradient noise, the saddle runs no longer stop at the saddle: the report says so.
    noisy = lecture_toy_experiments(["saddle"], noise_std=1e-3, steps=600)
    claim = noisy.findings[0]
    assert claim.claim.startswith("Started exactly on the saddle") and not claim.holds
    # Without momentum runs, the momentum claim cannot hold.
    gd_only = lecture_toy_experiments(["ball"], momenta=())
    rolls = next(f for f in gd_only.findings if f.claim.startswith("Momentum rolls"))
    assert not rolls.holds and rolls.evidence == "no momentum run"
    # A learning rate too small to get anywhere in 50 steps: no claim about minima holds.
    stalled = lecture_toy_experiments(["two-minima"], lr=1e-4, steps=50, sweep=(0.9,))
    assert not stalled.findings[0].holds


def test_report_to_dict_is_json_serializable(report):
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert [s["surface"]["name"] for s in data["surfaces"]] == ["ball", "saddle", "valley", "two-minima"]
    assert data["findings_total"] == len(report.findings)
    saddle = data["surfaces"][1]
    assert {r["scenario"] for r in saddle["runs"]} == {"on-manifold", "offset", "noise"}
    assert saddle["sweep"]["time_metric"] == "escape_step"
    # a run that overflows to infinity on its first step still serializes, as nulls
    blown_up = lecture_toy_experiments(["valley"], lr=1e300, momenta=(0.9,), steps=30, sweep=())
    assert all(r.diverged for r in blown_up.runs)
    with_paths = json.loads(json.dumps(blown_up.to_dict(include_paths=True), allow_nan=False))
    paths = with_paths["surfaces"][0]["paths"]
    assert len(paths) == 2 and paths[0]["losses"][-1] is None
    assert with_paths["surfaces"][0]["runs"][0]["loss"] is None


def test_gd_is_always_the_baseline_and_settings_are_recorded():
    report = lecture_toy_experiments(["valley"], momenta=(0.9, 0.5, 0.9), sweep=(0.5,), steps=100)
    assert report.settings["momenta"] == [0.0, 0.5, 0.9]
    assert report.settings["lr"] == {"valley": 0.018}
    assert [p.record.momentum for p in report.study("valley").sweep] == [0.0, 0.5]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"surfaces": ["bowl"]},
        {"surfaces": []},
        {"lr": -1.0},
        {"momenta": (1.0,)},
        {"momenta": (-0.5,)},
        {"sweep": (1.5,)},
        {"steps": 0},
        {"noise_std": -0.1},
        {"saddle_offset": 0.0},
    ],
)
def test_bad_settings_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        lecture_toy_experiments(**kwargs)
