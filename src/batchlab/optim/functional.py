"""The lecture's momentum rule, written once, in the forms its callers need.

Rule (Hung-yi Lee, "Batch and Momentum"; Sutskever et al. 2013)::

    g ← g + wd·θ                                   (weight decay, only when wd ≠ 0)
    λ = 0:   θ ← θ − ηg                            (gradient descent; no buffer is kept)
    λ > 0:   m ← λm − ηg,  then  θ ← θ + m         (heavy ball, m₀ = 0)
                           or   θ ← θ + λm − ηg    (Nesterov, Bengio et al. 2013's look-ahead form)

Goyal et al. 2017 (§2.1, "momentum correction"): when η changes from η_old to η_new between two
steps, :func:`correct_momentum_` rescales m by η_new/η_old first.

As in ``torch/optim/sgd.py``, one rule has several kernels, each doing the same arithmetic in the
same order, so their numbers agree to the last bit on the same device:

* :func:`momentum_` — lists of tensors, one kernel per tensor (``foreach=False``) or a few
  ``torch._foreach_*`` kernels over all of them (``foreach=True``: touches only existing storage
  when there is no weight decay, so a CUDA graph can capture it);
* :func:`momentum_rows_` — K runs side by side in (K, P) rows, each row with its own η, λ, weight
  decay and Nesterov flag (:class:`RowHyperparameters`);
* :func:`momentum_update` — out of place on NumPy arrays or tensors (small toy problems).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

Array = TypeVar("Array")
Tensors = list[torch.Tensor]
Buffers = list[torch.Tensor | None]  # None: no buffer yet (m₀ = 0)


def momentum_(
    params: Tensors,
    grads: Tensors,
    momentum_buffers: Buffers,
    *,
    lr: float,
    momentum: float,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    foreach: bool = False,
) -> None:
    """Apply the rule to every ``params[i]`` in place with gradient ``grads[i]``.

    ``momentum_buffers[i]`` is m for ``params[i]``; a None entry becomes a new zero buffer (m₀ = 0),
    written back into the list so the caller can keep it. With λ = 0 no buffer is made or used.
    """
    if not params:
        return
    if momentum != 0.0:
        for i, buffer in enumerate(momentum_buffers):
            if buffer is None:
                momentum_buffers[i] = torch.zeros_like(params[i])
    kernel = _multi_tensor_momentum if foreach else _single_tensor_momentum
    kernel(params, grads, momentum_buffers, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


def _single_tensor_momentum(params: Tensors, grads: Tensors, momentum_buffers: Buffers, *, lr: float, momentum: float,
                            weight_decay: float, nesterov: bool) -> None:
    for param, grad, buffer in zip(params, grads, momentum_buffers):
        if weight_decay != 0.0:
            grad = grad.add(param, alpha=weight_decay)
        if momentum == 0.0:
            param.add_(grad, alpha=-lr)
            continue
        buffer.mul_(momentum).add_(grad, alpha=-lr)
        if nesterov:
            param.add_(buffer, alpha=momentum).add_(grad, alpha=-lr)
        else:
            param.add_(buffer)


def _multi_tensor_momentum(params: Tensors, grads: Tensors, momentum_buffers: Buffers, *, lr: float, momentum: float,
                           weight_decay: float, nesterov: bool) -> None:
    if weight_decay != 0.0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    if momentum == 0.0:
        torch._foreach_add_(params, grads, alpha=-lr)
        return
    torch._foreach_mul_(momentum_buffers, momentum)
    torch._foreach_add_(momentum_buffers, grads, alpha=-lr)
    if nesterov:
        torch._foreach_add_(params, momentum_buffers, alpha=momentum)
        torch._foreach_add_(params, grads, alpha=-lr)
    else:
        torch._foreach_add_(params, momentum_buffers)


def correct_momentum_(buffer: torch.Tensor, lr: float, last_lr: float) -> None:
    """Goyal et al. 2017's momentum correction: m ← m · η_new/η_old when the rate has changed
    (nothing when it has not, or when η_old = 0 left no scale to correct)."""
    if last_lr not in (lr, 0.0):
        buffer.mul_(lr / last_lr)


def momentum_update(theta: Array, buffer: Array, grad: Array, *, lr: float, momentum: float,
                    nesterov: bool = False) -> tuple[Array, Array]:
    """One step out of place, for NumPy arrays or tensors: returns the new ``(θ, m)``.

    ``m = λm − ηg``, then ``θ + m`` (or ``θ + λm − ηg`` with ``nesterov``); λ = 0 gives
    ``θ − ηg`` with m = −ηg, the step just taken.
    """
    buffer = momentum * buffer - lr * grad
    if nesterov:
        return theta + momentum * buffer - lr * grad, buffer
    return theta + buffer, buffer


@dataclass(frozen=True)
class RowHyperparameters:
    """η, λ, weight decay and the Nesterov flag of K runs as (K, 1) tensors that broadcast over
    the runs' (K, P) rows, with which branches of the rule the K runs need (the common cases
    skip every ``torch.where``)."""

    lr: torch.Tensor
    negative_lr: torch.Tensor
    momentum: torch.Tensor
    weight_decay: torch.Tensor
    has_weight_decay: torch.Tensor
    nesterov: torch.Tensor
    no_buffer: torch.Tensor
    any_weight_decay: bool
    all_weight_decay: bool
    any_nesterov: bool
    all_nesterov: bool
    all_have_buffer: bool

    @classmethod
    def of(cls, lrs: Sequence[float], momenta: Sequence[float], weight_decays: Sequence[float],
           nesterovs: Sequence[bool], device: torch.device | str) -> RowHyperparameters:
        def column(values: Sequence, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.tensor(list(values), dtype=dtype, device=device).view(-1, 1)

        lr, weight_decay = column(lrs), column(weight_decays)
        return cls(
            lr=lr,
            negative_lr=-lr,
            momentum=column(momenta),
            weight_decay=weight_decay,
            has_weight_decay=weight_decay != 0.0,
            nesterov=column(nesterovs, torch.bool),
            no_buffer=column([m == 0.0 for m in momenta], torch.bool),
            any_weight_decay=any(wd != 0.0 for wd in weight_decays),
            all_weight_decay=all(wd != 0.0 for wd in weight_decays),
            any_nesterov=any(nesterovs),
            all_nesterov=all(nesterovs),
            all_have_buffer=all(m != 0.0 for m in momenta),
        )


def momentum_rows_(params: torch.Tensor, buffer: torch.Tensor, grads: torch.Tensor, rows: RowHyperparameters) -> None:
    """Apply each run's rule to its row of ``params`` (K, n) in place, with momentum ``buffer``
    (K, n) and gradients ``grads`` (K, n); the hyperparameters of row k are ``rows``' row k.

    Each row gets the arithmetic of :func:`momentum_` for that run alone, operation for operation.
    Rows whose rule differs from their neighbours' (λ = 0, Nesterov, weight decay) are told apart
    with ``torch.where`` and ``masked_fill_``, never by multiplying with 0/1 masks: 0·inf = NaN, so
    a mask would turn a run's overflow into NaN where the run alone keeps inf. A λ = 0 row keeps a
    zero buffer, so m ← λm − ηg gives it exactly −ηg.
    """
    # In place wherever the rule allows: on a CPU the K runs' state does not fit in cache, so
    # every (K, n) temporary costs a pass over memory (and, when large, fresh pages).
    if rows.all_weight_decay:
        grads = grads.addcmul(params, rows.weight_decay)  # g + wd·θ
    elif rows.any_weight_decay:
        grads = torch.where(rows.has_weight_decay, grads.addcmul(params, rows.weight_decay), grads)
    buffer.mul_(rows.momentum).addcmul_(grads, rows.negative_lr)  # m ← λm − ηg
    if not rows.any_nesterov:
        params.add_(buffer)  # θ ← θ + m (for λ = 0: θ − ηg)
    elif rows.all_nesterov:
        params.addcmul_(buffer, rows.momentum).addcmul_(grads, rows.negative_lr)  # θ ← θ + λm − ηg
    else:
        nesterov = (params + rows.momentum * buffer) + grads * rows.negative_lr
        params.copy_(torch.where(rows.nesterov, nesterov, params + buffer))
    if not rows.all_have_buffer:
        buffer.masked_fill_(rows.no_buffer, 0.0)  # λ = 0 runs keep no momentum
