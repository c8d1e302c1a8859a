"""Mini-batch vs full-batch gradients at a point: exact pieces checked against explicit loops, and the
lecture's claim (batch gradients do not vanish where the full gradient does) on a tiny network."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from batchlab.analysis import gradients
from batchlab.analysis.noise import (
    batch_indices,
    finite_population_factor,
    measure_noise,
    two_batch_noise_scale,
)
from batchlab.data import epoch_permutation
from batchlab.errors import ConfigError


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_problem(n=96, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 2, 3, generator=generator)
    y = torch.randint(0, 3, (n,), generator=generator)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    return model, x, y


def explicit_per_example_grads(model, x, y):
    rows = []
    for xn, yn in zip(x, y):
        model.zero_grad()
        F.cross_entropy(model(xn.unsqueeze(0)), yn.unsqueeze(0)).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double())
    model.zero_grad()
    return torch.stack(rows)


def train_full_batch(model, x, y, steps=400, lr=0.5):
    """Plain full-batch gradient descent towards a critical point of the training loss."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


def test_full_gradient_is_the_mean_of_per_example_gradients_and_chunking_is_exact():
    model, x, y = tiny_problem()
    per_example = explicit_per_example_grads(model, x, y)
    loss, full = gradients.loss_and_gradient(model, x, y, chunk=7)
    assert torch.allclose(full, per_example.mean(0), atol=1e-6)
    assert loss == pytest.approx(float(F.cross_entropy(model(x), y).detach()), rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("fast_path", [True, False])
def test_per_example_squared_norms_match_explicit_gradients(monkeypatch, fast_path):
    model, x, y = tiny_problem(n=20)
    if not fast_path:
        monkeypatch.setattr(gradients, "_linear_only_layers", lambda model: None)
    norms = gradients.per_example_sq_norms(model, x, y, chunk=6)
    expected = explicit_per_example_grads(model, x, y).pow(2).sum(1)
    assert torch.allclose(norms, expected, rtol=1e-5, atol=1e-9)


def test_goodfellow_path_only_for_networks_made_of_linear_layers():
    conv = nn.Sequential(nn.Conv2d(1, 2, 2), nn.Flatten(), nn.Linear(4, 3))
    assert gradients._linear_only_layers(conv) is None
    assert gradients._linear_only_layers(tiny_problem()[0]) is not None


def test_batches_are_slices_of_the_training_permutation():
    batches = batch_indices(10, 4, 4, seed=3)
    first_epoch = epoch_permutation(10, 0, 3, "epoch")
    second_epoch = epoch_permutation(10, 1, 3, "epoch")
    assert [b.tolist() for b in batches] == [first_epoch[0:4].tolist(), first_epoch[4:8].tolist(),
                                             second_epoch[0:4].tolist(), second_epoch[4:8].tolist()]
    with pytest.raises(ConfigError):
        batch_indices(10, 11, 1, seed=0)


def test_two_batch_estimator_recovers_the_signal_and_the_trace_from_exact_expectations():
    n, grad_sq, trace = 1000, 0.25, 40.0
    expected = {b: grad_sq + finite_population_factor(b, n) * trace for b in (16, 256)}
    est_grad_sq, est_trace = two_batch_noise_scale(16, expected[16], 256, expected[256], n)
    assert est_grad_sq == pytest.approx(grad_sq)
    assert est_trace == pytest.approx(trace)
    assert finite_population_factor(n, n) == 0.0
    assert finite_population_factor(1, 10**9) == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        two_batch_noise_scale(256, 1.0, 16, 2.0, n)


def test_batch_gradients_do_not_vanish_near_a_full_batch_critical_point():
    model, x, y = tiny_problem()
    train_full_batch(model, x, y)
    weights_before = [p.detach().clone() for p in model.parameters()]
    model.train()
    report = measure_noise(model, x, y, [4, 24], n_batches=12, seed=0, scan_batches=3, scan_points=9)
    # Still the caller's model: same weights, same mode.
    assert all(torch.equal(a, b) for a, b in zip(weights_before, model.parameters()))
    assert model.training

    assert report.full_grad_norm < 0.05
    small, large = report.batch_sizes
    assert min(small.grad_norms) > 3 * report.full_grad_norm
    assert min(large.grad_norms) > report.full_grad_norm
    assert small.noise > large.noise > 0

    # tr Σ from per-example gradients equals the covariance's trace computed explicitly.
    per_example = explicit_per_example_grads(model, x, y)
    centred = per_example - per_example.mean(0)
    assert report.scale.exact_trace == pytest.approx(float(centred.pow(2).sum(1).mean()), rel=1e-4)
    assert small.predicted_noise == pytest.approx(finite_population_factor(4, len(y)) * report.scale.exact_trace)

    scan = report.scan
    middle = len(scan.alphas) // 2
    assert scan.alphas[middle] == pytest.approx(0.0, abs=1e-12)
    assert scan.full_loss[middle] == pytest.approx(report.full_loss, rel=1e-5)
    # d is batch 1's normalized gradient, so batch 1's slope along d is its gradient norm,
    # and a finite difference of the scanned curve agrees with it.
    assert scan.batch_slopes[0] == pytest.approx(small.grad_norms[0], rel=1e-5)
    h = scan.alphas[middle + 1] - scan.alphas[middle]
    numeric = (scan.batch_losses[0][middle + 1] - scan.batch_losses[0][middle - 1]) / (2 * h)
    assert numeric == pytest.approx(scan.batch_slopes[0], rel=0.05)
    assert abs(scan.full_slope) < 0.2 * max(abs(s) for s in scan.batch_slopes)


def test_report_round_trips_through_json_data():
    model, x, y = tiny_problem(n=32)
    report = measure_noise(model, x, y, [4, 16], n_batches=3, scan_batches=1, scan_points=5, point={"which": "start"})
    again = type(report).from_dict(report.to_dict())
    assert again.to_dict() == report.to_dict()
    assert math.isfinite(again.scale.two_batch_trace)


def test_bad_batch_sizes_are_one_line_errors():
    model, x, y = tiny_problem(n=16)
    with pytest.raises(ConfigError, match="outside 1 … 16"):
        measure_noise(model, x, y, [32])
    with pytest.raises(ConfigError):
        measure_noise(model, x, y, [])
