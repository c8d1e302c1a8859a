"""Optimizers by name: the lecture's ``momentum``, ``sgd`` (its λ = 0 case), ``torch-sgd``, ``adam``.

``build_optimizer`` is the one factory the training loop, the sweep and the CLI use, so a name
means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from batchlab.errors import ConfigError
from batchlab.optim.momentum import Momentum

__all__ = ["Momentum", "OPTIMIZERS", "OptimizerSpec", "build_optimizer", "get_optimizer_spec"]


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
) -> torch.optim.Optimizer:
    """Create the optimizer called ``name``; a momentum given to a momentum-free one is an error."""
    spec = get_optimizer_spec(name)
    if momentum and not spec.uses_momentum:
        raise ConfigError(
            f"optimizer {name!r} takes no momentum (got {momentum}); allowed: momentum 0, "
            "or --optimizer momentum / torch-sgd"
        )
    if nesterov and not spec.uses_momentum:
        raise ConfigError(f"optimizer {name!r} has no Nesterov form; allowed with: momentum, torch-sgd")
    if name in ("momentum", "sgd"):
        return Momentum(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if name == "torch-sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
