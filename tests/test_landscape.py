"""Keskar's parametric line and Li et al.'s filter-normalized contour, on tiny models and data."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from batchlab.data import TensorSplit
from batchlab.errors import ConfigError
from batchlab.geometry.landscape import (
    alpha_grid,
    filter_normalized_direction,
    grid_points,
    interpolated_state,
    loss_contour,
    parametric_line,
    recompute_bn_statistics,
)
from batchlab.models.registry import build_model
from batchlab.training.loop import evaluate


pytestmark = pytest.mark.usefixtures("one_thread")


def split(n: int, seed: int) -> TensorSplit:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 4, 4, generator=generator)
    y = (x.flatten(1).sum(dim=1) > 0).long() + 2 * (x[:, 0, 0, 0] > 0).long()
    return TensorSplit(x, y)


def bn_model(seed: int) -> nn.Module:
    """keskar-f1 shrunk to two hidden layers of 6: linear → batch norm → ReLU, twice."""
    torch.manual_seed(seed)
    model = build_model("keskar-f1", (1, 4, 4), 4, (6, 6))
    # Give the running statistics values of their own, as training would.
    model.train()
    with torch.no_grad():
        model(split(64, seed + 100).x)
    return model.eval()


def test_alpha_grid_hits_zero_and_one_exactly():
    alphas = alpha_grid(-1.0, 2.0, 31)
    assert len(alphas) == 31 and alphas[0] == -1.0 and alphas[-1] == 2.0
    assert 0.0 in alphas and 1.0 in alphas
    with pytest.raises(ConfigError, match="allowed"):
        alpha_grid(2.0, -1.0, 31)
    with pytest.raises(ConfigError, match="allowed"):
        alpha_grid(-1.0, 2.0, 1)


def test_line_reproduces_both_minima_exactly_and_leaves_models_alone():
    a, b = bn_model(0), bn_model(1)
    a.train()  # the caller's mode must survive
    before_a = {k: v.clone() for k, v in a.state_dict().items()}
    train, test = split(50, 1), split(30, 2)
    line = parametric_line(a, b, train, test, alphas=[-1.0, 0.0, 0.5, 1.0, 2.0], bn="interpolate")

    assert a.training and not b.training
    assert all(torch.equal(before_a[k], v) for k, v in a.state_dict().items())
    assert line.at(0.0).train_loss == evaluate(a, train)[0]
    assert line.at(0.0).test_acc == evaluate(a, test)[1]
    assert line.at(1.0).train_loss == evaluate(b, train)[0]
    assert line.at(1.0).test_loss == evaluate(b, test)[0]
    assert line.at(0.5).train_loss != line.at(0.0).train_loss
    assert line.has_batch_norm and line.train_examples == 50 and line.test_examples == 30
    assert a.training  # evaluate() restored it too


def test_batch_norm_statistics_are_interpolated_with_the_weights():
    a, b = bn_model(0).state_dict(), bn_model(1).state_dict()
    mixed, clamped = interpolated_state(a, b, 0.5)
    for name in ("2.running_mean", "2.running_var", "1.weight", "5.running_mean", "5.running_var"):
        assert torch.allclose(mixed[name], (a[name] + b[name]) / 2)
    assert torch.equal(mixed["2.num_batches_tracked"], a["2.num_batches_tracked"])
    assert clamped == 0


def test_extrapolated_negative_variances_are_clamped_and_counted():
    a, b = bn_model(0).state_dict(), bn_model(1).state_dict()
    b = {k: v.clone() for k, v in b.items()}
    b["2.running_var"][:2] = a["2.running_var"][:2] / 4  # at α = 2: 2·(v/4) − v = −v/2 < 0
    mixed, clamped = interpolated_state(a, b, 2.0)
    assert clamped >= 2
    assert (mixed["2.running_var"] >= 0).all()
    assert torch.equal(mixed["2.running_var"][:2], torch.zeros(2))


def test_recompute_measures_the_statistics_from_a_data_pass_and_restores_the_model():
    model = bn_model(0)
    momenta = [m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    data = split(40, 3).x
    old_mean = model[2].running_mean.clone()
    recompute_bn_statistics(model, data, chunk_size=40)

    first_linear = model[1]
    pre_activation = first_linear(data.flatten(1))
    assert torch.allclose(model[2].running_mean, pre_activation.mean(dim=0), atol=1e-6)
    assert torch.allclose(model[2].running_var, pre_activation.var(dim=0, unbiased=True), atol=1e-5)
    assert not torch.allclose(model[2].running_mean, old_mean)
    assert [m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm1d)] == momenta
    assert not model.training and not any(m.training for m in model.modules())


def test_recompute_mode_changes_the_line_and_is_deterministic():
    a, b = bn_model(0), bn_model(1)
    train, test = split(60, 1), split(30, 2)
    interpolated = parametric_line(a, b, train, test, alphas=[0.5], bn="interpolate")
    recomputed = parametric_line(a, b, train, test, alphas=[0.5], bn="recompute", seed=3)
    again = parametric_line(a, b, train, test, alphas=[0.5], bn="recompute", seed=3)
    assert recomputed.points[0].train_loss != interpolated.points[0].train_loss
    assert recomputed.points == again.points
    assert parametric_line(a, b, train, test, alphas=[0.5], seed=3).bn == "recompute"  # the default
    with pytest.raises(ConfigError, match="interpolate, recompute"):
        parametric_line(a, b, train, test, bn="average")


def test_different_architectures_are_refused():
    a = bn_model(0)
    torch.manual_seed(0)
    other = build_model("keskar-f1", (1, 4, 4), 4, (6, 7))
    with pytest.raises(ConfigError, match="same model"):
        parametric_line(a, other, split(10, 1), split(10, 2), alphas=[0.0])


def test_filter_normalized_direction_matches_every_filter_norm_and_zeroes_biases():
    torch.manual_seed(0)
    model = build_model("cnn", (1, 8, 8), 3, (5,))
    direction = filter_normalized_direction(model, torch.Generator().manual_seed(0))
    assert set(direction) == {name for name, _ in model.named_parameters()}
    for name, parameter in model.named_parameters():
        d = direction[name]
        assert d.shape == parameter.shape
        if parameter.dim() <= 1:
            assert torch.count_nonzero(d) == 0, name
        else:
            assert torch.allclose(d.flatten(1).norm(dim=1), parameter.detach().flatten(1).norm(dim=1), rtol=1e-5), name
            assert not torch.allclose(d, parameter.detach())


def test_batch_norm_parameters_are_zero_in_the_directions():
    model = bn_model(0)
    direction = filter_normalized_direction(model, torch.Generator().manual_seed(1))
    assert torch.count_nonzero(direction["2.weight"]) == 0 and torch.count_nonzero(direction["2.bias"]) == 0


def test_contour_centre_is_the_minimum_and_the_model_is_untouched():
    model = bn_model(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = split(40, 1)
    grid = loss_contour(model, data, steps=5, span=0.5, seed=2)
    assert len(grid.a) == 5 and len(grid.loss) == 5 and all(len(row) == 5 for row in grid.loss)
    assert grid.a[2] == 0.0 and grid.b[2] == 0.0
    assert grid.loss[2][2] == grid.center_loss == evaluate(model, data)[0]
    assert max(max(row) for row in grid.loss) > grid.center_loss
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert loss_contour(model, data, steps=5, span=0.5, seed=2) == grid
    assert grid_points(21, 1.0)[10] == 0.0
    with pytest.raises(ConfigError, match="allowed"):
        grid_points(1, 1.0)
