"""The accuracy figure: panels wrap two to a row, and a panel with one batch size says so."""

from __future__ import annotations

import pytest

from batchlab.analysis.accuracy import AccuracyCurve, AccuracyPanel, AccuracyPoint
from batchlab.report.plots import MAX_PANEL_COLUMNS, plot_accuracy_panel


def point(batch_size: int, accuracy: float) -> AccuracyPoint:
    return AccuracyPoint(batch_size=batch_size, full_batch=False, seeds=[0], n_diverged=0, updates=None,
                         means={"train_acc": accuracy, "val_acc": accuracy - 0.05}, stds={"train_acc": None, "val_acc": None})


def panel(*curves: list[int]) -> AccuracyPanel:
    return AccuracyPanel("mnist-5k", "mlp", [8], "epochs", 1, [
        AccuracyCurve({"momentum": i}, f"curve {i}", [point(b, 0.9 - 0.01 * k) for k, b in enumerate(sizes)])
        for i, sizes in enumerate(curves)
    ])


def visible_axes(figure):
    return [ax for ax in figure.axes if ax.get_visible()]


def test_one_batch_size_is_said_and_the_axis_stays_narrow():
    figure = plot_accuracy_panel(panel([64], [16, 64, 256]))
    single, several = visible_axes(figure)
    texts = [t.get_text() for t in single.texts]
    assert any("one batch size only" in t for t in texts)
    assert single.get_xlim() == pytest.approx((64 / 1.5, 64 * 1.5))
    assert not any("one batch size only" in t.get_text() for t in several.texts)
    low, high = several.get_xlim()
    assert low < 16 and high > 256


def test_panels_wrap_at_most_two_to_a_row():
    assert MAX_PANEL_COLUMNS == 2
    figure = plot_accuracy_panel(panel(*([[16, 64]] * 5)))
    axes = visible_axes(figure)
    assert len(axes) == 5
    columns = {round(ax.get_position().x0, 3) for ax in axes}
    assert len(columns) == 2


def test_a_batch_size_where_every_seed_diverged_stays_on_the_axis_and_the_layout_holds():
    import io
    import warnings

    diverged = AccuracyPoint(batch_size=8, full_batch=False, seeds=[], n_diverged=2, updates=None,
                             means={"train_acc": None, "val_acc": None}, stds={"train_acc": None, "val_acc": None},
                             failures={"diverged": 2})
    figure = plot_accuracy_panel(AccuracyPanel("mnist-5k", "mlp", [8], "epochs", 1, [
        AccuracyCurve({"lr": 0.1}, "η = 0.1", [diverged, point(128, 0.99)])]))
    (ax,) = visible_axes(figure)
    low, high = ax.get_xlim()
    assert low < 8 and high > 128
    assert any(t.get_text() == "2 runs left out:\n2 diverged" for t in ax.texts)
    assert not any("one batch size only" in t.get_text() for t in ax.texts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when the constrained layout collapses
        figure.savefig(io.BytesIO(), format="png")


def test_failed_runs_are_left_out_of_the_figure_and_counted_in_its_note():
    """A diverged and a failed-to-train run (finite numbers, at chance) never reach the plotted means;
    the figure names both."""
    from batchlab.analysis.accuracy import accuracy_vs_batch_size
    from batchlab.report.plots import accuracy_left_out_note
    from batchlab.store import RunRecord

    def record(seed, status, accuracy, batch_size):
        config = {"dataset": "mnist-5k", "model": "mlp", "batch_size": batch_size, "seed": seed, "epochs": 3}
        return RunRecord(f"r{seed}{batch_size}", status, config, {},
                         {"batch_size": batch_size, "train_acc": accuracy, "val_acc": accuracy}, "", None, None)

    records = [record(0, "finished", 0.9, 8), record(1, "failed to train", 0.1, 8),
               record(0, "finished", 0.8, 128), record(1, "diverged", 0.1, 128), record(2, "finished", 0.7, 128)]
    (panel,) = accuracy_vs_batch_size(records)
    assert accuracy_left_out_note(panel) == "2 runs left out: 1 diverged, 1 failed to train"
    figure = plot_accuracy_panel(panel)
    (ax,) = visible_axes(figure)
    plotted = [line.get_ydata() for line in ax.lines if len(line.get_ydata()) == 2]
    assert any(list(y) == pytest.approx([0.9, 0.75]) for y in plotted)  # the failed runs' 0.1 is in no mean
    assert "2 runs left out: 1 diverged, 1 failed to train of the means" in figure.get_suptitle()
    assert {t.get_text() for t in ax.texts} >= {"1 run left out:\n1 failed to train", "1 run left out:\n1 diverged"}
