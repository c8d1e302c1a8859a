"""batchlab advise: target counting, the McCandlish fit, regimes, reuse rules, bad input, and a tiny
end-to-end run through the API and the CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from batchlab.experiments.advise.experiment import (
    RECORD_KIND,
    RUN_KIND,
    TargetNotReachedError,
    geometric_batch_sizes,
    plan_advise,
    reuse,
    run_advise,
)
from batchlab.experiments.advise.fit import (
    DIMINISHING_RETURNS,
    MAXIMAL_PARALLELISM,
    PERFECT_SCALING,
    fit_tradeoff,
    regime,
)
from batchlab.experiments.advise.target import Target, evaluation_schedule, parse_target, steps_to_target
from batchlab.cli import main
from batchlab.config import RunConfig
from batchlab.errors import ConfigError
from batchlab.store import RunStore

# ------------------------------------------------------------------------------------ the fit


def _synthetic(s_min: float, e_min: float, sizes, seeds: int, noise: float, seed: int = 0) -> dict[int, list[float]]:
    rng = np.random.default_rng(seed)
    return {b: list(s_min * (1 + (e_min / s_min) / b) * np.exp(rng.normal(0, noise, seeds))) for b in sizes}


@pytest.mark.slow
def test_fit_recovers_known_values_with_uncertainty():
    s_min, e_min = 200.0, 12800.0  # B_crit = 64
    sizes = [2 ** k for k in range(0, 13)]
    fit = fit_tradeoff(_synthetic(s_min, e_min, sizes, seeds=3, noise=0.05))
    assert fit.s_min == pytest.approx(s_min, rel=0.1)
    assert fit.e_min == pytest.approx(e_min, rel=0.1)
    assert fit.b_crit == pytest.approx(64, rel=0.15)
    assert fit.unresolved is None
    # Uncertainty: 1σ factors from the covariance, and a bootstrap interval over seeds that covers the truth.
    assert 1.0 < fit.b_crit_factor < 1.2
    low, high = fit.b_crit_interval
    assert low < 64 < high
    assert fit.bootstrap_samples > 0
    # At B_crit both steps and examples are twice their minimum.
    assert fit.steps(fit.b_crit) == pytest.approx(2 * fit.s_min)
    assert fit.examples(fit.b_crit) == pytest.approx(2 * fit.e_min)


def test_fit_is_exact_without_noise_and_noisier_data_gives_wider_errors():
    sizes = [1, 4, 16, 64, 256, 1024]
    exact = fit_tradeoff({b: [50 * (1 + 30 / b)] for b in sizes})
    assert exact.s_min == pytest.approx(50, rel=1e-6)
    assert exact.b_crit == pytest.approx(30, rel=1e-6)
    quiet = fit_tradeoff(_synthetic(50, 1500, sizes, seeds=1, noise=0.02, seed=3))
    loud = fit_tradeoff(_synthetic(50, 1500, sizes, seeds=1, noise=0.3, seed=3))
    assert loud.b_crit_factor > quiet.b_crit_factor
    assert quiet.b_crit_interval is None  # one seed per batch size: no bootstrap


def test_fit_flags_a_curve_still_in_perfect_scaling():
    fit = fit_tradeoff({b: [4096 / b] for b in (1, 2, 4, 8)})
    assert fit.unresolved is not None and "perfect scaling" in fit.unresolved
    assert regime(4, fit) is None


def test_fit_needs_three_batch_sizes_and_positive_steps():
    with pytest.raises(ConfigError, match="3 or more"):
        fit_tradeoff({1: [10.0], 2: [6.0]})
    with pytest.raises(ConfigError, match="finite and > 0"):
        fit_tradeoff({1: [10.0], 2: [0.0], 4: [3.0]})


def test_regimes_from_the_fit():
    fit = fit_tradeoff({b: [100 * (1 + 64 / b)] for b in (1, 4, 16, 64, 256, 1024)})
    assert regime(1, fit) == PERFECT_SCALING
    assert regime(15.9, fit) == PERFECT_SCALING  # up to B_crit / 4 = 16
    assert regime(16.1, fit) == DIMINISHING_RETURNS
    assert regime(64, fit) == DIMINISHING_RETURNS
    assert regime(255, fit) == DIMINISHING_RETURNS
    assert regime(257, fit) == MAXIMAL_PARALLELISM  # from 4 · B_crit = 256
    assert regime(16, None) is None


# ------------------------------------------------------------------------------------ the target


def test_steps_to_target_is_the_first_evaluated_update_reaching_it():
    target = Target("val_acc", 0.9)
    history = [(0, 0.1), (1, 0.5), (2, 0.89), (3, 0.9), (4, 0.85), (6, 0.95)]
    assert steps_to_target(history, target) == 3  # a later dip does not undo it
    assert steps_to_target(list(reversed(history)), target) == 3
    assert steps_to_target([(0, 0.1), (5, float("nan")), (9, 0.899)], target) is None  # never reached
    loss = Target("train_loss", 0.2)
    assert steps_to_target([(0, 2.3), (10, 0.21), (12, 0.2)], loss) == 12
    assert steps_to_target([(0, 2.3), (5, float("inf"))], loss) is None


def test_evaluation_schedule_is_dense_then_geometric():
    schedule = evaluation_schedule(1000, 1.1)
    assert schedule[:11] == list(range(11))  # every update while the geometric step is below one
    assert schedule[-1] == 1000
    gaps = [b / a for a, b in zip(schedule[11:], schedule[12:])]
    assert max(gaps) <= 1.1 + 1e-9 + 1 / schedule[11]
    assert len(schedule) < 100
    with pytest.raises(ConfigError):
        evaluation_schedule(10, 1.0)


def test_parse_target():
    assert parse_target("0.9") == Target("val_acc", 0.9)
    assert parse_target("train_loss<=0.1") == Target("train_loss", 0.1)
    assert parse_target("val_acc>=0.95").key == "val_acc>=0.95"
    for bad, match in (("val_acc=1.5", "never be reached"), ("train_loss=0", "never be reached"),
                       ("val_acc<=0.9", "wrong way"), ("accuracy=0.9", "unknown target metric"),
                       ("val_acc=high", "METRIC=VALUE")):
        with pytest.raises(ConfigError, match=match):
            parse_target(bad)


# ------------------------------------------------------------------------------------ plan and reuse


@pytest.mark.slow
def test_plan_defaults_and_grid():
    plan = plan_advise("quick")
    assert plan.batch_sizes == (1, 4, 16, 64, 256, 1024)
    assert plan.target.key == "val_acc>=0.9"
    assert len(plan.configs(16)) == 12
    lrs = plan.learning_rates(64, 0.0)
    assert lrs[1] == pytest.approx(0.1) and lrs[2] / lrs[1] == pytest.approx(3.0)
    assert plan.learning_rates(256, 0.9)[1] == pytest.approx(0.1 * 0.1 * 2)  # (1 − λ) η_ref √(B/B_ref)
    assert plan.budget(1) == 7200 and plan.budget(1024) == 150
    assert plan.model_updates_budget == 12 * (7200 + 1800 + 450 + 150 + 150 + 150)
    assert geometric_batch_sizes(2, 10) == (1, 2, 4, 8)


@pytest.mark.parametrize("kwargs, match", [
    ({"scale": "huge"}, "unknown scale"),
    ({"batch_sizes": [0, 4]}, "outside 1"),
    ({"batch_sizes": [4, 4]}, "twice"),
    ({"batch_sizes": ["x"]}, "not an integer"),
    ({"batch_sizes": [10 ** 7]}, "outside 1"),
    ({"seeds": 0}, "seeds"),
    ({"lr_factor": 1.0}, "factor"),
    ({"target": "val_acc=2"}, "never be reached"),
    ({"max_batch": 0}, "largest batch"),
])
def test_bad_plans_are_one_line_errors(kwargs, match):
    scale = kwargs.pop("scale", "quick")
    with pytest.raises(ConfigError, match=match) as error:
        plan_advise(scale, **kwargs)
    assert "\n" not in str(error.value)


def test_reuse_rules():
    reached = {"status": "reached", "steps": 40, "updates": 40, "budget": 100, "trace": [[0, 0.1], [40, 0.95]]}
    assert reuse(reached, 100) is reached
    assert reuse(reached, 30)["status"] == "not reached"
    missed = {"status": "not reached", "steps": None, "updates": 100, "budget": 100, "trace": [[0, 0.1], [100, 0.5]]}
    assert reuse(missed, 50)["status"] == "not reached"
    assert reuse(missed, 200) is None  # a larger budget trains again
    diverged = {"status": "diverged", "steps": None, "updates": 20, "budget": 100, "trace": [[0, 0.1]]}
    assert reuse(diverged, 100) is diverged
    assert reuse(diverged, 10)["status"] == "not reached"
    assert reuse(None, 10) is None


# ------------------------------------------------------------------------------------ end to end

TINY = RunConfig(dataset="mnist-5k", model="mlp", hidden=(16,), train_subset=256, device="cpu")


def _tiny_plan(**overrides):
    settings = {"batch_sizes": [8, 32, 128], "seeds": 2, "lr_points": 2, "target": "val_acc=0.5",
                "budget_epochs": 1, "min_updates": 12} | overrides
    plan = plan_advise("quick", TINY, **settings)
    return dataclasses.replace(plan, timing_budget_s=0.01, noise_batches=2, noise_examples=32)


@pytest.mark.slow
def test_tiny_advise_end_to_end_resumes_from_the_store(tmp_path):
    plan = _tiny_plan()
    with RunStore(tmp_path / "runs.db") as store:
        result = run_advise(plan, store, log=lambda _: None)
        # Two learning rates: the best is always on an edge, so each reached B extends its grid.
        assert result.trained_runs > 3 * 8
        extended = [r for r in result.runs if not any(
            np.isclose(r["lr"], lr) for lr in plan.learning_rates(r["batch_size"], r["momentum"]))]
        assert extended
        rows = {r["batch_size"]: r for r in result.rows}
        for row in rows.values():
            if row["reached"]:
                assert row["steps"] == pytest.approx(np.mean(row["steps_seeds"]))
                assert row["examples"] == pytest.approx(row["steps"] * row["batch_size"])
                assert row["time_to_target_s"] == pytest.approx(row["steps"] * row["time_per_update_s"])
                assert row["time_low_s"] <= row["time_to_target_s"] <= row["time_high_s"]
                assert row["lr_search"] != "values still to train"
                assert row["lr_at_edge"] == row["lr_search"].startswith("cap of")
        assert any(r["reached"] for r in result.rows)
        assert len(store.records(RUN_KIND)) == result.trained_runs
        choice = result.recommendation["choice"]
        assert choice["batch_size"] in rows and rows[choice["batch_size"]]["reached"]
        assert "train_subset=256" in result.recommendation["command"]
        assert store.get_record(RECORD_KIND, __import__("batchlab.experiments.advise.experiment", fromlist=["record_key"])
                                .record_key(plan)) is not None
        assert result.memory is None  # CPU: no memory search
        again = run_advise(plan, store, log=lambda _: None)
        assert again.trained_runs == 0
        assert [r.get("steps") for r in again.rows] == [r.get("steps") for r in result.rows]
        from batchlab.report.context import ReportContext
        from batchlab.experiments.advise.report import advise_section

        section = advise_section(ReportContext(store))
        assert section is not None and section.tables[0].rows


@pytest.mark.slow
def test_unreachable_target_is_an_error_and_writes_no_advice(tmp_path):
    plan = _tiny_plan(target="val_acc=1.0", batch_sizes=[64], min_updates=4, budget_epochs=0.5, lr_points=1,
                      seeds=1)
    with RunStore(tmp_path / "runs.db") as store:
        with pytest.raises(TargetNotReachedError, match="no configuration reached val_acc>=1") as error:
            run_advise(plan, store, log=lambda _: None)
        assert "\n" not in str(error.value)
        assert store.records(RECORD_KIND) == []
        assert len(store.records(RUN_KIND)) == 2  # λ ∈ {0, 0.9}: the outcomes themselves are complete


@pytest.mark.slow
def test_cli_advise_tiny_and_bad_input(tmp_path, capsys):
    out = tmp_path / "out"
    common = ["advise", "--hidden", "16", "--train-subset", "256", "--device", "cpu", "--seeds", "1",
              "--lr-points", "1", "--min-updates", "8", "--budget-epochs", "1", "--store", str(tmp_path / "r.db"),
              "--out", str(out)]
    assert main(common + ["--batch-size", "32", "128", "--target", "val_acc=0.5", "--format", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (out / "advise.json").exists() and (out / "advise-steps.png").exists()
    assert record["plan"]["batch_sizes"] == [32, 128]
    for argv, match in ((["--scale", "huge"], "invalid choice"), (["--batch-size", "0"], "outside 1"),
                        (["--target", "val_acc=3"], "never be reached"),
                        (["--batch-size", "64", "--target", "val_acc=1.0", "--min-updates", "2"],
                         "no configuration reached")):
        assert main(common + argv) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("batchlab: error:")]
        assert len(errors) == 1 and match in errors[0]


def test_a_traced_run_follows_batchlab_train_update_for_update():
    import torch

    from batchlab.experiments.advise.trace import NOT_REACHED, train_to_target
    from batchlab.data.identity import load_splits
    from batchlab.training import train

    config = TINY.replace(batch_size=32, lr=0.05, momentum=0.9, seed=3, epochs=2)
    splits = load_splits(config, torch.device("cpu"))
    updates = 10  # past the first epoch (256 / 32 = 8 updates), so the second permutation is used too
    outcome = train_to_target([config], splits, Target("train_loss", 1e-9), updates, ratio=2.0,
                              device=torch.device("cpu"))[0]
    assert outcome.status == NOT_REACHED and outcome.steps is None and outcome.updates == updates
    single = train(config.replace(max_updates=updates), splits=splits, progress=False, keep_weights=False)
    assert single.summary["updates"] == updates
    assert dict(outcome.trace)[updates] == pytest.approx(single.summary["train_loss"], rel=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_largest_fitting_batch_doubles_until_out_of_memory():
    import torch

    from batchlab.experiments.advise.measure import largest_fitting_batch

    found = largest_fitting_batch(RunConfig(model="mlp"), (1, 28, 28), 10, torch.device("cuda"))
    assert found["largest_batch"] >= 1024
    assert found["first_out_of_memory"] in (None, 2 * found["largest_batch"])
