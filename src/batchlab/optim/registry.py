"""The optimizer registry and its one factory, ``build_optimizer``; ``batchlab.optim`` re-exports
its names on first use."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from batchlab.errors import ConfigError
from batchlab.optim.lamb import LAMB
from batchlab.optim.lars import LARS
from batchlab.optim.momentum import Momentum
from batchlab.optim.rmsprop_warmup import RMSpropWarmup

__all__ = [
    "LAMB",
    "LAMB_OPTIONS",
    "LARS",
    "LARS_OPTIONS",
    "Momentum",
    "OPTIMIZERS",
    "OptimizerSpec",
    "RMSPROP_WARMUP_OPTIONS",
    "RMSpropWarmup",
    "build_optimizer",
    "get_optimizer_spec",
]

# Options beyond RunConfig's lr / momentum / weight_decay, with their defaults: the papers' trust
# coefficient for LARS, Adam's betas and LAMB's ε, and biases and normalization parameters
# excluded from weight decay and layer-wise adaptation (layer_adaptation=None).
LARS_OPTIONS: dict[str, object] = {"trust_coefficient": 0.001, "eps": 0.0, "layer_adaptation": None}
LAMB_OPTIONS: dict[str, object] = {
    "betas": (0.9, 0.999),
    "eps": 1e-6,
    "bias_correction": True,
    "layer_adaptation": None,
}
# Akiba et al.'s RMSprop warm-up: updates_per_epoch (required) turns updates into epochs.
RMSPROP_WARMUP_OPTIONS: dict[str, object] = {
    "updates_per_epoch": None,
    "lr_rmsprop": 3e-4,
    "rmsprop_decay": 0.99,
    "eps": 1e-8,
    "beta_center": 10.0,
    "beta_period": 5.0,
}


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    description: str
    uses_momentum: bool
    # The packed trainer reimplements the update as a vectorized rule over many runs; only the
    # lecture's momentum (and its λ = 0 case) is reimplemented there.
    packable: bool


OPTIMIZERS: dict[str, OptimizerSpec] = {
    spec.name: spec
    for spec in (
        OptimizerSpec("momentum", "the lecture's rule m ← λm − ηg, θ ← θ + m (batchlab.optim.Momentum)", True, True),
        OptimizerSpec("sgd", "plain gradient descent θ ← θ − ηg (Momentum with λ = 0)", False, True),
        OptimizerSpec("torch-sgd", "torch.optim.SGD (PyTorch's momentum convention, b ← μb + g, θ ← θ − ηb)", True, False),
        OptimizerSpec("adam", "torch.optim.Adam with its default betas (0.9, 0.999)", False, False),
        OptimizerSpec("lars", "LARS (You et al. 2017): momentum SGD with a per-layer rate η‖w‖/(‖g‖ + β‖w‖)", True, False),
        OptimizerSpec("lamb", "LAMB (You et al. 2019): Adam's direction with a per-layer step η‖x‖/‖r + λx‖", False, False),
        OptimizerSpec("rmsprop-warmup", "Akiba et al. 2017's RMSprop warm-up handing over to the lecture's momentum", True, False),
    )
}


def get_optimizer_spec(name: str) -> OptimizerSpec:
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise ConfigError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}") from None


def build_optimizer(
    name: str,
    params: Iterable[torch.Tensor],
    *,
    lr: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    momentum_correction: bool = False,
    **options: object,
) -> torch.optim.Optimizer:
    """Create the optimizer called ``name``; a momentum given to a momentum-free one is an error.

    ``options`` are the extra settings of ``lars`` and ``lamb`` (:data:`LARS_OPTIONS`,
    :data:`LAMB_OPTIONS`); other optimizers take none. ``momentum_correction`` (Goyal et al.'s,
    see :class:`~batchlab.optim.momentum.Momentum`) applies to ``momentum`` and ``sgd`` only. A value the optimizer refuses is a
    :class:`ConfigError` naming the optimizer and the argument.
    """
    spec = get_optimizer_spec(name)
    if momentum and not spec.uses_momentum:
        raise ConfigError(
            f"optimizer {name!r} takes no momentum (got {momentum}); allowed: momentum 0, "
            "or --optimizer momentum / torch-sgd"
        )
    if nesterov and (not spec.uses_momentum or name in ("lars", "rmsprop-warmup")):
        raise ConfigError(f"optimizer {name!r} has no Nesterov form; allowed with: momentum, torch-sgd")
    allowed = {"lars": LARS_OPTIONS, "lamb": LAMB_OPTIONS, "rmsprop-warmup": RMSPROP_WARMUP_OPTIONS}.get(name, {})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        known = ", ".join(allowed) if allowed else "none"
        raise ConfigError(f"optimizer {name!r} takes no option {unknown[0]!r}; allowed: {known}")
    if name in ("lars", "lamb", "rmsprop-warmup"):
        settings = allowed | options
        try:
            if name == "lars":
                return LARS(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **settings)  # type: ignore[arg-type]
            if name == "rmsprop-warmup":
                return RMSpropWarmup(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **settings)  # type: ignore[arg-type]
            return LAMB(params, lr=lr, weight_decay=weight_decay, **settings)  # type: ignore[arg-type]
        except (TypeError, ValueError) as error:
            raise ConfigError(f"optimizer {name!r}: {error}") from None
    if momentum_correction and name not in ("momentum", "sgd"):
        raise ConfigError(f"optimizer {name!r} has no momentum correction; allowed with: momentum, sgd")
    if name in ("momentum", "sgd"):
        return Momentum(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                        momentum_correction=momentum_correction)
    if name == "torch-sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
