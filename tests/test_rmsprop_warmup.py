"""Akiba et al.'s RMSprop warm-up: RMSprop at the start, the lecture's momentum after the hand-over."""

import math

import pytest
import torch

from batchlab.optim import Momentum
from batchlab.optim.rmsprop_warmup import RMSpropWarmup
from batchlab.optim.schedules import akiba_sgd_weight

STEPS = 40


def iterates(make_optimizer, seed=0):
    generator = torch.Generator().manual_seed(seed)
    theta = torch.nn.Parameter(torch.randn(3, 4, generator=generator, dtype=torch.float64))
    optimizer = make_optimizer([theta])
    history = []
    for _ in range(STEPS):
        theta.grad = torch.randn(3, 4, generator=generator, dtype=torch.float64)
        optimizer.step()
        history.append(theta.detach().clone())
    return history


def test_after_the_hand_over_it_is_the_lectures_momentum():
    ours = iterates(lambda p: RMSpropWarmup(p, lr=0.05, updates_per_epoch=10, momentum=0.9, beta_center=-10.0, beta_period=5.0))
    lecture = iterates(lambda p: Momentum(p, lr=0.05, momentum=0.9))
    for a, b in zip(ours, lecture):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


def test_before_the_hand_over_it_is_rmsprop_with_momentum():
    # α_SGD = ½ exp(−2·10⁶/5) is exactly 0.0 in floating point: torch.optim.RMSprop's rule.
    settings = dict(momentum=0.9, eps=1e-8)
    ours = iterates(lambda p: RMSpropWarmup(p, lr=0.5, updates_per_epoch=1, lr_rmsprop=1e-3, rmsprop_decay=0.95,
                                            beta_center=1e6, **settings))
    reference = iterates(lambda p: torch.optim.RMSprop(p, lr=1e-3, alpha=0.95, **settings))
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_single_step_at_the_center_mixes_both_halves():
    theta = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    optimizer = RMSpropWarmup([theta], lr=0.1, updates_per_epoch=4, momentum=0.9, lr_rmsprop=0.01,
                              rmsprop_decay=0.99, eps=1e-8, beta_center=0.0)
    g = torch.tensor([0.5, 2.0], dtype=torch.float64)
    theta.grad = g.clone()
    optimizer.step()  # e = 0 = β_center: α_SGD = ½
    s = 0.01 * g * g
    v = -(0.1 * 0.5 + 0.01 * 0.5 / (s.sqrt() + 1e-8)) * g
    torch.testing.assert_close(theta.detach(), torch.tensor([1.0, -2.0], dtype=torch.float64) + v, rtol=0, atol=1e-15)
    theta.grad = g.clone()
    optimizer.step()  # e = 1/4
    alpha = 0.5 + 0.25 / 5.0  # the linear piece: ½ + (e − β_center)/β_period
    assert alpha == pytest.approx(akiba_sgd_weight(0.25, 0.0, 5.0))
    assert akiba_sgd_weight(-0.25, 0.0, 5.0) == pytest.approx(0.5 * math.exp(-0.1))
    s = 0.99 * s + 0.01 * g * g
    v = 0.9 * v - (0.1 * alpha + 0.01 * (1 - alpha) / (s.sqrt() + 1e-8)) * g
    expected = torch.tensor([1.0, -2.0], dtype=torch.float64) - (0.1 * 0.5 + 0.01 * 0.5 / ((0.01 * g * g).sqrt() + 1e-8)) * g + v
    torch.testing.assert_close(theta.detach(), expected, rtol=0, atol=1e-14)


def test_state_dict_resume_keeps_the_epoch_count():
    straight = iterates(lambda p: RMSpropWarmup(p, lr=0.05, updates_per_epoch=3, beta_center=2.0, beta_period=4.0))
    generator = torch.Generator().manual_seed(0)
    theta = torch.nn.Parameter(torch.randn(3, 4, generator=generator, dtype=torch.float64))
    optimizer = RMSpropWarmup([theta], lr=0.05, updates_per_epoch=3, beta_center=2.0, beta_period=4.0)
    for _ in range(STEPS // 2):
        theta.grad = torch.randn(3, 4, generator=generator, dtype=torch.float64)
        optimizer.step()
    resumed_theta = torch.nn.Parameter(theta.detach().clone())
    resumed = RMSpropWarmup([resumed_theta], lr=0.05, updates_per_epoch=3, beta_center=2.0, beta_period=4.0)
    resumed.load_state_dict(optimizer.state_dict())
    for _ in range(STEPS // 2, STEPS):
        resumed_theta.grad = torch.randn(3, 4, generator=generator, dtype=torch.float64)
        resumed.step()
    assert torch.equal(resumed_theta.detach(), straight[-1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(lr=-1.0), r"Invalid learning rate value: -1.0"),
        (dict(updates_per_epoch=0), r"Invalid updates_per_epoch value: 0"),
        (dict(momentum=1.0), r"Invalid momentum value: 1.0"),
        (dict(rmsprop_decay=-0.1), r"Invalid rmsprop_decay value: -0.1"),
        (dict(eps=0.0), r"Invalid eps value: 0.0"),
        (dict(beta_period=0.0), r"Invalid beta_period value: 0.0"),
        (dict(lr_rmsprop=-1e-3), r"Invalid lr_rmsprop value: -0.001"),
    ],
)
def test_invalid_arguments_are_named(kwargs, message):
    arguments = dict(lr=0.1, updates_per_epoch=10) | kwargs
    with pytest.raises(ValueError, match=message):
        RMSpropWarmup([torch.nn.Parameter(torch.zeros(2))], **arguments)
