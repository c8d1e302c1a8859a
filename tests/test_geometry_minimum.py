"""The reasons for the "may not be a minimum" warning of ``batchlab hessian`` and ``sharpness``."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from batchlab.errors import ConfigError
from batchlab.geometry import (
    MINIMUM_GRADIENT_FRACTION,
    accuracy_reason,
    check_minimum,
    classify,
    curvature_reason,
    minimum_rule,
    not_a_minimum_warning,
    not_at_minimum_note,
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


def test_the_minimum_rule_compares_with_one_percent_of_the_initial_gradient():
    at = minimum_rule(0.017, 2.0)
    assert at.at_minimum and at.fraction == MINIMUM_GRADIENT_FRACTION == 0.01
    assert at.threshold == pytest.approx(0.02)
    assert not_at_minimum_note(at) is None
    assert "1 % of ‖∇f(θ₀)‖ = 0.02" in at.rule and "2" in at.rule
    away = minimum_rule(0.11, 2.0)
    assert not away.at_minimum
    assert not_at_minimum_note(away) == "not at a minimum (‖∇f‖ = 0.11 > 0.02 = 1 % of ‖∇f(θ₀)‖)"
    assert minimum_rule(0.11, 2.0, fraction=0.1).at_minimum
    assert minimum_rule(0.02, 2.0).at_minimum  # the boundary counts as a minimum
    assert away.to_dict() == {"at_minimum": False, "gradient_norm": 0.11, "initial_gradient_norm": 2.0,
                              "fraction": 0.01, "threshold": pytest.approx(0.02)}
    for bad in (0.0, 1.0, -0.1, True):
        with pytest.raises(ConfigError, match="fraction"):
            minimum_rule(0.1, 1.0, fraction=bad)
    with pytest.raises(ConfigError, match="gradient norm"):
        minimum_rule(math.nan, 1.0)


@pytest.mark.usefixtures("one_thread")
def test_check_minimum_measures_both_full_batch_gradients():
    torch.manual_seed(0)
    initial = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    x = torch.randn(64, 3, dtype=torch.float64)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).long()  # not linearly separable: a finite minimum
    model = copy.deepcopy(initial)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(300):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.zero_grad()
    check = check_minimum(model, initial, x, y, chunk_size=10)
    initial_loss = F.cross_entropy(initial(x), y)
    expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(initial_loss, list(initial.parameters()))]).norm()
    assert check.initial_gradient_norm == pytest.approx(float(expected), rel=1e-9)
    assert check.at_minimum and check.gradient_norm < check.threshold
    flat = torch.cat([p.detach().reshape(-1) for p in initial.parameters()])
    assert check_minimum(model, flat, x, y, chunk_size=10) == check
    assert not check_minimum(initial, initial, x, y).at_minimum  # θ₀ itself: ‖∇f‖ = ‖∇f(θ₀)‖


@pytest.mark.usefixtures("one_thread")
def test_check_minimum_takes_theta0_gradient_with_theta0s_own_batch_norm_statistics():
    torch.manual_seed(0)
    initial = nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2)).double()
    x = torch.randn(48, 3, dtype=torch.float64) * 3 + 1  # far from BN's initial statistics (0, 1)
    y = (x[:, 0] > 1).long()
    model = copy.deepcopy(initial)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for _ in range(50):  # moves both the weights and the running statistics
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    check = check_minimum(model, initial, x, y)
    initial.eval()
    own = torch.autograd.grad(F.cross_entropy(initial(x), y), list(initial.parameters()))
    expected = float(torch.cat([g.reshape(-1) for g in own]).norm())
    assert check.initial_gradient_norm == pytest.approx(expected, rel=1e-9)
    # What swapping θ₀'s parameters into the trained model (its running statistics) gives: another number.
    mixed = copy.deepcopy(model).eval()
    with torch.no_grad():
        for p, q in zip(mixed.parameters(), initial.parameters()):
            p.copy_(q)
    wrong = torch.autograd.grad(F.cross_entropy(mixed(x), y), list(mixed.parameters()))
    assert float(torch.cat([g.reshape(-1) for g in wrong]).norm()) != pytest.approx(expected, rel=1e-3)
    flat = torch.cat([p.detach().reshape(-1) for p in initial.parameters()])
    with pytest.raises(ConfigError, match="running statistics"):
        check_minimum(model, flat, x, y)
    # Batch statistics (train mode) do not read the buffers, so a flat θ₀ is allowed there.
    assert check_minimum(model, flat, x, y, mode="train", chunk_size=None) == check_minimum(
        model, initial, x, y, mode="train", chunk_size=None)
