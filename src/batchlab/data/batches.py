"""Mini-batches from a device-resident split: the lecture's "shuffle, then split into batches".

One epoch walks a permutation of the training indices in slices of B: every example is used
once per epoch, the last partial batch too unless ``drop_last``. The permutation depends only on
(seed, epoch), so a run can resume at any epoch, and a trainer that runs many models at once
reproduces a single run's batches exactly.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import torch

from batchlab.config import SHUFFLE_MODES, resolve_batch_size  # noqa: F401  (re-exported by batchlab.data)
from batchlab.data.splits import TensorSplit
from batchlab.errors import ConfigError, DataError

_MIX_MULTIPLIER = 1_000_003  # a prime larger than any epoch count, so (seed, epoch) pairs do not collide
_SEED_MODULUS = 2**63  # torch.Generator.manual_seed accepts any value below this


def _mix(seed: int, epoch: int) -> int:
    """The generator seed of one epoch: ``(seed · 1,000,003 + epoch) mod 2^63``.

    Deterministic across processes and platforms (no Python ``hash``), non-negative and below
    2^63. Distinct for all epochs 0 … 1,000,002 of a seed, and, because the multiplier is odd
    (invertible modulo 2^63), different seeds in 0 … 2^63 − 1 give different values for the
    same epoch.
    """
    return (seed * _MIX_MULTIPLIER + epoch) % _SEED_MODULUS


def epoch_permutation(n: int, epoch: int, seed: int, shuffle: str) -> torch.Tensor:
    """The order in which epoch ``epoch`` (0-based) visits the ``n`` training examples.

    * ``"epoch"``: ``torch.randperm(n, generator=torch.Generator().manual_seed(_mix(seed, epoch)))``,
      a fresh permutation every epoch (the lecture's shuffle);
    * ``"once"``: the permutation of epoch 0, every epoch (batches fixed once, at random);
    * ``"none"``: ``torch.arange(n)``, the dataset's order.

    Returns an int64 tensor on the CPU; callers move it to their device once per epoch.
    """
    if shuffle not in SHUFFLE_MODES:
        raise ConfigError(f"unknown shuffle mode {shuffle!r}; allowed: {', '.join(SHUFFLE_MODES)}")
    if n < 0:
        raise ValueError(f"n must be ≥ 0, got {n}")
    if epoch < 0:
        raise ValueError(f"epoch must be ≥ 0, got {epoch}")
    if shuffle == "none":
        return torch.arange(n, dtype=torch.int64)
    drawn_epoch = 0 if shuffle == "once" else epoch
    generator = torch.Generator().manual_seed(_mix(seed, drawn_epoch))
    return torch.randperm(n, generator=generator, dtype=torch.int64)


@functools.lru_cache(maxsize=8, typed=True)  # typed: True and 1.0 are not the batch size 1
def batch_index_slices(n: int, batch_size: int, drop_last: bool = False) -> tuple[tuple[int, int], ...]:
    """(start, end) pairs that cut positions 0 … n − 1 of a permutation into batches of
    ``batch_size``; the last, shorter batch is kept unless ``drop_last``.

    With ``drop_last`` and ``n < batch_size`` the tuple is empty; callers that need at least one
    update must check (:func:`resolve_batch_size` already rejects ``batch_size > n``).

    Immutable and cached: a pack of K runs asks for the same epoch's slices once per run, and at
    B = 1 an epoch has n of them (7.7 MB of tuples for 60,000 examples, hence few entries).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size {batch_size!r} is invalid; allowed: an integer ≥ 1")
    if n < 0:
        raise ValueError(f"n must be ≥ 0, got {n}")
    whole = n - n % batch_size
    slices = tuple(zip(range(0, whole, batch_size), range(batch_size, whole + 1, batch_size)))
    return slices + ((whole, n),) if whole < n and not drop_last else slices


def iterate_batches(
    split: TensorSplit,
    batch_size: int | str,
    *,
    epoch: int,
    seed: int,
    shuffle: str = "epoch",
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The (x, y) batches of one epoch, as tensors on the split's device.

    The permutation is built on the CPU and moved to the device once per epoch; each batch is
    then a gather on the device. With ``shuffle="none"`` the batches are plain slices (views, no
    copy).
    """
    n = len(split)
    size = resolve_batch_size(batch_size, n)
    slices = batch_index_slices(n, size, drop_last=drop_last)
    order = epoch_permutation(n, epoch, seed, shuffle)
    if shuffle == "none":
        # The order is the identity, so plain slices (views) replace the gathers.
        for start, end in slices:
            yield split.x[start:end], split.y[start:end]
        return
    order = order.to(split.x.device)
    for start, end in slices:
        index = order[start:end]
        yield split.x[index], split.y[index]
