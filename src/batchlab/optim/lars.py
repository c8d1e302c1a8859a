"""LARS: layer-wise adaptive rate scaling (You, Gitman & Ginsburg 2017).

Rule (You et al. 2017, "Large Batch Training of Convolutional Networks", Algorithm 1), for each
parameter tensor ("layer") w with gradient g = ∇L(w)::

    local rate     λ = η · ‖w‖ / (‖g‖ + β‖w‖ + ε)
    momentum       v ← m·v + γ_t · λ · (g + β·w)        (v_0 = 0)
    weights        w ← w − v

with γ_t the global learning rate (``lr``), m the momentum, β the weight decay and η the trust
coefficient (``trust_coefficient``; the paper's η, typically 0.001). ε (``eps``) is not in the
paper; its default 0 keeps the paper's rule. When ‖w‖ = 0 or the denominator is 0 the local
rate is 1 (as in common implementations), so a zero-initialised tensor still moves.

The global rate sits *inside* v, as in the paper (and as in the lecture's momentum, where m
keeps each past rate): under a constant γ this equals the PyTorch-style form
b ← m·b + λ(g + βw), w ← w − γ·b used by timm and others; with a changing γ they differ the way
:mod:`batchlab.optim.momentum` describes.

Excluded tensors: biases and normalization parameters (tensors with ndim ≤ 1) are, by the usual
convention (e.g. Goyal et al. 2017 for weight decay; SimCLR/BYOL for LARS), neither decayed nor
adapted: for them λ = 1 and β = 0, i.e. plain momentum SGD v ← m·v + γ_t·g. Per parameter group,
``layer_adaptation`` chooses: ``None`` (default) adapts tensors with ndim > 1 only, ``True``
adapts every tensor of the group, ``False`` none (the group is plain momentum SGD without weight
decay).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.optim import Optimizer


def is_adapted(param: torch.Tensor, layer_adaptation: bool | None) -> bool:
    """Whether ``param`` gets weight decay and a layer-wise rate (module docstring)."""
    if layer_adaptation is None:
        return param.ndim > 1
    return bool(layer_adaptation)


def trust_ratio(numerator: torch.Tensor, denominator: torch.Tensor, weight_norm: torch.Tensor) -> torch.Tensor:
    """numerator / denominator, or 1 where the weight norm or the denominator is 0."""
    one = torch.ones_like(weight_norm)
    safe = torch.where(denominator > 0, denominator, one)
    return torch.where((weight_norm > 0) & (denominator > 0), numerator / safe, one)


def check_common_arguments(lr: float, weight_decay: float, eps: float) -> None:
    """The checks torch/optim/sgd.py makes, each naming its argument."""
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr < 0.0:
        raise ValueError(f"Invalid learning rate: {lr} (must be ≥ 0)")
    if weight_decay < 0.0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay} (must be ≥ 0)")
    if eps < 0.0:
        raise ValueError(f"Invalid eps value: {eps} (must be ≥ 0)")


class LARS(Optimizer):
    """LARS (You et al. 2017): momentum SGD with a per-tensor rate η‖w‖/(‖g‖ + β‖w‖ + ε).

    Args:
        params: parameters or parameter groups.
        lr: the global learning rate γ ≥ 0.
        momentum: m in [0, 1).
        weight_decay: β ≥ 0 (applied to adapted tensors only).
        trust_coefficient: η > 0, the paper's trust coefficient.
        eps: ε ≥ 0 added to the denominator of the local rate (0 = the paper's rule).
        layer_adaptation: ``None`` adapt tensors with ndim > 1, ``True`` all, ``False`` none.

    Example::

        >>> import torch
        >>> w = torch.nn.Parameter(torch.full((2, 2), 3.0))
        >>> opt = LARS([w], lr=1.0, trust_coefficient=0.01)
        >>> w.grad = torch.ones(2, 2); opt.step()
        >>> round(w[0, 0].item(), 4)   # 3 − 0.01·‖w‖/‖g‖·1 = 3 − 0.01·6/2
        2.97
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float,
        momentum: float = 0.9,
        *,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        eps: float = 0.0,
        layer_adaptation: bool | None = None,
    ) -> None:
        check_common_arguments(lr, weight_decay, eps)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Invalid momentum value: {momentum} (must be in [0, 1))")
        if not trust_coefficient > 0.0:
            raise ValueError(f"Invalid trust_coefficient value: {trust_coefficient} (must be > 0)")
        if layer_adaptation not in (None, True, False):
            raise ValueError(f"Invalid layer_adaptation value: {layer_adaptation!r} (must be None, True or False)")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            trust_coefficient=trust_coefficient,
            eps=eps,
            layer_adaptation=layer_adaptation,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if grad.is_sparse:
                    raise RuntimeError("LARS does not support sparse gradients")
                if is_adapted(param, group["layer_adaptation"]):
                    beta = group["weight_decay"]
                    weight_norm = torch.linalg.vector_norm(param)
                    grad_norm = torch.linalg.vector_norm(grad)
                    local = trust_ratio(
                        group["trust_coefficient"] * weight_norm, grad_norm + beta * weight_norm + group["eps"], weight_norm
                    )
                    direction = grad.add(param, alpha=beta).mul_(local)
                else:
                    direction = grad.clone()
                state = self.state[param]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                velocity = state["velocity"]
                velocity.mul_(momentum).add_(direction, alpha=lr)
                param.sub_(velocity)
        return loss
