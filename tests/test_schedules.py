"""Learning-rate schedules: closed forms at chosen updates, and one-line errors for bad settings."""

import math

import pytest

from batchlab.errors import ConfigError
from batchlab.optim.schedules import (
    Schedule,
    akiba_sgd_weight,
    akiba_slow_start_factor,
    cosine_decay_lr,
    epochs_to_updates,
    linear_warmup_lr,
    scaled_lr,
    step_decay_factor,
)


def test_constant_schedule_is_the_base_rate_everywhere():
    schedule = Schedule(base_lr=0.1, batch_size=64, total_updates=10)
    assert schedule.rates() == [0.1] * 10


def test_linear_and_sqrt_scaling_against_a_base_batch():
    # Goyal et al.: η = 0.1 · B / 256, so B = 8192 gives 3.2.
    assert scaled_lr(0.1, 8192, 256, "linear") == pytest.approx(3.2)
    assert scaled_lr(0.1, 1024, 256, "sqrt") == pytest.approx(0.2)
    assert scaled_lr(0.1, 64, 256, "sqrt") == pytest.approx(0.05)
    assert scaled_lr(0.1, 1024, 256, "none") == 0.1
    assert Schedule(base_lr=0.1, batch_size=8192, base_batch=256, scaling="linear", total_updates=5).peak_lr == pytest.approx(3.2)


def test_goyal_warmup_ramps_linearly_from_the_base_rate_to_k_times_it():
    # k = 32 (B = 8192 vs 256), W = 100 updates: lr(t) = η + (kη − η) t / W.
    schedule = Schedule(base_lr=0.1, batch_size=8192, base_batch=256, scaling="linear", warmup_updates=100, total_updates=300)
    assert schedule.lr_at(0) == pytest.approx(0.1)
    assert schedule.lr_at(25) == pytest.approx(0.1 + (3.2 - 0.1) * 25 / 100)
    assert schedule.lr_at(99) == pytest.approx(0.1 + 3.1 * 0.99)
    assert schedule.lr_at(100) == pytest.approx(3.2)
    assert schedule.lr_at(299) == pytest.approx(3.2)
    steps = [schedule.lr_at(t + 1) - schedule.lr_at(t) for t in range(99)]
    assert max(steps) - min(steps) < 1e-12  # a constant increment per update


def test_warmup_from_zero():
    schedule = Schedule(base_lr=0.1, batch_size=1024, base_batch=256, scaling="linear", warmup_updates=4,
                        warmup_start="zero", total_updates=8)
    assert [round(schedule.lr_at(t), 12) for t in range(6)] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.4]
    assert linear_warmup_lr(3, 4, 0.0, 0.4) == pytest.approx(0.3)


def test_step_decay_multiplies_by_gamma_at_each_milestone():
    schedule = Schedule(base_lr=1.0, batch_size=32, total_updates=90, decay="step", milestones=(30, 60, 80), gamma=0.1)
    assert schedule.lr_at(29) == 1.0
    assert schedule.lr_at(30) == pytest.approx(0.1)
    assert schedule.lr_at(59) == pytest.approx(0.1)
    assert schedule.lr_at(60) == pytest.approx(0.01)
    assert schedule.lr_at(89) == pytest.approx(0.001)
    assert step_decay_factor(45, (30, 60), 0.5) == 0.5


def test_step_decay_after_a_warmup_counts_milestones_from_the_start():
    schedule = Schedule(base_lr=0.1, batch_size=512, base_batch=256, scaling="linear", warmup_updates=10,
                        total_updates=40, decay="step", milestones=(20,), gamma=0.5)
    assert schedule.lr_at(5) == pytest.approx(0.15)
    assert schedule.lr_at(10) == pytest.approx(0.2)
    assert schedule.lr_at(20) == pytest.approx(0.1)


def test_cosine_decay_closed_form():
    schedule = Schedule(base_lr=1.0, batch_size=8, total_updates=110, warmup_updates=10, decay="cosine", floor_lr=0.1)
    assert schedule.lr_at(10) == pytest.approx(1.0)
    assert schedule.lr_at(60) == pytest.approx(0.1 + 0.9 * 0.5)  # half way: cos(π/2) = 0
    assert schedule.lr_at(35) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2)
    assert schedule.lr_at(109) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * 99 / 100)) / 2)
    assert cosine_decay_lr(100, 0, 100, 1.0, 0.0) == pytest.approx(0.0, abs=1e-15)
    rates = schedule.rates()[10:]
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_akiba_slow_start_on_a_90_epoch_run_falls_on_the_papers_epochs():
    per_epoch = 10
    total = 90 * per_epoch
    schedule = Schedule(base_lr=0.1, batch_size=32768, base_batch=256, scaling="linear", total_updates=total, decay="slow-start")
    peak = 0.1 * 32768 / 256
    assert schedule.lr_at(0) == pytest.approx(0.5 * peak)
    assert schedule.lr_at(40 * per_epoch - 1) == pytest.approx(0.5 * peak)
    assert schedule.lr_at(40 * per_epoch) == pytest.approx(0.075 * peak)
    assert schedule.lr_at(70 * per_epoch) == pytest.approx(0.01 * peak)
    assert schedule.lr_at(85 * per_epoch - 1) == pytest.approx(0.01 * peak)
    assert schedule.lr_at(85 * per_epoch) == pytest.approx(0.001 * peak)
    # A shorter run keeps the shape: boundaries at the same fractions.
    assert akiba_slow_start_factor(44, 90 * 1) == 0.075 and akiba_slow_start_factor(39, 90) == 0.5


def test_akiba_sgd_weight_is_smooth_and_reaches_one():
    assert akiba_sgd_weight(10.0) == pytest.approx(0.5)
    assert akiba_sgd_weight(0.0) == pytest.approx(0.5 * math.exp(-4.0))
    assert akiba_sgd_weight(11.0) == pytest.approx(0.7)
    assert akiba_sgd_weight(12.5) == 1.0 and akiba_sgd_weight(30.0) == 1.0
    # C¹ at β_center: equal values and slopes (1/β_period) on both sides.
    h = 1e-6
    left = (akiba_sgd_weight(10.0) - akiba_sgd_weight(10.0 - h)) / h
    right = (akiba_sgd_weight(10.0 + h) - akiba_sgd_weight(10.0)) / h
    assert left == pytest.approx(0.2, rel=1e-4) and right == pytest.approx(0.2, rel=1e-4)
    assert akiba_sgd_weight(12.5 - h) == pytest.approx(1.0, abs=1e-6)
    assert all(0 < akiba_sgd_weight(e / 10) <= 1 for e in range(300))


def test_epochs_to_updates():
    assert epochs_to_updates(5, 32) == 160
    assert epochs_to_updates(0.5, 15) == 8


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(warmup_updates=11), r"warm-up of 11 updates is longer than the run of 10 updates; allowed: 0 … 10"),
        (dict(warmup_updates=-1), r"warm-up of -1 updates; allowed: a whole number ≥ 0"),
        (dict(base_lr=-0.1), r"base learning rate -0.1 is negative"),
        (dict(base_lr=float("nan")), r"base learning rate must be a finite number"),
        (dict(batch_size=0), r"batch size 0 must be a whole number ≥ 1"),
        (dict(base_batch=-256), r"base batch -256 must be a whole number ≥ 1"),
        (dict(scaling="square"), r"unknown learning-rate scaling 'square'; allowed: none, linear, sqrt"),
        (dict(decay="exp"), r"unknown learning-rate decay 'exp'; allowed: none, step, cosine, slow-start"),
        (dict(warmup_start="one"), r"unknown warm-up start 'one'; allowed: base, zero"),
        (dict(decay="step"), r"step decay needs at least one milestone"),
        (dict(decay="step", milestones=(5, 3)), r"milestones \[5, 3\] must be strictly increasing"),
        (dict(decay="step", milestones=(10,)), r"must be whole updates in 1 … 9"),
        (dict(decay="step", milestones=(5,), gamma=1.5), r"gamma 1.5 is outside \(0, 1\]"),
        (dict(milestones=(5,)), r"milestones are given but the decay is 'none'"),
        (dict(decay="cosine", floor_lr=0.2), r"cosine floor 0.2 is outside \[0, peak rate 0.1\]"),
        (dict(decay="cosine", warmup_updates=10), r"cosine decay needs updates after the warm-up"),
    ],
)
def test_bad_settings_are_one_line_config_errors(settings, message):
    arguments = dict(base_lr=0.1, batch_size=32, total_updates=10) | settings
    with pytest.raises(ConfigError, match=message) as caught:
        Schedule(**arguments)
    assert "\n" not in str(caught.value)


def test_updates_outside_the_run_are_refused():
    schedule = Schedule(base_lr=0.1, batch_size=32, total_updates=10)
    for update in (-1, 10):
        with pytest.raises(ValueError, match=r"outside the run's 0 … 9"):
            schedule.lr_at(update)


def test_schedule_is_frozen_and_hashable():
    schedule = Schedule(base_lr=0.1, batch_size=32, total_updates=10, decay="step", milestones=[5])
    assert schedule.milestones == (5,)
    assert hash(schedule) == hash(Schedule(base_lr=0.1, batch_size=32, total_updates=10, decay="step", milestones=(5,)))
    with pytest.raises(AttributeError):
        schedule.base_lr = 0.2  # type: ignore[misc]
