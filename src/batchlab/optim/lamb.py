"""LAMB: layer-wise adaptive moments for large batches (You et al. 2019).

Rule (You et al. 2019, "Large Batch Optimization for Deep Learning: Training BERT in 76
minutes", Algorithm 2), for each parameter tensor ("layer") x with gradient g at step t = 1, 2, …::

    m_t = β₁ m_{t−1} + (1 − β₁) g                 v_t = β₂ v_{t−1} + (1 − β₂) g²
    m̂_t = m_t / (1 − β₁ᵗ)                         v̂_t = v_t / (1 − β₂ᵗ)
    r_t = m̂_t / (√v̂_t + ε)
    x ← x − η_t · φ(‖x‖) / ‖r_t + λx‖ · (r_t + λx)

with η_t the learning rate (``lr``), λ the weight decay, ε (``eps``) and β₁, β₂ (``betas``) named
as in the paper, and φ the identity (the paper allows a clipped φ; its experiments and common
implementations use the identity). When ‖x‖ = 0 or ‖r_t + λx‖ = 0 the ratio is 1.
``bias_correction=False`` drops the two divisions by 1 − βᵗ (the form of later revisions of the
paper and of some implementations).

Excluded tensors: biases and normalization parameters (ndim ≤ 1) are, by the usual convention,
neither decayed nor adapted: they take the Adam step x ← x − η_t r_t. ``layer_adaptation`` per
parameter group: ``None`` (default) adapts tensors with ndim > 1 only, ``True`` every tensor,
``False`` none (the group is plain Adam without weight decay).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from batchlab.optim.tensorwise import TensorwiseOptimizer, check_common_arguments, is_adapted, trust_ratio


class LAMB(TensorwiseOptimizer):
    """LAMB (You et al. 2019): Adam's direction r_t with a per-tensor step η‖x‖/‖r_t + λx‖.

    Args:
        params: parameters or parameter groups.
        lr: the learning rate η ≥ 0.
        betas: (β₁, β₂), each in [0, 1).
        eps: ε > 0 in r_t = m̂/(√v̂ + ε).
        weight_decay: λ ≥ 0 (applied to adapted tensors only).
        bias_correction: divide m and v by 1 − βᵗ (Algorithm 2).
        layer_adaptation: ``None`` adapt tensors with ndim > 1, ``True`` all, ``False`` none.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        *,
        weight_decay: float = 0.0,
        bias_correction: bool = True,
        layer_adaptation: bool | None = None,
    ) -> None:
        check_common_arguments(lr, weight_decay, eps, layer_adaptation)
        if not eps > 0.0:
            raise ValueError(f"Invalid eps value: {eps} (must be > 0)")
        if len(betas) != 2:
            raise ValueError(f"Invalid betas value: {betas!r} (must be two numbers in [0, 1))")
        for index, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {index}: {beta} (must be in [0, 1))")
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            bias_correction=bias_correction,
            layer_adaptation=layer_adaptation,
        )
        super().__init__(params, defaults)

    def update_tensor(self, param: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["step"] += 1
        step = state["step"]
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        if group["bias_correction"]:
            m_hat = exp_avg / (1.0 - beta1**step)
            v_hat = exp_avg_sq / (1.0 - beta2**step)
        else:
            m_hat, v_hat = exp_avg, exp_avg_sq
        update = m_hat / (v_hat.sqrt() + group["eps"])
        if is_adapted(param, group["layer_adaptation"]):
            update.add_(param, alpha=group["weight_decay"])
            weight_norm = torch.linalg.vector_norm(param)
            update.mul_(trust_ratio(weight_norm, torch.linalg.vector_norm(update), weight_norm))
        param.sub_(update, alpha=group["lr"])
