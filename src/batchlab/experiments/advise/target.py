"""What "reaching a result" means: a target on one evaluated metric, the updates at which it is
evaluated, and the number of steps S to reach it.

Shallue et al. 2019 ("Measuring the Effects of Data Parallelism on Neural Network Training",
§3.2) count the training steps needed to reach a goal validation error; McCandlish et al. 2018
count steps to a given training loss. Both are supported here:

* a :class:`Target` is ``metric`` ≥ value for accuracies and ``metric`` ≤ value for losses, on
  ``val_acc``, ``val_loss``, ``train_acc`` or ``train_loss`` (the full split, in eval mode);
* the metric is evaluated after update 0 (the initial weights) and then on a geometric schedule
  (:func:`evaluation_schedule`): every update while ``ratio``ᵏ grows by less than one, then at
  ⌈ratioᵏ⌉ — so S is known to the same *relative* resolution at every batch size, which is what
  a log-log steps-vs-batch figure needs; evaluating after every update would cost more than the
  training it measures;
* :func:`steps_to_target`: S is the first evaluated update at which the metric reaches the
  target (a later dip does not undo it). The true first crossing lies in (previous evaluation,
  S], so S overestimates it by less than a factor ``ratio``. A target never reached is None —
  never extrapolated.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from batchlab.errors import ConfigError

METRICS = ("val_acc", "val_loss", "train_acc", "train_loss")
DEFAULT_METRIC = "val_acc"


@dataclass(frozen=True)
class Target:
    """``metric`` reaching ``value``: ≥ for accuracies, ≤ for losses."""

    metric: str
    value: float

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"unknown target metric {self.metric!r}; allowed: {', '.join(METRICS)}")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)) or not math.isfinite(self.value):
            raise ConfigError(f"target value {self.value!r} is not a finite number")
        object.__setattr__(self, "value", float(self.value))
        # A target outside what the metric can take is unreachable by every configuration: refuse
        # it before anything trains.
        if self.higher_is_better and not 0.0 < self.value <= 1.0:
            raise ConfigError(f"target {self.metric} = {self.value:g} can never be reached; allowed: 0 < accuracy ≤ 1")
        if not self.higher_is_better and not self.value > 0.0:
            raise ConfigError(
                f"target {self.metric} = {self.value:g} can never be reached (a loss never falls below 0, and "
                "rarely to exactly 0); "
                "allowed: loss > 0")

    @property
    def higher_is_better(self) -> bool:
        return self.metric.endswith("_acc")

    @property
    def split(self) -> str:
        """The split the metric is evaluated on: ``train`` or ``val``."""
        return self.metric.split("_")[0]

    @property
    def key(self) -> str:
        """Canonical text, e.g. ``val_acc>=0.9``; parsed back by :func:`parse_target`."""
        return f"{self.metric}{'>=' if self.higher_is_better else '<='}{self.value:g}"

    def reached(self, value: float) -> bool:
        """Whether one evaluated value reaches the target (NaN never does)."""
        if not math.isfinite(value):
            return False
        return value >= self.value if self.higher_is_better else value <= self.value

    def to_dict(self) -> dict:
        return {"metric": self.metric, "value": self.value, "key": self.key}


def parse_target(text: str | Target) -> Target:
    """``val_acc=0.9``, ``val_acc>=0.9``, ``train_loss<=0.1``, or a bare number (validation
    accuracy). The comparison is the metric's own (≥ accuracy, ≤ loss); a contrary one is refused."""
    if isinstance(text, Target):
        return text
    raw = str(text).strip()
    metric, value = DEFAULT_METRIC, raw
    for separator in (">=", "<=", "="):
        if separator in raw:
            metric, _, value = (part.strip() for part in raw.partition(separator))
            target = _target(metric, value, raw)
            if separator != "=" and (separator == ">=") != target.higher_is_better:
                raise ConfigError(f"target {raw!r} compares the wrong way; allowed: accuracy >= value, loss <= value")
            return target
    return _target(metric, value, raw)


def _target(metric: str, value: str, raw: str) -> Target:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(
            f"target {raw!r} is not METRIC=VALUE; allowed: e.g. val_acc=0.9 or train_loss=0.1 "
            f"(metrics: {', '.join(METRICS)})") from None
    return Target(metric, number)


def evaluation_schedule(budget: int, ratio: float) -> list[int]:
    """The updates after which the metric is evaluated: 0, then every update while the geometric
    step is below one, then ⌈ratioᵏ⌉, and always the last update ``budget``."""
    if not ratio > 1.0 or not math.isfinite(ratio):
        raise ConfigError(f"evaluation ratio {ratio!r} is invalid; allowed: a number > 1 (e.g. 1.1)")
    if budget < 1:
        raise ConfigError(f"update budget {budget} is too small; allowed: ≥ 1")
    points = {0, budget}
    value = 1.0
    while value < budget:
        points.add(max(1, math.ceil(value - 1e-9)))
        value = max(value * ratio, math.floor(value) + 1.0)
    return sorted(p for p in points if p <= budget)


def steps_to_target(history: Iterable[tuple[int, float]], target: Target) -> int | None:
    """The first evaluated update whose metric reaches ``target``; None when none does.

    ``history`` holds (update, value) pairs in any order; a non-finite value never reaches.
    """
    for update, value in sorted(history, key=lambda pair: pair[0]):
        if target.reached(value):
            return int(update)
    return None


def best_value(values: Sequence[float], target: Target) -> float | None:
    """The best finite value of a metric (max accuracy, min loss), for messages; None if none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    return max(finite) if target.higher_is_better else min(finite)
