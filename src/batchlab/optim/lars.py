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

from collections.abc import Iterable
from typing import Any

import torch

from batchlab.optim.tensorwise import TensorwiseOptimizer, check_common_arguments, is_adapted, trust_ratio


class LARS(TensorwiseOptimizer):
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
        check_common_arguments(lr, weight_decay, eps, layer_adaptation)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Invalid momentum value: {momentum} (must be in [0, 1))")
        if not trust_coefficient > 0.0:
            raise ValueError(f"Invalid trust_coefficient value: {trust_coefficient} (must be > 0)")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            trust_coefficient=trust_coefficient,
            eps=eps,
            layer_adaptation=layer_adaptation,
        )
        super().__init__(params, defaults)

    def update_tensor(self, param: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        if is_adapted(param, group["layer_adaptation"]):
            beta = group["weight_decay"]
            weight_norm = torch.linalg.vector_norm(param)
            grad_norm = torch.linalg.vector_norm(grad)
            local = trust_ratio(group["trust_coefficient"] * weight_norm, grad_norm + beta * weight_norm + group["eps"], weight_norm)
            direction = grad.add(param, alpha=beta).mul_(local)
        else:
            direction = grad
        if "velocity" not in state:
            state["velocity"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        velocity = state["velocity"]
        velocity.mul_(group["momentum"]).add_(direction, alpha=group["lr"])
        param.sub_(velocity)
