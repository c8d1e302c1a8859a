"""Learning-rate schedules as pure functions of the update index.

Updates are counted from 0: ``lr_at(t)`` is the rate used by the (t + 1)-th update of a run of
``total_updates`` updates. Every function here is pure (no state, no optimizer), so a training
loop, a packed trainer and a test all get the same number for the same update.

Rules and sources:

* **Scaling against a base batch** (Goyal et al. 2017, "Accurate, Large Minibatch SGD: Training
  ImageNet in 1 Hour", §2.1): a rate η_base tuned for batch B_base becomes
  η = η_base · B / B_base (linear scaling rule, "multiply the minibatch size by k, multiply the
  learning rate by k"), or η = η_base · √(B / B_base) (square-root scaling, which keeps the
  variance of the update constant; Krizhevsky 2014, Hoffer et al. 2017).
* **Gradual warm-up** (Goyal et al. 2017, §2.2): "start from a learning rate of η and increment
  it by a constant amount at each iteration such that it reaches η̂ = kη after 5 epochs". Over
  W updates from a start rate η_0 to the target η̂::

      lr(t) = η_0 + (η̂ − η_0) · t / W      for 0 ≤ t < W,   lr(W) = η̂.

  Goyal's η_0 is the small-batch rate η = η̂/k (here: the base rate η_base before scaling);
  ``warmup_start="zero"`` starts from 0 instead, as many later recipes do.
* **Step decay** (Goyal et al. 2017: ÷10 at epochs 30, 60 and 80 of 90): the rate is
  multiplied by γ at each milestone, lr(t) = η̂ · γ^{#{milestones m : m ≤ t}}. Milestones are
  counted from the start of the run (warm-up included), as in Goyal's epochs.
* **Cosine decay** (Loshchilov & Hutter 2017, SGDR, without restarts): after the warm-up,
  lr(t) = η_min + (η̂ − η_min) · (1 + cos(π · (t − W) / (T − W))) / 2, from η̂ at t = W down
  to (just above) the floor η_min at the last update t = T − 1.
* **Slow start** (Akiba, Suzuki & Fukuda 2017, "Extremely Large Minibatch SGD: Training
  ResNet-50 on ImageNet in 15 Minutes"): Goyal's step schedule with a lower start that
  lasts longer. For their 90-epoch run at B = 32k, with η̂ = 0.1 · B/256 the linearly scaled
  rate, the multipliers of η̂ are 0.5 for epochs [0, 40), 0.075 for [40, 70), 0.01 for
  [70, 85) and 0.001 for [85, 90). What is implemented: those four multipliers, with the
  boundaries at the same *fractions* of the run (40/90, 70/90, 85/90 of ``total_updates``),
  so a shorter run keeps the shape; on a 90-epoch run they fall on Akiba's epochs (to the
  update). The multipliers were read from reimplementations of the recipe that set these
  constants; the paper describes the shape ("slow start": half the rate, the first drop later
  than Goyal's). There is no gradual warm-up in Akiba's recipe: its start is handled by the
  RMSprop warm-up (:class:`batchlab.optim.rmsprop_warmup.RMSpropWarmup`), whose mixing weight
  is :func:`akiba_sgd_weight`.
* **RMSprop → momentum SGD hand-over** (Akiba et al. 2017, "RMSprop warm-up"): the update mixes an RMSprop
  step and a momentum-SGD step, with the SGD weight a smooth function of the epoch e::

      α_SGD(e) = ½ · exp(2 (e − β_center) / β_period)     for e < β_center
               = ½ + (e − β_center) / β_period            for β_center ≤ e < β_center + β_period / 2
               = 1                                         afterwards

  and the RMSprop weight α_RMSprop = 1 − α_SGD. The two pieces meet with equal value (½) and
  slope (1/β_period) at β_center, and the linear piece reaches 1 exactly at the end of its
  interval. (Some public reimplementations write the linear piece as ½ + 2(e − β_center)/β_period,
  which exceeds 1 before the interval ends; this module uses the continuous form.) e may be
  fractional (updates / updates per epoch), so the weight changes every update rather than
  once per epoch (the reimplementations change it once per epoch). The defaults β_center = 10
  and β_period = 5 epochs are those of the same reimplementations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from batchlab.errors import ConfigError

# The schedule vocabulary, one for the run configuration (``lr_scaling``, ``lr_decay``) and for
# :class:`Schedule` alike: ``none`` is no scaling and no decay.
SCALINGS = ("none", "linear", "sqrt")
DECAYS = ("none", "step", "cosine", "slow-start")
WARMUP_STARTS = ("base", "zero")

# Akiba et al. 2017's recipe in epochs of their 90-epoch run: the slow start's phases (fraction of
# the run where a phase starts, multiplier of η̂) and the RMSprop warm-up's hand-over (β_center,
# β_period), the defaults of :func:`akiba_sgd_weight` and of
# :class:`batchlab.optim.rmsprop_warmup.RMSpropWarmup`.
AKIBA_EPOCHS = 90.0
AKIBA_SLOW_START = ((0.0, 0.5), (40 / AKIBA_EPOCHS, 0.075), (70 / AKIBA_EPOCHS, 0.01), (85 / AKIBA_EPOCHS, 0.001))
AKIBA_BETA_CENTER = 10.0
AKIBA_BETA_PERIOD = 5.0


def scaled_lr(base_lr: float, batch_size: int, base_batch: int, scaling: str) -> float:
    """η_base scaled to batch B: ``none`` η_base, ``linear`` η_base·B/B_base, ``sqrt`` η_base·√(B/B_base)."""
    ratio = batch_size / base_batch
    if scaling == "none":
        return base_lr
    if scaling == "linear":
        return base_lr * ratio
    if scaling == "sqrt":
        return base_lr * math.sqrt(ratio)
    raise ConfigError(f"unknown learning-rate scaling {scaling!r}; allowed: {', '.join(SCALINGS)}")


def linear_warmup_lr(update: int, warmup_updates: int, start_lr: float, target_lr: float) -> float:
    """Goyal's gradual warm-up: start_lr + (target_lr − start_lr)·t/W for t < W, target_lr after."""
    if update >= warmup_updates:
        return target_lr
    return start_lr + (target_lr - start_lr) * update / warmup_updates


def step_decay_factor(update: int, milestones: tuple[int, ...], gamma: float) -> float:
    """γ^k where k is the number of milestones m ≤ update."""
    passed = sum(1 for milestone in milestones if milestone <= update)
    return gamma**passed


def cosine_decay_lr(update: int, start: int, end: int, peak_lr: float, floor_lr: float) -> float:
    """η_min + (η̂ − η_min)(1 + cos(π (t − start)/(end − start)))/2, η̂ before ``start``."""
    if update <= start:
        return peak_lr
    progress = min(1.0, (update - start) / (end - start))
    return floor_lr + (peak_lr - floor_lr) * (1.0 + math.cos(math.pi * progress)) / 2.0


def akiba_slow_start_factor(update: int, total_updates: int) -> float:
    """Akiba et al.'s slow-start multiplier of η̂ at ``update`` (phase boundaries as run fractions)."""
    factor = AKIBA_SLOW_START[0][1]
    for fraction, multiplier in AKIBA_SLOW_START:
        if update >= round(fraction * total_updates):
            factor = multiplier
    return factor


def akiba_sgd_weight(epoch: float, beta_center: float = AKIBA_BETA_CENTER, beta_period: float = AKIBA_BETA_PERIOD) -> float:
    """α_SGD(e) of Akiba et al.'s RMSprop warm-up (module docstring); α_RMSprop = 1 − α_SGD."""
    if beta_period <= 0:
        raise ConfigError(f"beta_period {beta_period} must be positive; allowed: beta_period > 0 epochs")
    if epoch < beta_center:
        return 0.5 * math.exp(2.0 * (epoch - beta_center) / beta_period)
    if epoch < beta_center + beta_period / 2:
        return 0.5 + (epoch - beta_center) / beta_period
    return 1.0


def epochs_to_updates(epochs: float, updates_per_epoch: int) -> int:
    """A length given in epochs as a whole number of updates (rounded to the nearest)."""
    if epochs < 0:
        raise ConfigError(f"{epochs} epochs is negative; allowed: ≥ 0")
    if updates_per_epoch < 1:
        raise ConfigError(f"{updates_per_epoch} updates per epoch; allowed: ≥ 1")
    return round(epochs * updates_per_epoch)


def _finite(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True)
class Schedule:
    """The learning rate of every update of one run: scaling, warm-up, then decay.

    ``peak_lr`` = :func:`scaled_lr` (base_lr, batch_size, base_batch, scaling); ``lr_at(t)`` is the
    warm-up ramp for t < warmup_updates (from base_lr, or from 0 with ``warmup_start="zero"``),
    then peak_lr times the decay: ``none`` 1, ``step`` γ per passed milestone, ``cosine``
    down to ``floor_lr`` at the end of the run, ``slow-start`` Akiba's multipliers. During the
    warm-up the decay is not applied (a step milestone inside the warm-up takes effect after it).

    ``base_batch`` defaults to ``batch_size`` (no scaling effect). Invalid combinations raise
    :class:`~batchlab.errors.ConfigError` with one line, at construction.
    """

    base_lr: float
    batch_size: int
    total_updates: int
    base_batch: int | None = None
    scaling: str = "none"
    warmup_updates: int = 0
    warmup_start: str = "base"
    decay: str = "none"
    milestones: tuple[int, ...] = field(default=())
    gamma: float = 0.1
    floor_lr: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(self.milestones))
        if self.base_batch is None:
            object.__setattr__(self, "base_batch", self.batch_size)
        _finite("base learning rate", self.base_lr)
        if self.base_lr < 0:
            raise ConfigError(f"base learning rate {self.base_lr} is negative; allowed: ≥ 0")
        for name, value in (("batch size", self.batch_size), ("base batch", self.base_batch), ("total updates", self.total_updates)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} {value!r} must be a whole number ≥ 1")
        if self.scaling not in SCALINGS:
            raise ConfigError(f"unknown learning-rate scaling {self.scaling!r}; allowed: {', '.join(SCALINGS)}")
        if self.decay not in DECAYS:
            raise ConfigError(f"unknown learning-rate decay {self.decay!r}; allowed: {', '.join(DECAYS)}")
        if self.warmup_start not in WARMUP_STARTS:
            raise ConfigError(f"unknown warm-up start {self.warmup_start!r}; allowed: {', '.join(WARMUP_STARTS)}")
        if not isinstance(self.warmup_updates, int) or isinstance(self.warmup_updates, bool) or self.warmup_updates < 0:
            raise ConfigError(f"warm-up of {self.warmup_updates!r} updates; allowed: a whole number ≥ 0")
        if self.warmup_updates > self.total_updates:
            raise ConfigError(
                f"warm-up of {self.warmup_updates} updates is longer than the run of {self.total_updates} updates; "
                f"allowed: 0 … {self.total_updates}"
            )
        self._check_decay()

    def _check_decay(self) -> None:
        if self.decay == "step":
            if not self.milestones:
                raise ConfigError("step decay needs at least one milestone; allowed: updates 1 … total_updates − 1")
            if any(not isinstance(m, int) or isinstance(m, bool) or not 0 < m < self.total_updates for m in self.milestones):
                raise ConfigError(
                    f"step-decay milestones {list(self.milestones)} must be whole updates in 1 … {self.total_updates - 1}"
                )
            if list(self.milestones) != sorted(set(self.milestones)):
                raise ConfigError(f"step-decay milestones {list(self.milestones)} must be strictly increasing")
            _finite("step-decay factor gamma", self.gamma)
            if not 0 < self.gamma <= 1:
                raise ConfigError(f"step-decay factor gamma {self.gamma} is outside (0, 1]; allowed: 0 < gamma ≤ 1")
        elif self.milestones:
            raise ConfigError(f"milestones are given but the decay is {self.decay!r}; allowed with: decay 'step'")
        if self.decay == "cosine":
            _finite("cosine floor", self.floor_lr)
            if not 0 <= self.floor_lr <= self.peak_lr:
                raise ConfigError(f"cosine floor {self.floor_lr} is outside [0, peak rate {self.peak_lr:g}]")
            if self.warmup_updates >= self.total_updates:
                raise ConfigError(
                    f"cosine decay needs updates after the warm-up; allowed: warm-up < {self.total_updates} updates"
                )

    @property
    def peak_lr(self) -> float:
        """The rate after scaling, reached at the end of the warm-up."""
        return scaled_lr(self.base_lr, self.batch_size, self.base_batch, self.scaling)  # type: ignore[arg-type]

    @property
    def is_constant(self) -> bool:
        """True when every update uses :attr:`peak_lr` (no warm-up, no decay)."""
        return self.warmup_updates == 0 and self.decay == "none"

    @property
    def warmup_start_lr(self) -> float:
        return self.base_lr if self.warmup_start == "base" else 0.0

    def lr_at(self, update: int) -> float:
        """The learning rate of update ``update`` (0-based, 0 ≤ update < total_updates)."""
        if not isinstance(update, int) or isinstance(update, bool) or not 0 <= update < self.total_updates:
            raise ValueError(f"update {update!r} is outside the run's 0 … {self.total_updates - 1}")
        peak = self.peak_lr
        if update < self.warmup_updates:
            return linear_warmup_lr(update, self.warmup_updates, self.warmup_start_lr, peak)
        if self.decay == "step":
            return peak * step_decay_factor(update, self.milestones, self.gamma)
        if self.decay == "cosine":
            return cosine_decay_lr(update, self.warmup_updates, self.total_updates, peak, self.floor_lr)
        if self.decay == "slow-start":
            return peak * akiba_slow_start_factor(update, self.total_updates)
        return peak

    def rates(self) -> list[float]:
        """``lr_at(t)`` for every update of the run."""
        return [self.lr_at(t) for t in range(self.total_updates)]
