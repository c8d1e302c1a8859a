"""What LARS, LAMB and the RMSprop warm-up share: a per-tensor update rule and its checks.

Each of these optimizers updates every parameter tensor on its own (LARS and LAMB treat a
tensor as a "layer"), so :class:`TensorwiseOptimizer` runs the closure and the loop over
tensors once, and subclasses write only ``update_tensor``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer


class TensorwiseOptimizer(Optimizer):
    """An optimizer whose rule is applied to each parameter tensor with a gradient, in turn."""

    def update_tensor(self, param: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if param.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                self.update_tensor(param, param.grad, group, self.state[param])
        return loss


def is_adapted(param: torch.Tensor, layer_adaptation: bool | None) -> bool:
    """Whether ``param`` gets weight decay and a layer-wise rate: by default tensors with ndim > 1."""
    if layer_adaptation is None:
        return param.ndim > 1
    return bool(layer_adaptation)


def trust_ratio(numerator: torch.Tensor, denominator: torch.Tensor, weight_norm: torch.Tensor) -> torch.Tensor:
    """numerator / denominator, or 1 where the weight norm or the denominator is 0."""
    one = torch.ones_like(weight_norm)
    safe = torch.where(denominator > 0, denominator, one)
    return torch.where((weight_norm > 0) & (denominator > 0), numerator / safe, one)


def check_common_arguments(lr: float, weight_decay: float, eps: float, layer_adaptation: bool | None) -> None:
    """The checks torch/optim/sgd.py makes, each naming its argument."""
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr < 0.0:
        raise ValueError(f"Invalid learning rate: {lr} (must be ≥ 0)")
    if weight_decay < 0.0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay} (must be ≥ 0)")
    if eps < 0.0:
        raise ValueError(f"Invalid eps value: {eps} (must be ≥ 0)")
    if layer_adaptation not in (None, True, False):
        raise ValueError(f"Invalid layer_adaptation value: {layer_adaptation!r} (must be None, True or False)")
