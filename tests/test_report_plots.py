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
