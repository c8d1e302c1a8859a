"""The generalization-gap experiment measures only at minima, from paired initial weights, with one setting for SB and LB."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from batchlab.config import RunConfig
from batchlab.data.identity import load_splits
from batchlab.experiments.gap import experiment
from batchlab.experiments.gap.experiment import GapPlan, NetworkPlan, run_gap
from batchlab.experiments.gap.minima import initial_weights, settle_at_minimum
from batchlab.store import RunStore
from batchlab.training import loop, train

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = NetworkPlan("f1", "F1", "mlp", "mnist-5k", (8,), sb=20, lb_fraction=0.2, sb_epochs=1, lb_epochs=1,
                   stop_patience=0, sharpness_examples=50, landscape_examples=50, landscape_test_examples=50,
                   train_subset=200, curvature_examples=50, trace_samples=2)


def _plan(network: NetworkPlan = TINY, **changes) -> GapPlan:
    return GapPlan(scale="quick", seeds=1, networks=(network,), epsilons=(1e-3,), device="cpu", **changes)


def test_sb_and_lb_of_a_seed_start_from_the_same_weights_and_the_rebuild_reproduces_them(tmp_path, monkeypatch):
    started = []
    original = loop.initial_model_and_optimizer

    def spy(*args, **kwargs):
        model, optimizer = original(*args, **kwargs)
        started.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return model, optimizer

    monkeypatch.setattr(loop, "initial_model_and_optimizer", spy)
    splits = load_splits(RunConfig(dataset="mnist-5k", val_fraction=0.0, train_subset=200))
    with RunStore(tmp_path / "runs.db") as store:
        configs = [TINY.config(regime, size, 3, "cpu", None) for regime, size in (("SB", 20), ("LB", 40))]
        results = [train(config, store=store, splits=splits) for config in configs]
        monkeypatch.setattr(loop, "initial_model_and_optimizer", original)
        sb, lb = started
        assert sb.keys() == lb.keys() and all(torch.equal(sb[k], lb[k]) for k in sb)
        other_seed = TINY.config("SB", 20, 4, "cpu", None)
        rebuilt_other, _ = initial_weights(other_seed, splits, "cpu", None)
        assert not all(torch.equal(rebuilt_other.state_dict()[k], sb[k]) for k in sb)
        for config, result, state in zip(configs, results, started):
            rebuilt, check = initial_weights(config, splits, "cpu", result.summary["initial_loss"])
            assert all(torch.equal(rebuilt.state_dict()[k], state[k]) for k in state)
            assert check.reproduced
        _, wrong = initial_weights(other_seed, splits, "cpu", results[0].summary["initial_loss"])
        assert not wrong.reproduced  # another seed's θ₀ gives another first-batch loss


def test_both_regimes_train_with_the_same_settings():
    plan = replace(TINY, optimizer="momentum", lr=0.05, momentum=0.9, lb_epochs=3)
    sb, lb = plan.config("SB", 20, 0, "cpu", None).to_dict(), plan.config("LB", 40, 0, "cpu", None).to_dict()
    assert {k for k in sb if sb[k] != lb[k]} == {"batch_size", "epochs"}  # the epoch cap only bounds the run
    assert (sb["optimizer"], sb["lr"], sb["momentum"]) == ("momentum", 0.05, 0.9)
    gap = experiment.plan_gap("quick", optimizer="momentum", lr=0.03)
    assert all((n.optimizer, n.lr, n.momentum) == ("momentum", 0.03, 0.9) for n in gap.networks)


def test_a_point_not_at_a_minimum_reports_the_note_not_a_number(tmp_path):
    with RunStore(tmp_path / "runs.db") as store:
        result = run_gap(_plan(), store)
    (network,) = result.networks
    sb, lb = network.runs
    # One seed, one θ₀: its gradient norm is the same for SB and LB (each model's own batch-norm statistics).
    assert sb.minimum["check"]["initial_gradient_norm"] == pytest.approx(lb.minimum["check"]["initial_gradient_norm"])
    for run in network.runs:
        assert run.minimum["at_minimum"] is False and run.sharpness == [] and run.curvature is None
        assert run.minimum["check"]["gradient_norm"] > 0.01 * run.minimum["check"]["initial_gradient_norm"]
    assert network.line is None
    rows = result.minima.rows
    assert len(rows) == 2 and all(row[6].startswith("not at a minimum (‖∇f‖ = ") for row in rows)
    assert "‖∇f‖ ≤ 1 % of ‖∇f(θ₀)‖" in result.minima.caption and "‖∇f‖ ≤ 1 % of ‖∇f(θ₀)‖" in result.sharpness.caption
    assert result.sharpness.rows == ()
    assert "0 of 1 SB and 0 of 1 LB points" in result.paragraph


def test_training_on_continues_the_run_with_its_optimizer_and_settings(tmp_path):
    splits = load_splits(RunConfig(dataset="mnist-5k", val_fraction=0.0, train_subset=200))
    config = replace(TINY, optimizer="adam", lr=1e-3, target_train_acc=0.5).config("LB", 40, 0, "cpu", None)
    with RunStore(tmp_path / "runs.db") as store:
        first = train(config, store=store, splits=splits, keep_state=True)
        state = settle_at_minimum(store, config, first.run_id, first.summary["initial_loss"], splits, "cpu",
                                  train_on_epochs=2, train_on_rounds=2)
        assert state.rounds == 2 and state.extra_epochs == 4 and state.status == "finished"
        rounds = [h["run_id"] for h in state.history]
        assert rounds[0] == first.run_id and rounds[-1] == state.measured_run_id
        for previous, run in zip(rounds, rounds[1:]):
            continued = RunConfig.from_dict(store.get(run).config)
            assert continued.continue_from == previous and continued.target_train_acc is None
            assert continued.replace(continue_from=None, epochs=config.epochs, target_train_acc=0.5) == config
        assert [h["extra_epochs"] for h in state.history] == [0, 2, 4]
        # The chain is the run trained on without a stop: Adam's moments carried, not restarted.
        whole = train(config.replace(epochs=5, target_train_acc=None), store=store, splits=splits)
        last, expected = store.load_weights(state.measured_run_id), store.load_weights(whole.run_id)
        assert all(torch.allclose(last[k], expected[k], rtol=0, atol=1e-6) for k in expected)


def test_at_a_minimum_every_measure_is_taken_with_the_stability_bound(tmp_path):
    momentum = replace(TINY, optimizer="momentum", lr=0.1, momentum=0.9, sb_epochs=8, lb_epochs=8, train_on_epochs=5,
                       train_on_rounds=2)
    with RunStore(tmp_path / "runs.db") as store:
        # A loose rule (99 %), so these one-epoch points count as minima and every measure runs.
        result = run_gap(_plan(momentum, minimum_fraction=0.99), store)
    (network,) = result.networks
    for run in network.runs:
        assert run.minimum["at_minimum"] and len(run.sharpness) == 1
        assert run.curvature["lambda_max"] > 0 and run.curvature["trace"] is not None
        assert run.curvature["stability_bound"] == pytest.approx(2 * 1.9 / momentum.lr)
        assert run.curvature["adaptive_sharpness"] >= 0
    assert network.line is not None
    assert all(not row[6].startswith("not at") for row in result.minima.rows)
    assert "2(1 + λ)/η" in result.minima.columns[9]


def test_the_standard_scale_is_the_full_fashion_mnist_with_the_conv_net_and_five_paired_seeds():
    from batchlab.errors import ConfigError

    plan = experiment.plan_gap("standard")
    (network,) = plan.networks
    assert (network.model, network.dataset, network.train_subset) == ("cnn", "fashion-mnist", None)
    assert (network.sb, network.lb_fraction, network.optimizer, network.lr) == (256, 0.1, "adam", 1e-3)
    assert plan.seeds == 5 and plan.reasons and plan.minimum_fraction == 0.01
    assert network.target_train_acc == experiment.STANDARD_TARGET_TRAIN_ACC  # equal training accuracy
    assert experiment.STANDARD_EPOCHS_ESTIMATE == plan.seeds * (network.sb_epochs + network.lb_epochs)
    with pytest.raises(ConfigError, match="unknown network 'f1' at scale standard; allowed: c1"):
        experiment.plan_gap("standard", networks=["f1"])


def test_the_initial_gradient_of_a_batch_normalized_net_is_the_same_for_both_regimes(tmp_path):
    with RunStore(tmp_path / "runs.db") as store:
        result = run_gap(_plan(replace(TINY, model="keskar-f1", sb_epochs=2, lb_epochs=2)), store)
    sb, lb = result.networks[0].runs
    assert sb.minimum["check"]["initial_gradient_norm"] == pytest.approx(lb.minimum["check"]["initial_gradient_norm"])
