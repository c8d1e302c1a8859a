"""The largest Hessian eigenvalue at which an optimizer is still stable: the line λ_max is set against.

Rule. On a quadratic with curvature a (one Hessian eigenvalue), gradient descent with step η,
θ ← θ − η a θ, stays bounded only while η a ≤ 2: sharpness above 2/η makes it diverge along that
eigenvector. Heavy-ball momentum — the lecture's m ← λm − ηg, θ ← θ + m, and PyTorch's b ← λb + g,
θ ← θ − ηb, which are the same iteration — gives θ_{t+1} = (1 + λ − ηa)θ_t − λθ_{t−1}, whose
characteristic roots stay inside the unit circle (0 ≤ λ < 1) exactly while 0 < ηa < 2(1 + λ);
Nesterov's look-ahead form, while ηa < 2(1 + λ)/(1 + 2λ) (Cohen et al., ICLR 2021, "Gradient
Descent on Neural Networks Typically Occurs at the Edge of Stability", Appendix: the thresholds
for Polyak and Nesterov momentum). So a point that (momentum) gradient descent with these
settings settles at has λ_max ≤ the bound; Cohen et al. find full-batch training hovering at it
("edge of stability"), and mini-batch SGD typically stays below it.

L2 weight decay δ adds δ to every curvature of the function the optimizer descends, so the bound
on λ_max of the loss alone is the value above minus δ.

Where it does not apply. Adam, LAMB, RMSprop and LARS scale the step per coordinate or per layer
by running statistics; their stability depends on the preconditioned Hessian (Cohen et al. 2022,
"Adaptive Gradient Methods at the Edge of Stability"), not on λ_max, and no bound is given.
The bound uses the run's configured η; with a schedule the rate at the point may differ.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from batchlab.errors import ConfigError

# Optimizers whose update is (momentum) gradient descent with one global step η, and those that
# scale the step per coordinate or per layer.
GRADIENT_DESCENT_OPTIMIZERS = ("sgd", "momentum", "torch-sgd")
ADAPTIVE_OPTIMIZERS = ("adam", "lamb", "lars", "rmsprop-warmup")


@dataclass(frozen=True)
class StabilityBound:
    """``value``: the largest λ_max of the loss at which the optimizer is stable, or None where
    no such bound applies; ``rule``: the formula used, or why there is none."""

    value: float | None
    rule: str
    optimizer: str
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stability_bound(
    optimizer: str, lr: float, momentum: float = 0.0, *, nesterov: bool = False, weight_decay: float = 0.0
) -> StabilityBound:
    """2/η (gradient descent), 2(1 + λ)/η (heavy-ball momentum λ) or 2(1 + λ)/((1 + 2λ)η)
    (Nesterov), minus the weight decay; None with the reason for adaptive optimizers."""
    for name, value in (("learning rate", lr), ("momentum", momentum), ("weight decay", weight_decay)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{name} {value!r} is invalid; allowed: a finite number")
    if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0:
        raise ConfigError(
            f"stability bound needs η > 0, 0 ≤ λ < 1 and weight decay ≥ 0 (got η={lr}, λ={momentum}, "
            f"weight decay={weight_decay})"
        )
    settings = dict(optimizer=optimizer, lr=float(lr), momentum=float(momentum), nesterov=bool(nesterov),
                    weight_decay=float(weight_decay))
    if optimizer not in GRADIENT_DESCENT_OPTIMIZERS + ADAPTIVE_OPTIMIZERS:
        return StabilityBound(value=None, rule=f"does not apply: no stability bound is known for optimizer {optimizer}",
                              **settings)
    if optimizer in ADAPTIVE_OPTIMIZERS:
        return StabilityBound(
            value=None,
            rule=f"does not apply: {optimizer} adapts its step per coordinate or per layer (its stability "
            "depends on the preconditioned Hessian, not on λ_max)",
            **settings,
        )
    if momentum == 0:
        value, rule = 2 / lr, "2/η (gradient descent)"
    elif nesterov:
        value, rule = 2 * (1 + momentum) / ((1 + 2 * momentum) * lr), "2(1 + λ)/((1 + 2λ)η) (Nesterov momentum)"
    else:
        value, rule = 2 * (1 + momentum) / lr, "2(1 + λ)/η (heavy-ball momentum)"
    if weight_decay:
        value, rule = value - weight_decay, f"{rule} − weight decay"
    return StabilityBound(value=value, rule=rule, **settings)
