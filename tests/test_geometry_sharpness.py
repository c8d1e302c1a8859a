"""Keskar's Metric 2.1 against closed forms, on models, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from batchlab.errors import ConfigError
from batchlab.geometry import keskar_sharpness, pseudo_inverse_apply, random_subspace, sharpness_of_objective


pytestmark = pytest.mark.usefixtures("one_thread")


EPSILON = 1e-3


def point_and_weights(n: int = 30, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    weights = torch.rand(n, generator=generator, dtype=torch.float64) + 0.5
    x = torch.randn(n, generator=generator, dtype=torch.float64)
    return x, weights


def phi(max_value: float, value: float) -> float:
    return 100 * (max_value - value) / (1 + value)


@pytest.mark.parametrize("epsilon", [1e-3, 5e-4])
def test_full_space_quadratic_matches_the_box_corner(epsilon):
    # f(w) = ½ Σ a_i w_i² is convex and separable: over |z_i| ≤ ε(|x_i| + 1) its maximum is at the
    # corner z_i = sign(x_i)·ε(|x_i| + 1), i.e. ½ Σ a_i (|x_i| + ε(|x_i| + 1))².
    x, a = point_and_weights()

    def quadratic(w):
        return float(0.5 * (a * w * w).sum()), a * w

    result = sharpness_of_objective(quadratic, x, epsilon=epsilon)
    expected_max = float(0.5 * (a * (x.abs() + epsilon * (x.abs() + 1)) ** 2).sum())
    value = float(0.5 * (a * x * x).sum())
    assert result.full_space and result.p == 30
    assert result.loss == pytest.approx(value, rel=1e-14)
    assert result.max_loss == pytest.approx(expected_max, rel=1e-12)
    assert result.value == pytest.approx(phi(expected_max, value), rel=1e-9)
    assert 1 <= result.iterations_run <= result.iterations == 10
    assert result.evaluations >= 1


def test_random_subspace_quadratic_in_the_projected_coordinates():
    # f(w) = ½ Σ d_j ((A⁺w)_j)²: since A⁺A = I_p, f(x + Ay) = ½ Σ d_j (u_j + y_j)² with u = A⁺x,
    # maximized over |y_j| ≤ ε(|u_j| + 1) at ½ Σ d_j (|u_j| + ε(|u_j| + 1))². A⁺ here comes from numpy.
    x, _ = point_and_weights()
    p, seed = 5, 3
    a_matrix = random_subspace(30, p, seed=seed, dtype=torch.float64).numpy()
    pinv = torch.from_numpy(np.linalg.pinv(a_matrix))
    d = torch.linspace(0.5, 2.0, p, dtype=torch.float64)

    def projected_quadratic(w):
        u = pinv @ w
        return float(0.5 * (d * u * u).sum()), pinv.T @ (d * u)

    result = sharpness_of_objective(projected_quadratic, x, epsilon=EPSILON, subspace_dim=p, seed=seed)
    u = (pinv @ x).abs()
    expected_max = float(0.5 * (d * (u + EPSILON * (u + 1)) ** 2).sum())
    assert not result.full_space and result.p == p
    assert result.max_loss == pytest.approx(expected_max, rel=1e-12)


def test_random_subspace_linear_objective():
    # f(w) = cᵀw: max over the box of cᵀ(x + Ay) = cᵀx + Σ_j |(Aᵀc)_j|·ε(|(A⁺x)_j| + 1).
    x, _ = point_and_weights()
    c = torch.randn(30, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    p, seed = 8, 11
    a_matrix = random_subspace(30, p, seed=seed, dtype=torch.float64).numpy()
    u = np.linalg.pinv(a_matrix) @ x.numpy()

    result = sharpness_of_objective(lambda w: (float(c @ w), c.clone()), x, epsilon=EPSILON, subspace_dim=p, seed=seed)
    expected = float(c @ x) + float(np.sum(np.abs(a_matrix.T @ c.numpy()) * EPSILON * (np.abs(u) + 1)))
    assert result.max_loss == pytest.approx(expected, rel=1e-12)


def test_random_subspace_is_seeded_gaussian_with_unit_columns():
    n = 2000
    first = random_subspace(n, 50, seed=4)
    assert torch.equal(first, random_subspace(n, 50, seed=4))
    assert not torch.equal(first, random_subspace(n, 50, seed=5))
    assert abs(float(first.mean())) * n**0.5 < 0.01
    assert float(first.std()) * n**0.5 == pytest.approx(1.0, abs=0.01)  # N(0, 1/n)
    torch.testing.assert_close(first.norm(dim=0), torch.ones(50), rtol=0, atol=0.08)


def test_both_pseudo_inverse_routes_agree():
    a_matrix = random_subspace(500, 20, seed=0, dtype=torch.float64)
    x = torch.randn(500, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    direct = pseudo_inverse_apply(a_matrix, x)
    normal_equations = pseudo_inverse_apply(a_matrix, x, pinv_limit=0)
    reference = np.linalg.lstsq(a_matrix.numpy(), x.numpy(), rcond=None)[0]
    np.testing.assert_allclose(direct.numpy(), reference, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(normal_equations.numpy(), reference, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def trained_mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(120, 5, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(200):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, x, y


def test_sharpness_of_a_model_is_consistent_and_leaves_it_alone(trained_mlp):
    model, x, y = trained_mlp
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    small = keskar_sharpness(model, x, y, epsilon=5e-4, chunk_size=50)
    large = keskar_sharpness(model, x, y, epsilon=1e-3, chunk_size=50)
    assert model.training
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert large.loss == pytest.approx(float(nn.functional.cross_entropy(model(x), y).detach()), rel=1e-5)
    assert 0 < small.value < large.value  # the bigger box contains the smaller one
    assert large.value == pytest.approx(phi(large.max_loss, large.loss), rel=1e-9)
    subspace = keskar_sharpness(model, x, y, epsilon=1e-3, subspace_dim=10, seed=2)
    again = keskar_sharpness(model, x, y, epsilon=1e-3, subspace_dim=10, seed=2)
    assert subspace == again
    assert subspace.p == 10 and 0 <= subspace.value
    # A 10-dimensional random subspace sees far less of the ascent than the full space.
    assert subspace.value < large.value


def test_bad_options_are_config_errors(trained_mlp):
    model, x, y = trained_mlp
    n = sum(p.numel() for p in model.parameters())
    with pytest.raises(ConfigError, match="epsilon"):
        keskar_sharpness(model, x, y, epsilon=0)
    with pytest.raises(ConfigError, match="epsilon"):
        keskar_sharpness(model, x, y, epsilon=-1e-3)
    with pytest.raises(ConfigError, match=f"1 … {n}"):
        keskar_sharpness(model, x, y, subspace_dim=n + 1)
    with pytest.raises(ConfigError, match="iterations"):
        keskar_sharpness(model, x, y, iterations=0)
