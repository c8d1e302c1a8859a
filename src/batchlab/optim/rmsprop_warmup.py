"""Akiba et al. 2017's RMSprop warm-up: an update that hands over from RMSprop to momentum SGD.

Rule (Akiba, Suzuki & Fukuda 2017, "Extremely Large Minibatch SGD: Training ResNet-50 on
ImageNet in 15 Minutes", "RMSprop warm-up"), written in the lecture's momentum form (each
update's rates stay inside the velocity v)::

    s_t = μ₂ s_{t−1} + (1 − μ₂) g²                                    (s_0 = 0)
    v_t = μ₁ v_{t−1} − (η_t · α_SGD(e) + η_RMSprop · (1 − α_SGD(e)) / (√s_t + ε)) · g
    θ_t = θ_{t−1} + v_t

where e = (number of earlier updates) / ``updates_per_epoch`` is the epoch, possibly fractional,
and α_SGD is :func:`batchlab.optim.schedules.akiba_sgd_weight` (½·exp(2(e − β_center)/β_period)
before β_center, then linear to 1 at β_center + β_period/2). Early on the step is essentially
RMSprop with rate η_RMSprop and momentum μ₁; after the hand-over it is exactly the lecture's
momentum SGD with rate η_t (``lr``, which a schedule such as Akiba's slow start may change).

Where this departs from the reimplementations the constants were taken from (they keep the
global rate outside the buffer and write the RMSprop weight as (1 − α_SGD)·η_RMSprop/η inside
it): under a constant η the two forms give the same iterates; with a changing η this form keeps
each past rate inside v, as the lecture's momentum does. α_SGD changes every update here rather
than once per epoch. Defaults: μ₁ = 0.9, μ₂ = 0.99, ε = 1e-8, η_RMSprop = 3·10⁻⁴,
β_center = 10 and β_period = 5 epochs, as in those reimplementations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from batchlab.optim.schedules import AKIBA_BETA_CENTER, AKIBA_BETA_PERIOD, akiba_sgd_weight
from batchlab.optim.tensorwise import TensorwiseOptimizer


class RMSpropWarmup(TensorwiseOptimizer):
    """RMSprop that hands over to momentum SGD around epoch β_center (module docstring).

    Args:
        params: parameters or parameter groups.
        lr: η ≥ 0, the momentum-SGD rate.
        updates_per_epoch: updates in one epoch (≥ 1), to turn the update count into e.
        momentum: μ₁ in [0, 1).
        lr_rmsprop: η_RMSprop ≥ 0.
        rmsprop_decay: μ₂ in [0, 1).
        eps: ε > 0.
        beta_center: β_center (epochs), where α_SGD = ½.
        beta_period: β_period > 0 (epochs), the width of the hand-over.
        weight_decay: L2 coefficient added to the gradient, g ← g + wd·θ.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float,
        updates_per_epoch: int,
        momentum: float = 0.9,
        *,
        lr_rmsprop: float = 3e-4,
        rmsprop_decay: float = 0.99,
        eps: float = 1e-8,
        beta_center: float = AKIBA_BETA_CENTER,
        beta_period: float = AKIBA_BETA_PERIOD,
        weight_decay: float = 0.0,
    ) -> None:
        for name, value in (("learning rate", lr), ("lr_rmsprop", lr_rmsprop), ("weight_decay", weight_decay)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0.0:
                raise ValueError(f"Invalid {name} value: {value} (must be ≥ 0)")
        if not isinstance(updates_per_epoch, int) or isinstance(updates_per_epoch, bool) or updates_per_epoch < 1:
            raise ValueError(f"Invalid updates_per_epoch value: {updates_per_epoch!r} (must be a whole number ≥ 1)")
        for name, value in (("momentum", momentum), ("rmsprop_decay", rmsprop_decay)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"Invalid {name} value: {value} (must be in [0, 1))")
        if not eps > 0.0:
            raise ValueError(f"Invalid eps value: {eps} (must be > 0)")
        if not beta_period > 0.0:
            raise ValueError(f"Invalid beta_period value: {beta_period} (must be > 0 epochs)")
        defaults = dict(
            lr=lr,
            updates_per_epoch=updates_per_epoch,
            momentum=momentum,
            lr_rmsprop=lr_rmsprop,
            rmsprop_decay=rmsprop_decay,
            eps=eps,
            beta_center=beta_center,
            beta_period=beta_period,
            weight_decay=weight_decay,
        )
        super().__init__(params, defaults)

    def update_tensor(self, param: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        if group["weight_decay"]:
            grad = grad.add(param, alpha=group["weight_decay"])
        if "step" not in state:
            state["step"] = 0
            state["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["velocity"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        sgd_weight = akiba_sgd_weight(state["step"] / group["updates_per_epoch"], group["beta_center"], group["beta_period"])
        state["step"] += 1
        square_avg, velocity = state["square_avg"], state["velocity"]
        square_avg.mul_(group["rmsprop_decay"]).addcmul_(grad, grad, value=1.0 - group["rmsprop_decay"])
        # Per element: η·α_SGD + η_RMSprop·(1 − α_SGD)/(√s + ε).
        rate = square_avg.sqrt().add_(group["eps"]).reciprocal_().mul_(group["lr_rmsprop"] * (1.0 - sgd_weight))
        rate.add_(group["lr"] * sgd_weight)
        velocity.mul_(group["momentum"]).addcmul_(rate, grad, value=-1.0)
        param.add_(velocity)
