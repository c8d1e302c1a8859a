"""The fused MLP update (batchlab.training.fused_mlp) against autograd + Momentum.step."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from batchlab.optim import Momentum
from batchlab.training.fused_mlp import FusedMomentumMLP, fused_update, mlp_layers, why_not_fused

pytestmark = pytest.mark.usefixtures("one_thread")


def lecture_like_mlp(widths=(32, 16), bias=True) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = 20
    for width in widths:
        layers += [nn.Linear(fan_in, width, bias=bias), nn.ReLU()]
        fan_in = width
    layers.append(nn.Linear(fan_in, 5, bias=bias))
    return nn.Sequential(*layers)


def general_update(model: nn.Module, optimizer: Momentum, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_update_follows_the_general_rule_over_several_updates(momentum, weight_decay, batch, bias):
    general = lecture_like_mlp(bias=bias)
    fused = copy.deepcopy(general)
    general_optimizer = Momentum(general.parameters(), lr=0.05, momentum=momentum, weight_decay=weight_decay)
    fused_optimizer = Momentum(fused.parameters(), lr=0.05, momentum=momentum, weight_decay=weight_decay)
    update = fused_update(fused, fused_optimizer, F.cross_entropy)
    assert isinstance(update, FusedMomentumMLP)
    generator = torch.Generator().manual_seed(1)
    for step in range(12):
        if step == 6:  # a schedule's new rate reaches both paths through the group
            for optimizer in (general_optimizer, fused_optimizer):
                optimizer.param_groups[0]["lr"] = 0.02
        x = torch.randn(batch, 1, 4, 5, generator=generator)
        y = torch.randint(0, 5, (batch,), generator=generator)
        expected_loss = general_update(general, general_optimizer, x, y)
        assert torch.allclose(update(x, y), expected_loss, rtol=1e-6, atol=1e-6)
    for a, b in zip(general.parameters(), fused.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
        assert b.grad is None  # no gradient tensor is ever written
    general_state, fused_state = general_optimizer.state_dict(), fused_optimizer.state_dict()
    assert general_state["state"].keys() == fused_state["state"].keys()  # λ = 0 keeps no buffer in both
    for index, entry in general_state["state"].items():
        torch.testing.assert_close(fused_state["state"][index]["momentum_buffer"], entry["momentum_buffer"],
                                   rtol=1e-6, atol=1e-6)
        assert fused_state["state"][index]["last_lr"] == entry["last_lr"]


def test_the_first_update_computes_exactly_the_general_losses():
    # Same forward operators: the loss of every batch before any update is bitwise the same.
    general = lecture_like_mlp()
    fused = copy.deepcopy(general)
    update = fused_update(fused, Momentum(fused.parameters(), lr=0.1, momentum=0.5), F.cross_entropy)
    x, y = torch.randn(3, 20), torch.tensor([0, 4, 2])
    assert torch.equal(update(x, y), F.cross_entropy(general(x), y))


def test_a_resumed_optimizer_continues_with_the_same_buffers():
    # load_state_dict replaces the group; the fused update reads the optimizer's current one.
    model = lecture_like_mlp()
    optimizer = Momentum(model.parameters(), lr=0.1, momentum=0.9)
    update = fused_update(model, optimizer, F.cross_entropy)
    x, y = torch.randn(2, 20), torch.tensor([1, 3])
    update(x, y)
    saved_model, saved_optimizer = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    update(x, y)
    expected = [p.detach().clone() for p in model.parameters()]
    model.load_state_dict(saved_model)
    optimizer.load_state_dict(saved_optimizer)
    update(x, y)
    for param, value in zip(model.parameters(), expected):
        assert torch.equal(param, value)


def test_anything_but_the_plain_rule_takes_the_general_path():
    model = lecture_like_mlp()
    assert why_not_fused(model, Momentum(model.parameters(), lr=0.1), F.cross_entropy) is None
    assert "loss" in why_not_fused(model, Momentum(model.parameters(), lr=0.1), F.mse_loss)
    assert "Nesterov" in why_not_fused(model, Momentum(model.parameters(), lr=0.1, momentum=0.9, nesterov=True),
                                       F.cross_entropy)
    assert "Nesterov or momentum correction" == why_not_fused(
        model, Momentum(model.parameters(), lr=0.1, momentum=0.9, momentum_correction=True), F.cross_entropy)
    assert "SGD" in why_not_fused(model, torch.optim.SGD(model.parameters(), lr=0.1), F.cross_entropy)
    groups = [{"params": [p]} for p in model.parameters()]
    assert "groups" in why_not_fused(model, Momentum(groups, lr=0.1), F.cross_entropy)
    tanh = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    assert mlp_layers(tanh) is None
    assert "MLP" in why_not_fused(tanh, Momentum(tanh.parameters(), lr=0.1), F.cross_entropy)
    assert mlp_layers(nn.Sequential(nn.Linear(4, 3), nn.ReLU())) is None  # ends in ReLU
    hooked = lecture_like_mlp()
    hooked[1].register_forward_hook(lambda *args: None)
    assert "hooks" in why_not_fused(hooked, Momentum(hooked.parameters(), lr=0.1), F.cross_entropy)
    frozen = lecture_like_mlp()
    frozen[1].bias.requires_grad_(False)
    assert "frozen" in why_not_fused(frozen, Momentum(frozen.parameters(), lr=0.1), F.cross_entropy)
    assert fused_update(tanh, Momentum(tanh.parameters(), lr=0.1), F.cross_entropy) is None
