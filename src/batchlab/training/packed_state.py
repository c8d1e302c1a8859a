"""The state of K runs trained as one: their parameters side by side, and the lecture's momentum
rule vectorized over them.

Parameters live in one flat float tensor of shape (K, P) — run k's P parameters in row k, in the
order of ``model.parameters()`` — and every named parameter is a view into it of shape
(K, *shape). The momentum buffers have the same layout. Checkpoints, selecting runs and the
optimizer work on whole rows, and a CUDA graph can update the same memory in place on every
replay.

Per-run hyperparameters (η, λ, weight decay, Nesterov flag) are (K, 1) tensors that broadcast over
a run's row, so each run follows exactly the rule of :class:`batchlab.optim.Momentum`; the rule
itself is written once, in :mod:`batchlab.optim.functional` (:func:`~batchlab.optim.functional.momentum_rows_`).
η changes in place (:meth:`PackedMomentum.set_lr`) when the runs follow learning-rate schedules,
one rate per row before every update; as in Momentum, each past rate stays inside m.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from batchlab.config import RunConfig
from batchlab.optim import build_optimizer
from batchlab.optim.functional import RowHyperparameters, momentum_rows_


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


class PackedMomentum:
    """:class:`batchlab.optim.Momentum` for K runs at once, each with its own η, λ, wd, Nesterov.

    ``buffer`` is the (K, P) momentum; rows of runs with λ = 0 stay zero (Momentum keeps no
    buffer for them). The rule (:func:`batchlab.optim.functional.momentum_rows_`) is applied column
    block by column block (``columns``: one (start, end) per parameter tensor), so the gradients
    never need to be copied into one flat tensor, and in place: no (K, P) temporary is made unless
    a pack mixes weight decay with none or Nesterov with heavy ball. The arithmetic of each row is
    the single-run rule, operation for operation, so a packed run and the same run trained alone
    agree to float rounding.
    """

    def __init__(self, configs: Sequence[RunConfig], buffer: torch.Tensor, columns: Sequence[tuple[int, int]]) -> None:
        self.configs = tuple(configs)
        self.buffer = buffer
        self.columns = tuple(columns)
        self.rows = RowHyperparameters.of(
            [c.lr for c in configs], [c.momentum for c in configs], [c.weight_decay for c in configs],
            [c.nesterov for c in configs], buffer.device,
        )

    @torch.no_grad()
    def step(self, params: torch.Tensor, grads: Sequence[torch.Tensor]) -> None:
        """Update ``params`` (K, P) in place; ``grads[i]`` is the (K, end − start) gradient of
        column block ``columns[i]``."""
        for (start, end), grad in zip(self.columns, grads):
            momentum_rows_(params[:, start:end], self.buffer[:, start:end], grad, self.rows)

    def set_lr(self, rates: Sequence[float]) -> None:
        """Use ``rates[k]`` as run k's η from the next update on (in place: a captured CUDA graph
        reads the new values)."""
        values = torch.tensor(list(rates), dtype=self.rows.lr.dtype).view(-1, 1).to(self.rows.lr.device)
        self.rows.lr.copy_(values)
        self.rows.negative_lr.copy_(-values)

    def select(self, keep: Sequence[int]) -> "PackedMomentum":
        """The rule for the runs ``keep`` only (rows in that order, with their current η)."""
        index = torch.tensor(list(keep), dtype=torch.long, device=self.buffer.device)
        selected = PackedMomentum([self.configs[i] for i in keep], self.buffer.index_select(0, index), self.columns)
        selected.set_lr(self.rows.lr.index_select(0, index).view(-1).tolist())
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
        put_momentum_row(optimizer, tensors, layout, buffer)
    return optimizer.state_dict()


def stacked_rows(runs: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """One (K, P) tensor of K runs' tensors, each run's flattened into its row in the given order
    and copied once (no per-run row first, then a stack)."""
    first = runs[0][0]
    rows = torch.empty((len(runs), sum(t.numel() for t in runs[0])), dtype=first.dtype, device=first.device)
    for row, tensors in zip(rows, runs):
        torch.cat([t.detach().reshape(-1) for t in tensors], out=row)
    return rows


def momentum_rows(optimizers: Sequence[torch.optim.Optimizer], models: Sequence[nn.Module],
                  layout: ParameterLayout) -> torch.Tensor:
    """K runs' momentum buffers as a (K, P) tensor in ``layout``'s columns, zeros where a run's
    optimizer holds none yet (a fresh run, or λ = 0): the rows start as zeros and only the buffers
    that exist are copied in. Making a zero buffer per parameter first, then copying it, took
    ~35 ms of a 16-run pack of the lecture MLP on a 2-core CPU, whose runs start with none."""
    columns = layout.columns
    first = next(models[0].parameters())
    rows = torch.zeros((len(models), columns[-1][1] if columns else 0), dtype=first.dtype, device=first.device)
    for row, optimizer, model in zip(rows, optimizers, models):
        for (start, end), param in zip(columns, model.parameters()):
            buffer = optimizer.state.get(param, {}).get("momentum_buffer")
            if buffer is not None:
                row[start:end].copy_(buffer.reshape(-1))
    return rows


def put_momentum_row(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor], layout: ParameterLayout,
                     row: torch.Tensor) -> None:
    """Write one run's (P,) momentum ``row`` (``layout``'s columns) into ``optimizer``'s state
    for ``params``, the run's parameter tensors in layout order: into the buffers it holds, in
    place, and as new buffers where it holds none. The inverse of :func:`momentum_rows` for one run,
    for a run with momentum (λ = 0 keeps no state); :func:`optimizer_state_dict` formats a
    checkpoint with it. ``last_lr`` is set to the group's rate (the rate of the last update, in a
    checkpoint); it only matters to momentum correction, which is never packed."""
    lr = optimizer.param_groups[0]["lr"]
    with torch.no_grad():
        for (start, end), param in zip(layout.columns, params):
            momentum = row[start:end].view_as(param)
            state = optimizer.state[param]
            if state.get("momentum_buffer") is None:
                state["momentum_buffer"] = momentum.clone()
            else:
                state["momentum_buffer"].copy_(momentum)
            state["last_lr"] = lr
