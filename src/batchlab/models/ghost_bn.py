"""Ghost batch normalization (Hoffer, Hubara & Soudry 2017) and batch norm without moving averages.

**Ghost batch normalization** ("Train longer, generalize better: closing the generalization gap
in large batch training of neural networks", Algorithm 1). In training, a batch of B examples is
cut, in order, into B/G "ghost batches" of G consecutive examples; each is normalized with its
own mean and (biased) variance, then scaled and shifted by the layer's shared γ and β::

    y = γ · (x − μ_l) / √(σ²_l + ε) + β       for x in ghost batch l = 1 … B/G

The running statistics are updated once per ghost batch, in order, exactly as an ordinary batch
norm layer updates them once per batch: with momentum η,
``running ← (1 − η)·running + η·stat_l`` for l = 1 … B/G (the mean, and the unbiased variance
with n = G·spatial positions, as in PyTorch), so after one training batch
``running = (1 − η)^{B/G}·running_0 + Σ_l η(1 − η)^{B/G − l}·stat_l``; ``num_batches_tracked``
grows by B/G (with ``momentum=None`` the cumulative average is over ghost batches). Each ghost
batch is normalized by ``torch.nn.functional.batch_norm`` itself, so G = B is ordinary batch
norm to the bit, outputs and running statistics alike. A G that does not divide B is a
one-line :class:`~batchlab.errors.ConfigError` at forward time.

In evaluation the running statistics are used, as in ordinary batch norm.

**Batch norm without moving averages** (Akiba, Suzuki & Fukuda 2017, "Extremely Large
Minibatch SGD: Training ResNet-50 on ImageNet in 15 Minutes"): with a very large batch the
moving averages accumulated during training describe weights that changed quickly, so the
statistics used at evaluation are computed afresh instead. Two forms are offered:

* ``eval_statistics="batch"``: evaluation normalizes each evaluated batch with its own mean and
  variance (no running statistics are consulted);
* recomputed population statistics: keep ``eval_statistics="running"`` and, after training,
  reset and recompute the running statistics with the final weights over training batches with
  :func:`torch.optim.swa_utils.update_bn` (a cumulative, not exponential, average), which is
  also what SWAP's last phase does.

``use_ghost_batch_norm(model, G)`` swaps every ``nn.BatchNorm1d``/``nn.BatchNorm2d`` of a model
for the ghost version, keeping its parameters and buffers (the same ``Parameter`` objects, so an
optimizer built before still updates them; state-dict keys are unchanged).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from batchlab.errors import ConfigError

EVAL_STATISTICS = ("running", "batch")


def _check_ghost_batch_size(ghost_batch_size: int | None) -> None:
    if ghost_batch_size is None:
        return
    if not isinstance(ghost_batch_size, int) or isinstance(ghost_batch_size, bool) or ghost_batch_size < 1:
        raise ConfigError(f"ghost batch size {ghost_batch_size!r}; allowed: a whole number ≥ 1 that divides the batch size")


def _check_eval_statistics(eval_statistics: str) -> None:
    if eval_statistics not in EVAL_STATISTICS:
        raise ConfigError(f"unknown evaluation statistics {eval_statistics!r}; allowed: {', '.join(EVAL_STATISTICS)}")


class GhostBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over ghost batches of ``ghost_batch_size`` examples (None: the whole batch).

    Same parameters, buffers and constructor arguments as ``nn.BatchNorm*d``, plus
    ``ghost_batch_size`` and ``eval_statistics`` (``"running"`` or ``"batch"``); see the module
    docstring for the exact rule.
    """

    def __init__(
        self,
        num_features: int,
        ghost_batch_size: int | None,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        eval_statistics: str = "running",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        _check_ghost_batch_size(ghost_batch_size)
        _check_eval_statistics(eval_statistics)
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.ghost_batch_size = ghost_batch_size
        self.eval_statistics = eval_statistics

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, ghost_batch_size={self.ghost_batch_size}, eval_statistics={self.eval_statistics}"

    def _next_average_factor(self) -> float:
        """The running-average weight of the next (ghost) batch, counting it as PyTorch does."""
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return factor

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        if not self.training:
            if self.eval_statistics == "batch" or not self.track_running_stats:
                return F.batch_norm(input, None, None, self.weight, self.bias, True, 0.0, self.eps)
            return F.batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        batch = input.shape[0]
        size = batch if self.ghost_batch_size is None else self.ghost_batch_size
        if batch % size:
            raise ConfigError(
                f"ghost batch size {size} does not divide the batch of {batch} examples; allowed: a divisor of {batch}"
            )
        running_mean = self.running_mean if self.track_running_stats else None
        running_var = self.running_var if self.track_running_stats else None
        outputs = [
            F.batch_norm(ghost, running_mean, running_var, self.weight, self.bias, True, self._next_average_factor(), self.eps)
            for ghost in input.split(size)
        ]
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)


class GhostBatchNorm1d(GhostBatchNorm):
    """Ghost batch norm for (N, C) or (N, C, L) inputs, in place of ``nn.BatchNorm1d``."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.dim()}D input)")


class GhostBatchNorm2d(GhostBatchNorm):
    """Ghost batch norm for (N, C, H, W) inputs, in place of ``nn.BatchNorm2d``."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() != 4:
            raise ValueError(f"expected 4D input (got {input.dim()}D input)")


_GHOST_OF = {nn.BatchNorm1d: GhostBatchNorm1d, nn.BatchNorm2d: GhostBatchNorm2d}


def ghost_version(layer: nn.BatchNorm1d | nn.BatchNorm2d, ghost_batch_size: int | None, eval_statistics: str = "running") -> GhostBatchNorm:
    """A ghost batch norm layer sharing ``layer``'s parameters and buffers."""
    ghost_class = _GHOST_OF[type(layer)]
    ghost = ghost_class(
        layer.num_features,
        ghost_batch_size,
        eps=layer.eps,
        momentum=layer.momentum,
        affine=layer.affine,
        track_running_stats=layer.track_running_stats,
        eval_statistics=eval_statistics,
        device=next((t.device for t in (*layer.parameters(), *layer.buffers())), None),
    )
    # The same Parameter and buffer objects: an optimizer built on the old layer keeps working.
    ghost.weight, ghost.bias = layer.weight, layer.bias
    ghost.running_mean, ghost.running_var = layer.running_mean, layer.running_var
    ghost.num_batches_tracked = layer.num_batches_tracked
    ghost.train(layer.training)
    return ghost


def use_ghost_batch_norm(model: nn.Module, ghost_batch_size: int | None, eval_statistics: str = "running") -> int:
    """Swap every ``nn.BatchNorm1d``/``nn.BatchNorm2d`` in ``model`` (in place); returns how many.

    ``ghost_batch_size=None`` keeps whole-batch normalization, which with
    ``eval_statistics="batch"`` is Akiba et al.'s batch norm without moving averages. Layers that
    are already ghost batch norm get the new settings.
    """
    _check_ghost_batch_size(ghost_batch_size)
    _check_eval_statistics(eval_statistics)
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, GhostBatchNorm):
                child.ghost_batch_size, child.eval_statistics = ghost_batch_size, eval_statistics
                swapped += 1
            elif type(child) in _GHOST_OF:
                setattr(parent, name, ghost_version(child, ghost_batch_size, eval_statistics))
                swapped += 1
    return swapped
