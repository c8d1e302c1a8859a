"""The state of K runs trained as one: their parameters side by side, and the lecture's momentum
rule vectorized over them.

Parameters live in one flat float tensor of shape (K, P) — run k's P parameters in row k, in the
order of ``model.parameters()`` — and every named parameter is a view into it of shape
(K, *shape). The momentum buffers have the same layout. Checkpoints, selecting runs and the
optimizer work on whole rows, and a CUDA graph can update the same memory in place on every
replay.

Per-run hyperparameters (η, λ, weight decay, Nesterov flag) are (K, 1) tensors that broadcast over
a run's row, so each run follows exactly the rule of :class:`batchlab.optim.Momentum`. η changes
in place (:meth:`PackedMomentum.set_lr`) when the runs follow learning-rate schedules, one rate
per row before every update; as in Momentum, each past rate stays inside m::

    g ← g + wd·θ                       (only for runs with wd ≠ 0)
    λ = 0:      θ ← θ − ηg             (no buffer is kept, as in Momentum)
    λ > 0:      m ← λm − ηg, then θ ← θ + m            (heavy ball, the lecture's form)
                               or θ ← θ + λm − ηg      (Nesterov, Bengio et al. 2013)

Runs whose rule differs from their neighbours' (λ = 0, Nesterov, weight decay) are told apart
with ``torch.where`` and ``masked_fill_``, never by multiplying with 0/1 masks: 0·inf = NaN, so a
mask would turn a run's overflow into NaN where the run alone keeps inf, and a run's numbers
must be the ones it gets when trained alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from batchlab.config import RunConfig
from batchlab.optim import build_optimizer


@dataclass(frozen=True)
class ParameterLayout:
    """Where each named parameter of the single model sits in a row of the flat (K, P) tensor."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    offsets: tuple[int, ...]

    @classmethod
    def of(cls, model: nn.Module) -> "ParameterLayout":
        names, shapes, offsets = [], [], []
        offset = 0
        for name, parameter in model.named_parameters():
            names.append(name)
            shapes.append(parameter.shape)
            offsets.append(offset)
            offset += parameter.numel()
        return cls(tuple(names), tuple(shapes), tuple(offsets))

    @property
    def columns(self) -> list[tuple[int, int]]:
        """The (start, end) columns of each parameter in a row, in layout order."""
        return [(offset, offset + math.prod(shape)) for shape, offset in zip(self.shapes, self.offsets)]

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named (K, *shape) views into ``flat`` (K, P); writing to ``flat`` updates them."""
        k = flat.shape[0]
        return {
            name: flat[:, offset : offset + math.prod(shape)].view(k, *shape)
            for name, shape, offset in zip(self.names, self.shapes, self.offsets)
        }


def _per_run(values: Sequence[float], device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.tensor(list(values), dtype=dtype, device=device).view(-1, 1)


class PackedMomentum:
    """:class:`batchlab.optim.Momentum` for K runs at once, each with its own η, λ, wd, Nesterov.

    ``buffer`` is the (K, P) momentum; rows of runs with λ = 0 stay zero (Momentum keeps no
    buffer for them). The rule is applied column block by column block (``columns``: one
    (start, end) per parameter tensor), so the gradients never need to be copied into one flat
    tensor, and in place: no (K, P) temporary is made unless a pack mixes weight decay with none
    or Nesterov with heavy ball. The arithmetic of each row is the
    single-run rule, operation for operation, so a packed run and the same run trained alone
    agree to float rounding.
    """

    def __init__(self, configs: Sequence[RunConfig], buffer: torch.Tensor, columns: Sequence[tuple[int, int]]) -> None:
        device = buffer.device
        self.configs = tuple(configs)
        self.buffer = buffer
        self.columns = tuple(columns)
        self.lr = _per_run([c.lr for c in configs], device)
        self._negative_lr = -self.lr
        self.momentum = _per_run([c.momentum for c in configs], device)
        self.weight_decay = _per_run([c.weight_decay for c in configs], device)
        self.nesterov = _per_run([c.nesterov for c in configs], device, torch.bool)
        self.has_buffer = _per_run([c.momentum != 0.0 for c in configs], device, torch.bool)
        self._has_weight_decay = self.weight_decay != 0.0
        # Which branches of the rule this pack needs; the common cases skip every torch.where.
        self._any_weight_decay = any(c.weight_decay != 0.0 for c in configs)
        self._all_weight_decay = all(c.weight_decay != 0.0 for c in configs)
        self._all_have_buffer = all(c.momentum != 0.0 for c in configs)
        self._no_buffer = ~self.has_buffer
        self._all_nesterov = all(c.nesterov for c in configs)
        self._any_nesterov = any(c.nesterov for c in configs)

    @torch.no_grad()
    def step(self, params: torch.Tensor, grads: Sequence[torch.Tensor]) -> None:
        """Update ``params`` (K, P) in place; ``grads[i]`` is the (K, end − start) gradient of
        column block ``columns[i]``."""
        for (start, end), grad in zip(self.columns, grads):
            self._update(params[:, start:end], self.buffer[:, start:end], grad)

    def _update(self, params: torch.Tensor, buffer: torch.Tensor, grads: torch.Tensor) -> None:
        # In place wherever the rule allows: on a CPU the K runs' state does not fit in cache, so
        # every (K, P) temporary costs a pass over memory (and, when large, fresh pages).
        if self._all_weight_decay:
            grads = grads.addcmul(params, self.weight_decay)  # g + wd·θ
        elif self._any_weight_decay:
            grads = torch.where(self._has_weight_decay, grads.addcmul(params, self.weight_decay), grads)
        # m ← λm − ηg; a λ = 0 row holds a zero buffer, so it gets exactly −ηg.
        buffer.mul_(self.momentum).addcmul_(grads, self._negative_lr)
        if not self._any_nesterov:
            params.add_(buffer)  # θ ← θ + m (for λ = 0: θ − ηg)
        elif self._all_nesterov:
            params.addcmul_(buffer, self.momentum).addcmul_(grads, self._negative_lr)  # θ ← θ + λm − ηg
        else:
            nesterov = (params + self.momentum * buffer) + grads * self._negative_lr
            params.copy_(torch.where(self.nesterov, nesterov, params + buffer))
        if not self._all_have_buffer:
            buffer.masked_fill_(self._no_buffer, 0.0)  # λ = 0 runs keep no momentum

    def set_lr(self, rates: Sequence[float]) -> None:
        """Use ``rates[k]`` as run k's η from the next update on (in place: a captured CUDA graph
        reads the new values)."""
        values = torch.tensor(list(rates), dtype=self.lr.dtype).view(-1, 1).to(self.lr.device)
        self.lr.copy_(values)
        self._negative_lr.copy_(-values)

    def select(self, keep: Sequence[int]) -> "PackedMomentum":
        """The rule for the runs ``keep`` only (rows in that order, with their current η)."""
        index = torch.tensor(list(keep), dtype=torch.long, device=self.buffer.device)
        selected = PackedMomentum([self.configs[i] for i in keep], self.buffer.index_select(0, index), self.columns)
        selected.set_lr(self.lr.index_select(0, index).view(-1).tolist())
        return selected


def optimizer_state_dict(
    config: RunConfig,
    layout: ParameterLayout,
    params: dict[str, torch.Tensor],
    buffer: torch.Tensor | None,
    lr: float | None = None,
) -> dict:
    """The ``state_dict`` that the single run's optimizer would hold, so a run checkpointed in a
    pack resumes alone (and vice versa).

    Made by a real :func:`batchlab.optim.build_optimizer` over the run's own parameter tensors
    ``params`` (single-model names and shapes): that guarantees the format
    :meth:`Momentum.load_state_dict` expects. ``buffer`` is the run's (P,) momentum row, or None
    for a run without momentum; ``lr`` the rate of its last update (default: ``config.lr``).
    """
    lr = config.lr if lr is None else lr
    tensors = [params[name] for name in layout.names]
    optimizer = build_optimizer(
        config.optimizer,
        tensors,
        lr=lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )
    if buffer is not None and config.momentum != 0.0:
        for tensor, row_view in zip(tensors, layout.views(buffer.unsqueeze(0)).values()):
            optimizer.state[tensor] = {"momentum_buffer": row_view[0].clone(), "last_lr": lr}
    return optimizer.state_dict()


def momentum_row_from_optimizer(optimizer: torch.optim.Optimizer, model: nn.Module) -> torch.Tensor:
    """One run's momentum buffers as a (P,) row, zeros where the optimizer holds none yet."""
    rows = []
    for parameter in model.parameters():
        buffer = optimizer.state.get(parameter, {}).get("momentum_buffer")
        rows.append((buffer if buffer is not None else torch.zeros_like(parameter)).detach().reshape(-1))
    return torch.cat(rows) if rows else torch.zeros(0)
