"""Accuracy vs batch size from a store: grouping into panels and curves, mean ± std over seeds."""

import math
import statistics

import pytest

from batchlab.analysis.accuracy import (
    EPOCH_BUDGET,
    UPDATE_BUDGET,
    AccuracyCurve,
    AccuracyPanel,
    AccuracyPoint,
    accuracy_vs_batch_size,
    best_learning_rates,
    budget_of,
    curve_labels,
)
from batchlab.config import RunConfig, run_id

N_TRAIN = 3600


def add_run(store, *, batch_size, momentum, seed, train_acc, val_acc, test_acc=None, status="finished",
            max_updates=None, epochs=3, lr=0.05, dataset="mnist-5k"):
    config = RunConfig(dataset=dataset, model="mlp", hidden=(16,), batch_size=batch_size, momentum=momentum,
                       seed=seed, epochs=epochs, max_updates=max_updates, lr=lr, device="cpu")
    identity = run_id(config, "cpu")
    store.start_run(identity, config.to_dict() | {"device": "cpu"}, {"device_name": "test cpu"})
    resolved = N_TRAIN if batch_size == "full" else batch_size
    summary = {"batch_size": resolved, "train_acc": train_acc, "val_acc": val_acc,
               "updates": max_updates or epochs * math.ceil(N_TRAIN / resolved)}
    if test_acc is not None:
        summary["test_acc"] = test_acc
    store.finish_run(identity, status, summary)
    return identity


def test_mean_and_sample_std_over_seeds_per_batch_size(store):
    values = {8: [0.95, 0.93, 0.97], 128: [0.80, 0.84, 0.82], "full": [0.20, 0.30, 0.10]}
    for batch, accs in values.items():
        for seed, acc in enumerate(accs):
            add_run(store, batch_size=batch, momentum=0.9, seed=seed, train_acc=acc, val_acc=acc - 0.01,
                    test_acc=acc - 0.02)
    (panel,) = accuracy_vs_batch_size(store.runs())
    assert panel.budget_kind == EPOCH_BUDGET and panel.budget == 3
    (curve,) = panel.curves
    assert [p.batch_size for p in curve.points] == [8, 128, N_TRAIN]
    for point, accs in zip(curve.points, values.values()):
        assert point.n_seeds == 3 and point.seeds == [0, 1, 2]
        assert point.mean("train_acc") == pytest.approx(statistics.fmean(accs))
        assert point.std("train_acc") == pytest.approx(statistics.stdev(accs))
        assert point.mean("val_acc") == pytest.approx(statistics.fmean(accs) - 0.01)
        assert point.mean("test_acc") == pytest.approx(statistics.fmean(accs) - 0.02)
    assert curve.points[-1].full_batch and not curve.points[0].full_batch
    assert curve.points[0].updates == 3 * math.ceil(N_TRAIN / 8)


def test_single_seed_has_zero_std_and_diverged_runs_are_counted_not_averaged(store):
    add_run(store, batch_size=8, momentum=0.0, seed=0, train_acc=0.9, val_acc=0.88)
    add_run(store, batch_size=8, momentum=0.0, seed=1, train_acc=0.1, val_acc=0.1, status="diverged")
    add_run(store, batch_size=64, momentum=0.0, seed=0, train_acc=0.7, val_acc=0.69)
    store.start_run("still-running", {"dataset": "mnist-5k", "model": "mlp", "batch_size": 8}, {})
    (panel,) = accuracy_vs_batch_size(store.runs())
    first = panel.curves[0].points[0]
    assert first.n_seeds == 1 and first.n_diverged == 1
    assert first.mean("train_acc") == 0.9 and first.std("train_acc") == 0.0
    assert first.mean("test_acc") is None


def test_curves_split_by_momentum_and_budgets_split_into_panels(store):
    for momentum in (0.0, 0.9):
        for batch in (8, 64):
            add_run(store, batch_size=batch, momentum=momentum, seed=0, train_acc=0.5, val_acc=0.5)
    for batch in (8, 64):
        add_run(store, batch_size=batch, momentum=0.9, seed=0, train_acc=0.6, val_acc=0.6, max_updates=100,
                epochs=batch)  # the epoch cap differs per batch size but is no part of the update budget
    panels = accuracy_vs_batch_size(store.runs())
    kinds = [(p.budget_kind, p.budget) for p in panels]
    assert kinds == [(EPOCH_BUDGET, 3), (UPDATE_BUDGET, 100)]
    epoch_panel, update_panel = panels
    assert [c.label for c in epoch_panel.curves] == ["momentum, λ = 0", "momentum, λ = 0.9"]
    assert len(update_panel.curves) == 1 and [p.batch_size for p in update_panel.curves[0].points] == [8, 64]
    assert "100 updates" in update_panel.title


def test_labels_name_only_fields_that_differ():
    labels = curve_labels([{"optimizer": "momentum", "momentum": 0.9, "lr": 0.1, "shuffle": "epoch"},
                           {"optimizer": "momentum", "momentum": 0.9, "lr": 0.01, "shuffle": "epoch"}])
    assert labels == ["momentum, λ = 0.9, η = 0.1", "momentum, λ = 0.9, η = 0.01"]


def test_budget_of_each_kind():
    assert budget_of({"epochs": 5}) == ("epochs", 5)
    assert budget_of({"epochs": 5, "max_updates": 300}) == ("updates", 300)
    assert budget_of({"epochs": 50, "stop_patience": 3})[0] == "patience"


def test_best_learning_rate_per_batch_size_is_chosen_on_validation_and_edges_are_flagged():
    def curve(lr, vals):
        return AccuracyCurve({"lr": lr, "momentum": 0.9, "optimizer": "momentum"}, f"η = {lr}", [
            AccuracyPoint(b, False, [0, 1], 0, None, {"train_acc": 0.9, "val_acc": v, "test_acc": 0.1 + v},
                          {"train_acc": 0.0, "val_acc": 0.0, "test_acc": 0.0}) for b, v in vals])

    panel = AccuracyPanel("mnist-5k", "mlp", None, "epochs", 3, [
        curve(0.01, [(8, 0.95), (128, 0.80)]),
        curve(0.03, [(8, 0.96), (128, 0.85)]),
        curve(0.1, [(8, 0.90), (128, 0.88)]),
    ])
    tuned = best_learning_rates(panel)
    assert len(tuned.curves) == 1 and "best η per B" in tuned.curves[0].label
    small, large = tuned.curves[0].points
    assert (small.lr, small.lr_at_edge, small.mean("val_acc")) == (0.03, False, 0.96)
    assert (large.lr, large.lr_at_edge, large.mean("val_acc")) == (0.1, True, 0.88)
    assert small.lr_grid == [0.01, 0.03, 0.1]
    # The test accuracy never chooses: a better test accuracy at another η does not move the choice.
    panel.curves[0].points[0].means["test_acc"] = 0.99
    assert best_learning_rates(panel).curves[0].points[0].lr == 0.03


def test_final_loss_drop_is_the_fall_over_the_second_half_of_the_epochs():
    from batchlab.analysis.accuracy import _final_loss_drop

    history = [{"train_loss": v} for v in (2.0, 1.5, 1.2, 1.1)]
    assert _final_loss_drop(history) == pytest.approx(1.5 - 1.1)
    assert _final_loss_drop(history[:3]) == pytest.approx(1.5 - 1.2)
    assert _final_loss_drop(history[:1]) is None and _final_loss_drop(None) is None


def test_points_keep_per_seed_values_and_count_runs_that_failed_to_train():
    from batchlab.store import RunRecord

    def record(seed, status, train_acc, batch_size=8):
        config = {"dataset": "mnist-5k", "model": "mlp", "batch_size": batch_size, "seed": seed, "epochs": 3}
        return RunRecord(f"r{seed}{status}{batch_size}", status, config, {},
                         {"batch_size": batch_size, "train_acc": train_acc, "val_acc": train_acc}, "", None, None)

    records = [record(0, "finished", 0.9), record(2, "finished", 0.8), record(1, "failed to train", 0.1),
               record(3, "diverged", 0.1), record(4, "interrupted", 0.5)]
    histories = {"r0finished8": [{"train_loss": 1.0}, {"train_loss": 0.5}],
                 "r2finished8": [{"train_loss": 1.0}, {"train_loss": 0.7}]}
    (panel,) = accuracy_vs_batch_size(records, histories)
    point = panel.curves[0].points[0]
    assert point.seed_values["train_acc"] == {0: 0.9, 2: 0.8}
    assert point.n_diverged == 2 and point.seeds == [0, 2]  # failed runs counted, never averaged
    assert point.failures == {"diverged": 1, "failed to train": 1}
    assert point.mean("train_acc") == pytest.approx(0.85)
    assert point.last_epoch_drop == pytest.approx((0.5 + 0.3) / 2)


def test_best_learning_rate_says_why_the_choice_stopped():
    def curve(lr, val):
        means = {"train_acc": 0.9, "val_acc": val, "test_acc": None}
        return AccuracyCurve({"lr": lr}, f"η = {lr}", [
            AccuracyPoint(8, False, [0] if val is not None else [], 0 if val is not None else 2, None, means, {})])

    interior = best_learning_rates(AccuracyPanel("mnist-5k", "mlp", None, "epochs", 3, [
        curve(0.01, 0.8), curve(0.03, 0.9), curve(0.1, 0.85)])).curves[0].points[0]
    assert (interior.lr, interior.lr_at_edge, interior.lr_reason) == (0.03, False, "interior")
    diverged = best_learning_rates(AccuracyPanel("mnist-5k", "mlp", None, "epochs", 3, [
        curve(0.01, 0.8), curve(0.03, 0.9), curve(0.1, None)])).curves[0].points[0]
    assert (diverged.lr, diverged.lr_at_edge, diverged.lr_reason) == (0.03, False, "bounded by divergence at η = 0.1")
    edge = best_learning_rates(AccuracyPanel("mnist-5k", "mlp", None, "epochs", 3, [
        curve(0.01, 0.8), curve(0.03, 0.9)])).curves[0].points[0]
    assert (edge.lr_at_edge, edge.lr_reason) == (True, "on the high edge of the grid, not extended")
    # Knowing the grid the runs started from, the values beyond it are an extension with its cap.
    extended = best_learning_rates(AccuracyPanel("mnist-5k", "mlp", None, "epochs", 3, [
        curve(lr, 0.5 + lr) for lr in (0.01, 0.03, 0.1, 0.333, 1.11, 3.7)]), initial_grid=[0.01, 0.03, 0.1])
    point = extended.curves[0].points[0]
    assert (point.lr, point.lr_at_edge, point.lr_reason) == (3.7, True, "cap of 3 added values reached on the high side")


def test_an_eta_with_one_failed_seed_is_never_chosen_and_bounds_the_grid():
    def curve(lr, val, failed=0):
        return AccuracyCurve({"lr": lr}, f"η = {lr}", [
            AccuracyPoint(8, False, [0], failed, None, {"train_acc": 0.9, "val_acc": val}, {})])

    # η = 0.1 has the best mean over its finished seed, but its other seed failed to train.
    point = best_learning_rates(AccuracyPanel("mnist-5k", "mlp", None, "epochs", 3, [
        curve(0.01, 0.8), curve(0.03, 0.9), curve(0.1, 0.95, failed=1)])).curves[0].points[0]
    assert (point.lr, point.lr_at_edge, point.lr_reason) == (0.03, False, "bounded by divergence at η = 0.1")


def test_tuned_panels_take_each_protocols_grid_from_the_recorded_search():
    from batchlab.analysis.accuracy import tuned_panels

    def curve(lr, val):
        return AccuracyCurve({"lr": lr}, f"η = {lr}", [
            AccuracyPoint(8, False, [0], 0, None, {"train_acc": 0.9, "val_acc": val}, {})])

    panel = AccuracyPanel("mnist-5k", "mlp", None, "epochs", 3, [
        curve(lr, 1 - lr) for lr in (0.001, 0.003, 0.01, 0.03, 0.1)])
    search = {"dataset": "mnist-5k", "model": "mlp", "protocol": "epochs", "grid": [0.003, 0.01, 0.03, 0.1], "cap": 1}
    (tuned,) = tuned_panels([panel], [search])
    assert tuned.curves[0].points[0].lr_reason == "cap of 1 added value reached on the low side"
    (untold,) = tuned_panels([panel])
    assert untold.curves[0].points[0].lr_reason == "on the low edge of the grid, not extended"
    # A search that has values left to train (a sweep stopped half way) falls back to the values run.
    (half,) = tuned_panels([panel], [search | {"grid": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]}])
    assert half.curves[0].points[0].lr == 0.001
