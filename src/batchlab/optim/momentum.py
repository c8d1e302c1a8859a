"""The lecture's momentum as a ``torch.optim.Optimizer``.

Rule (Hung-yi Lee, "Batch and Momentum"; Sutskever et al. 2013)::

    m_0 = 0
    m_t = λ m_{t-1} − η_t g_t          (g_t: gradient at θ_{t-1}, plus weight_decay · θ_{t-1})
    θ_t = θ_{t-1} + m_t

so m_t = −(η_t g_t + λ η_{t-1} g_{t-1} + λ² η_{t-2} g_{t-2} + …): the decayed sum of all past
gradients, each scaled by the rate *in force when it was computed*. λ = 0 is plain gradient
descent θ ← θ − ηg.

Relation to ``torch.optim.SGD`` (``b_t = μ b_{t-1} + g_t``, ``θ_t = θ_{t-1} − γ_t b_t``): with
dampening 0, no Nesterov, μ = λ and a *constant* rate the iterates are identical, because then
m_t = −γ b_t. They differ once the rate changes (warm-up, decay): PyTorch multiplies the whole
buffer by the new rate, this form keeps each past rate inside m. Example (docs/science.md §2):
g ≡ 1, λ = 0.9, η = 0.1 then 0.01 gives θ_2 = −0.200 here and −0.119 with ``torch.optim.SGD``.
``momentum_correction=True`` rescales m by η_t/η_{t-1} whenever the rate changes (Goyal et al.
2017, §2.1), which makes this form follow a changing rate the way PyTorch's does.

Nesterov (``nesterov=True``) uses the look-ahead reformulation of Bengio et al. 2013:
m_t = λ m_{t-1} − η g_t, θ_t = θ_{t-1} + λ m_t − η g_t, which matches ``torch.optim.SGD(nesterov=True)``
under a constant rate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.optim import Optimizer


class Momentum(Optimizer):
    """Heavy-ball momentum in the lecture's form: m ← λm − ηg, θ ← θ + m (λ = 0: gradient descent).

    Args:
        params: parameters or parameter groups.
        lr: the learning rate η ≥ 0.
        momentum: λ in [0, 1).
        nesterov: use the Nesterov look-ahead form (needs λ > 0).
        weight_decay: L2 coefficient added to the gradient, g ← g + wd·θ.
        momentum_correction: when η changes between steps, rescale m by η_new/η_old first.

    Example::

        >>> import torch
        >>> w = torch.nn.Parameter(torch.zeros(1))
        >>> opt = Momentum([w], lr=0.1, momentum=0.9)
        >>> for _ in range(2):
        ...     opt.zero_grad(); (w.sum()).backward(); opt.step()
        >>> round(w.item(), 3)
        -0.29
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float,
        momentum: float = 0.0,
        *,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        momentum_correction: bool = False,
    ) -> None:
        if not isinstance(lr, (int, float)) or lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr} (must be ≥ 0)")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Invalid momentum value: {momentum} (must be in [0, 1))")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay} (must be ≥ 0)")
        if nesterov and momentum == 0.0:
            raise ValueError("Nesterov momentum requires momentum > 0")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            momentum_correction=momentum_correction,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr = group["lr"]
            lam = group["momentum"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if group["weight_decay"] != 0.0:
                    grad = grad.add(param, alpha=group["weight_decay"])
                if lam == 0.0:
                    param.add_(grad, alpha=-lr)
                    continue
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(param)
                    state["last_lr"] = lr
                buffer = state["momentum_buffer"]
                if group["momentum_correction"] and state["last_lr"] not in (lr, 0.0):
                    buffer.mul_(lr / state["last_lr"])
                state["last_lr"] = lr
                buffer.mul_(lam).add_(grad, alpha=-lr)
                if group["nesterov"]:
                    param.add_(buffer, alpha=lam).add_(grad, alpha=-lr)
                else:
                    param.add_(buffer)
        return loss
