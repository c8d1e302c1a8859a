"""The lecture's momentum as a ``torch.optim.Optimizer``.

Rule (Hung-yi Lee, "Batch and Momentum"; Sutskever et al. 2013), applied by
:func:`batchlab.optim.functional.momentum_`::

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

from batchlab.optim.functional import correct_momentum_, momentum_


class Momentum(Optimizer):
    """Heavy-ball momentum in the lecture's form: m ← λm − ηg, θ ← θ + m (λ = 0: gradient descent).

    Args:
        params: parameters or parameter groups.
        lr: the learning rate η ≥ 0.
        momentum: λ in [0, 1).
        nesterov: use the Nesterov look-ahead form (needs λ > 0).
        weight_decay: L2 coefficient added to the gradient, g ← g + wd·θ.
        momentum_correction: when η changes between steps, rescale m by η_new/η_old first.
        foreach: update all tensors of a group with a few ``torch._foreach_*`` kernels instead of
            one loop per tensor (same arithmetic; see :mod:`batchlab.optim.functional`).

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
        foreach: bool = False,
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
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", False)  # checkpoints from before the option existed

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr = group["lr"]
            lam = group["momentum"]
            params, grads, buffers = [], [], []
            for param in group["params"]:
                if param.grad is None:
                    continue
                params.append(param)
                grads.append(param.grad)
                # .get: a run without momentum keeps no state at all (as its state_dict shows).
                state = self.state.get(param, {})
                buffer = state.get("momentum_buffer")
                if buffer is not None and lam != 0.0 and group["momentum_correction"]:
                    correct_momentum_(buffer, lr, state["last_lr"])
                buffers.append(buffer)
            momentum_(params, grads, buffers, lr=lr, momentum=lam, weight_decay=group["weight_decay"],
                      nesterov=group["nesterov"], foreach=group["foreach"])
            if lam != 0.0:
                for param, buffer in zip(params, buffers):
                    self.state[param].update(momentum_buffer=buffer, last_lr=lr)
        return loss
