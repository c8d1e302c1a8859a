"""Data that does not fit on the training device: read batch by batch, in the same order.

A :class:`StreamedSplit` stands where a :class:`~batchlab.data.TensorSplit` stands when a user's
data is too large to keep on the device. An epoch still visits
``epoch_permutation(n, epoch, seed, shuffle)`` in slices of B (:class:`PermutationBatchSampler`),
so a streamed run draws exactly the batches of the same run with its data on the device; only
where the examples come from differs:

* a ``torch.utils.data.Dataset``: read through a ``DataLoader`` whose batch sampler is that
  permutation, items stacked by the default collate function, each batch then moved to the device;
* tensors kept on the CPU (too large for the GPU): each batch gathered on the CPU and moved.

:func:`split_batches` and :func:`split_chunks` give (x, y) on the device for either kind of split,
so the trainer's loop is the same for both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from batchlab.data.splits import TensorSplit


class PermutationBatchSampler(Sampler[list[int]]):
    """The batches of one epoch: ``order[start:end]`` for each (start, end) of ``slices``."""

    def __init__(self, order: torch.Tensor, slices: Sequence[tuple[int, int]]) -> None:
        self.order = order.cpu()
        self.slices = list(slices)

    def __iter__(self) -> Iterator[list[int]]:
        for start, end in self.slices:
            yield self.order[start:end].tolist()

    def __len__(self) -> int:
        return len(self.slices)


class StreamedSplit:
    """A split read a batch at a time: a Dataset of (x, y) items, or CPU tensors ``x``, ``y``.

    ``workers`` is the DataLoader's ``num_workers`` for a Dataset (0: read in this process).
    """

    def __init__(self, *, dataset: Dataset | None = None, tensors: tuple[torch.Tensor, torch.Tensor] | None = None,
                 length: int, workers: int = 0) -> None:
        if (dataset is None) == (tensors is None):
            raise ValueError("a streamed split holds either a dataset or tensors")
        self.dataset = dataset
        self.tensors = tensors
        self.length = int(length)
        self.workers = workers

    def __len__(self) -> int:
        return self.length

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def batches(self, order: torch.Tensor, slices: Sequence[tuple[int, int]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The (x, y) batches of ``order`` cut by ``slices``, on the CPU."""
        if self.tensors is not None:
            x, y = self.tensors
            order = order.cpu()
            for start, end in slices:
                index = order[start:end]
                yield x[index], y[index]
            return
        loader = DataLoader(self.dataset, batch_sampler=PermutationBatchSampler(order, slices),
                            num_workers=self.workers)
        for x, y in loader:
            yield x, y


def split_batches(
    split: "TensorSplit | StreamedSplit", order: torch.Tensor, slices: Sequence[tuple[int, int]], device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of one epoch on ``device``: gathers on the device for a TensorSplit, reads
    and copies for a StreamedSplit."""
    if isinstance(split, StreamedSplit):
        for x, y in split.batches(order, slices):
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return
    for start, end in slices:
        index = order[start:end]
        yield split.x[index], split.y[index]


def split_chunks(
    split: "TensorSplit | StreamedSplit", chunk: int, device: torch.device | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The whole split in dataset order, ``chunk`` examples at a time, on ``device`` (default: the
    split's own)."""
    n = len(split)
    slices = [(start, min(start + chunk, n)) for start in range(0, n, chunk)]
    if isinstance(split, StreamedSplit):
        yield from split_batches(split, torch.arange(n), slices, device or torch.device("cpu"))
        return
    for start, end in slices:
        yield split.x[start:end], split.y[start:end]
