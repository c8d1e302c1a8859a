"""The second-order test on constructed points, and the saddle demonstration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from batchlab.errors import ConfigError
from batchlab.geometry import (
    DENSE_LIMIT,
    LOCAL_MAXIMUM,
    LOCAL_MINIMUM,
    NOT_CRITICAL,
    SADDLE_POINT,
    classify,
    classify_point,
    saddle_demo,
    saddle_network,
)


pytestmark = pytest.mark.usefixtures("one_thread")


class BinaryLogistic(nn.Module):
    """Logits (xᵀw + b, 0): cross-entropy is logistic regression, strictly convex on non-separable data."""

    def __init__(self, inputs: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(inputs, dtype=torch.float64))
        self.b = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x):
        score = x @ self.w + self.b
        return torch.stack([score, torch.zeros_like(score)], dim=1)


class NormLogit(nn.Module):
    """Logits (Σw², 0) for every input: with all labels 0, L(w) = softplus(−Σw²) peaks at w = 0 with H = −I."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(size, dtype=torch.float64))

    def forward(self, x):
        score = (self.w**2).sum().expand(len(x))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def overlapping_data(n: int = 80, inputs: int = 3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, inputs, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 2, (n,), generator=generator)  # random labels: not separable, a finite minimum
    return x, y


def minimize(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=500, tolerance_grad=1e-13, tolerance_change=0, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    optimizer.step(closure)


@pytest.mark.slow
def test_minimum_of_logistic_regression_is_a_strict_local_minimum():
    x, y = overlapping_data()
    model = BinaryLogistic(3)
    minimize(model, x, y)
    report = classify_point(model, x, y, grad_tol=1e-8)
    assert report.kind == LOCAL_MINIMUM
    assert not report.degenerate
    assert report.gradient_norm < 1e-8
    assert report.smallest_eigenvalue > report.eig_tol > 0
    assert report.escape_direction is None and report.loss_after_escape is None


def test_minimum_of_softmax_regression_is_degenerate():
    # Adding one vector to every class's weights leaves softmax unchanged: a flat direction.
    x, y = overlapping_data(seed=1)
    model = nn.Linear(3, 2).double()
    minimize(model, x, y)
    report = classify_point(model, x, y, grad_tol=1e-8)
    assert report.kind == LOCAL_MINIMUM
    assert report.degenerate
    assert abs(report.smallest_eigenvalue) <= report.eig_tol
    assert "degenerate" in report.note


def test_zero_weights_of_a_two_layer_net_are_a_saddle_with_an_escape():
    x, y = overlapping_data(seed=2)
    x[y == 0] += 1.0  # distinct class means give the cross-layer curvature
    model = saddle_network(3, 2, 2)
    report = classify_point(model, x, y, escape_step=1e-2)
    assert report.kind == SADDLE_POINT
    assert report.gradient_norm == 0.0
    # H = [[0, C], [Cᵀ, 0]]: the spectrum is symmetric about zero.
    assert report.smallest_eigenvalue == pytest.approx(-report.largest_eigenvalue, rel=1e-10)
    assert report.loss_after_escape < report.loss
    # A small step follows the second-order prediction ½·λ_min·t².
    change = report.loss_after_escape - report.loss
    assert change == pytest.approx(report.predicted_change, rel=1e-3)
    assert float(report.escape_direction.norm()) == pytest.approx(1.0)
    # The weights themselves are untouched.
    assert all(float(p.detach().abs().max()) == 0.0 for p in model.parameters())


def test_saddle_found_by_lanczos_on_a_larger_net():
    generator = torch.Generator().manual_seed(3)
    y = torch.arange(60) % 3
    x = torch.randn(60, 6, generator=generator, dtype=torch.float64) + torch.eye(3, 6, dtype=torch.float64)[y] * 2
    model = saddle_network(6, 8, 3)
    assert sum(p.numel() for p in model.parameters()) > DENSE_LIMIT
    report = classify_point(model, x, y, tol=1e-8)
    assert report.method == "lanczos"
    assert report.kind == SADDLE_POINT
    reference = _dense_hessian(model, x, y)
    eigenvalues = np.linalg.eigvalsh(reference)
    assert report.smallest_eigenvalue == pytest.approx(eigenvalues[0], rel=1e-6)
    assert report.largest_eigenvalue == pytest.approx(eigenvalues[-1], rel=1e-6)
    assert report.loss_after_escape < report.loss


def _dense_hessian(model, x, y) -> np.ndarray:
    from torch.func import functional_call

    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(flat):
        params = {n: c.view(s) for n, c, s in zip(names, flat.split(sizes), shapes)}
        return nn.functional.cross_entropy(functional_call(model, params, (x,)), y)

    return torch.autograd.functional.hessian(loss, theta).numpy()


def test_peak_of_a_concave_loss_is_a_local_maximum():
    x = torch.randn(10, 2, dtype=torch.float64)
    y = torch.zeros(10, dtype=torch.long)
    report = classify_point(NormLogit(5), x, y)
    assert report.kind == LOCAL_MAXIMUM
    assert not report.degenerate
    # L = softplus(−Σw²): ∇²L(0) = −2·σ(0)·I = −I.
    assert report.largest_eigenvalue == pytest.approx(-1.0, rel=1e-10)
    assert report.smallest_eigenvalue == pytest.approx(-1.0, rel=1e-10)
    assert report.loss == pytest.approx(math.log(2))
    assert report.loss_after_escape < report.loss


def test_random_point_is_not_critical():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    x, y = overlapping_data()
    report = classify_point(model, x, y)
    assert report.kind == NOT_CRITICAL
    assert report.gradient_norm > report.grad_tol
    assert report.escape_direction is None
    assert set(report.to_dict()) >= {"kind", "gradient_norm", "largest_eigenvalue", "smallest_eigenvalue", "grad_tol", "eig_tol"}


@pytest.mark.parametrize(
    ("gradient", "largest", "smallest", "kind", "degenerate"),
    [
        (0.0, 2.0, 0.5, LOCAL_MINIMUM, False),
        (0.0, 2.0, 0.05, LOCAL_MINIMUM, True),  # λ_min within ±eig_tol
        (0.0, 2.0, -0.05, LOCAL_MINIMUM, True),  # a tiny negative counts as zero
        (0.0, 2.0, -0.5, SADDLE_POINT, False),
        (0.0, -0.5, -2.0, LOCAL_MAXIMUM, False),
        (0.0, 0.05, -2.0, LOCAL_MAXIMUM, True),
        (0.0, 0.0, 0.0, LOCAL_MINIMUM, True),  # flat everywhere: inconclusive, noted
        (0.2, 2.0, -0.5, NOT_CRITICAL, False),
        (0.1, 2.0, 0.5, LOCAL_MINIMUM, False),  # grad_tol is inclusive
    ],
)
def test_rule(gradient, largest, smallest, kind, degenerate):
    assert classify(gradient, largest, smallest, grad_tol=0.1, eig_tol=0.1)[:2] == (kind, degenerate)


def test_saddle_demo_gradient_descent_stalls_and_the_escape_lowers_the_loss():
    demo = saddle_demo()
    assert demo.report.kind == SADDLE_POINT
    assert demo.descent_displacement == 0.0
    assert demo.loss_after_descent == demo.initial_loss == pytest.approx(math.log(2))
    assert demo.loss_after_escape < demo.initial_loss
    assert demo.loss_after_escape_and_descent < demo.loss_after_escape
    assert demo.report.smallest_eigenvalue < 0 < demo.report.largest_eigenvalue


def test_bad_tolerances_are_config_errors():
    x, y = overlapping_data()
    model = saddle_network(3, 2, 2)
    with pytest.raises(ConfigError, match="grad_tol"):
        classify_point(model, x, y, grad_tol=0)
    with pytest.raises(ConfigError, match="eig_tol"):
        classify_point(model, x, y, eig_tol=-1)
    with pytest.raises(ConfigError, match="escape_step"):
        classify_point(model, x, y, escape_step=float("nan"))
    with pytest.raises(ConfigError, match="n_examples"):
        saddle_demo(n_examples=1)
