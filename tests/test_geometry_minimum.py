"""The reasons for the "may not be a minimum" warning of ``batchlab hessian`` and ``sharpness``."""

from __future__ import annotations

import math

import torch

from batchlab.geometry import (
    accuracy_reason,
    classify,
    curvature_reason,
    not_a_minimum_warning,
    sharpness_of_objective,
    slope_reason,
)


def classification(gradient_norm, largest, smallest):
    kind, degenerate, note = classify(gradient_norm, largest, smallest, grad_tol=1e-3, eig_tol=1e-6)
    return {"kind": kind, "degenerate": degenerate, "note": note}


def test_curvature_reason_follows_the_second_order_test():
    assert curvature_reason(classification(1e-5, 2.0, 0.1)) is None
    assert "saddle point" in curvature_reason(classification(1e-5, 2.0, -0.5))
    assert "not critical" in curvature_reason(classification(0.1, 2.0, 0.1))


def quadratic_with_slope(slope):
    """½‖w‖² + slope·Σw at w = 0, five dimensions: the gradient is slope·(1, …, 1)."""
    return sharpness_of_objective(
        lambda w: (float(0.5 * (w * w).sum() + slope * w.sum()), w + slope), torch.zeros(5, dtype=torch.float64),
        epsilon=1e-2,
    ).to_dict()


def test_slope_reason_only_when_the_slope_makes_the_rise():
    # Box radius 1e-2: curvature adds ½·5·1e-4 = 2.5e-4, the slope 5·1e-2·slope.
    at_minimum = quadratic_with_slope(1e-6)
    assert math.isclose(at_minimum["first_order_gain"], 5e-8)
    assert slope_reason(at_minimum) is None
    steep = quadratic_with_slope(1e-2)  # slope term 5e-4 of a rise of 7.5e-4
    reason = slope_reason(steep)
    assert reason is not None and "67%" in reason and "full space" in reason
    assert math.isclose(steep["gradient_norm"], 1e-2 * 5**0.5)


def test_accuracy_reason_compares_the_last_epoch_with_the_best():
    def metrics(*accuracies):
        return [{"epoch": e, "train_acc": a, "train_loss": 0.1} for e, a in enumerate(accuracies)]

    assert accuracy_reason(metrics(0.5, 0.9, 0.89)) is None  # within two points
    reason = accuracy_reason(metrics(0.5, 0.95, 0.80))
    assert reason == "training accuracy 0.800 at the last epoch (2) vs 0.950 at epoch 1"
    assert accuracy_reason([{"epoch": 0, "train_loss": 1.0}]) is None
    assert accuracy_reason(metrics(0.9, math.nan)) is None


def test_one_line_or_nothing():
    assert not_a_minimum_warning([None, None]) is None
    line = not_a_minimum_warning(["a", None, "b"])
    assert line == "warning: this point may not be a minimum: a; b"
