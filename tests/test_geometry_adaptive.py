"""Adaptive sharpness (Kwon et al. 2021) against a closed form and under layer rescaling, and the
optimizer's stability bound."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from batchlab.errors import ConfigError
from batchlab.geometry import (
    adaptive_sharpness,
    adaptive_sharpness_of_objective,
    keskar_sharpness,
    stability_bound,
    top_eigenvalues,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("eta", [0.0, 0.1])
def test_separable_quadratic_reaches_the_scaled_box_corner(eta):
    # f(w) = ½ Σ a_i w_i², convex and separable: over |u_i| ≤ ρ the maximum of f(x + (|x| + η₀)u)
    # is at u_i = ρ·sign(x_i), i.e. ½ Σ a_i (|x_i| + ρ(|x_i| + η₀))².
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(20, generator=generator, dtype=torch.float64) + 0.5
    x = torch.randn(20, generator=generator, dtype=torch.float64)
    rho = 0.05
    result = adaptive_sharpness_of_objective(lambda w: (float(0.5 * (a * w * w).sum()), a * w), x, rho=rho, eta=eta)
    expected = float(0.5 * (a * (x.abs() + rho * (x.abs() + eta)) ** 2).sum())
    assert result.max_loss == pytest.approx(expected, rel=1e-12)
    assert result.value == pytest.approx(expected - float(0.5 * (a * x * x).sum()), rel=1e-10)
    assert (result.rho, result.eta, result.iterations) == (rho, eta, 10)
    assert "Kwon et al. 2021" in result.definition


def relu_mlp() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A 4-12-12-3 ReLU network in float64, trained 300 full-batch steps on 80 seeded points."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 3)).double()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(80, 4, generator=generator, dtype=torch.float64)
    y = (x[:, 0] > 0).long() + (x[:, 1] * x[:, 2] > 0.3).long()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    for _ in range(300):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, x, y


def rescaled(model: nn.Module, c: float) -> nn.Module:
    """The first layer's weights and bias times c, the second layer's weights divided by c: the
    same function (ReLU(cz) = c·ReLU(z) for c > 0), other parameters."""
    copy_ = copy.deepcopy(model)
    with torch.no_grad():
        copy_[0].weight.mul_(c)
        copy_[0].bias.mul_(c)
        copy_[2].weight.div_(c)
    return copy_


@pytest.fixture(scope="module")
def network():
    return relu_mlp()


@pytest.mark.parametrize("c", [4.0, 3.0])
def test_layer_rescaling_leaves_adaptive_sharpness_unchanged_but_not_keskar_or_lambda_max(network, c):
    model, x, y = network
    other = rescaled(model, c)
    torch.testing.assert_close(other(x), model(x), rtol=1e-12, atol=1e-12)  # the same function
    before = adaptive_sharpness(model, x, y, rho=0.05)
    after = adaptive_sharpness(other, x, y, rho=0.05)
    assert before.value > 0
    if c == 4.0:  # a power of two: every product is the same float, the search the same steps
        assert after.value == before.value
    else:
        assert after.value == pytest.approx(before.value, rel=1e-6)
    # Keskar's box ε(|x_i| + 1) and the Hessian are not invariant: both move by far more.
    keskar_before, keskar_after = (keskar_sharpness(m, x, y, epsilon=1e-3).value for m in (model, other))
    assert abs(keskar_after - keskar_before) > 0.1 * keskar_before
    top_before, top_after = (top_eigenvalues(m, x, y, k=1, tol=1e-6).values[0] for m in (model, other))
    assert abs(top_after - top_before) > 0.1 * top_before


def test_a_positive_eta_trades_exact_invariance_for_moving_zero_weights(network):
    model, x, y = network
    with torch.no_grad():
        model_with_zero = copy.deepcopy(model)
        model_with_zero[4].bias.zero_()
    frozen = adaptive_sharpness(model_with_zero, x, y, rho=0.05, eta=0.0)
    moving = adaptive_sharpness(model_with_zero, x, y, rho=0.05, eta=0.1)
    assert moving.value > frozen.value  # the zero biases may move, and the box is larger
    other = rescaled(model_with_zero, 3.0)
    assert adaptive_sharpness(other, x, y, rho=0.05, eta=0.1).value != pytest.approx(moving.value, rel=1e-6)


def test_model_is_left_unchanged_and_bad_options_are_config_errors(network):
    model, x, y = network
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    adaptive_sharpness(model, x, y, rho=0.01, iterations=2)
    assert model.training and all(torch.equal(b, p) for b, p in zip(before, model.parameters()))
    for options, match in (({"rho": 0}, "ρ"), ({"rho": -1.0}, "ρ"), ({"eta": -0.1}, "η₀"), ({"iterations": 0}, "iterations")):
        with pytest.raises(ConfigError, match=match):
            adaptive_sharpness(model, x, y, **options)


def test_stability_bounds_of_gradient_descent_and_momentum():
    assert stability_bound("sgd", 0.1).value == pytest.approx(20.0)
    assert stability_bound("momentum", 0.1, 0.0).rule == "2/η (gradient descent)"
    momentum = stability_bound("momentum", 0.01, 0.9)
    assert momentum.value == pytest.approx(380.0) and momentum.rule.startswith("2(1 + λ)/η")
    assert stability_bound("torch-sgd", 0.1, 0.9).value == pytest.approx(38.0)
    assert stability_bound("momentum", 0.1, 0.9, nesterov=True).value == pytest.approx(2 * 1.9 / (2.8 * 0.1))
    assert stability_bound("momentum", 0.1, 0.9, weight_decay=1e-3).value == pytest.approx(38.0 - 1e-3)
    adam = stability_bound("adam", 1e-3)
    assert adam.value is None and adam.rule.startswith("does not apply")
    with pytest.raises(ConfigError, match="stability bound"):
        stability_bound("momentum", 0.1, 1.0)
    with pytest.raises(ConfigError, match="learning rate"):
        stability_bound("sgd", float("nan"))


@pytest.mark.parametrize(("momentum", "nesterov"), [(0.0, False), (0.5, False), (0.9, False), (0.9, True)])
def test_momentum_on_a_quadratic_diverges_just_above_the_bound(momentum, nesterov):
    # m ← λm − ηaθ, θ ← θ + m (Nesterov: θ ← θ + λm − ηaθ) on f = ½aθ²: bounded at 0.99 of the
    # bound, growing at 1.01.
    lr = 0.1
    bound = stability_bound("momentum", lr, momentum, nesterov=nesterov).value

    def final_size(curvature: float) -> float:
        theta, velocity = 1.0, 0.0
        for _ in range(3000):
            step = lr * curvature * theta
            velocity = momentum * velocity - step
            theta += momentum * velocity - step if nesterov else velocity
        return abs(theta)

    assert final_size(0.99 * bound) < 1.0
    assert final_size(1.01 * bound) > 1e3
    assert np.isfinite(bound)
