"""The three data paths whose update times are compared, each as an object whose ``step()`` is one
training update (batch in, forward, backward, optimizer step).

* ``dataloader`` — the usual plain-PyTorch loop: ``DataLoader(TensorDataset(x, y),
  batch_size=B, shuffle=True)`` over CPU tensors, each batch moved to the device in the step. The
  loader gathers a batch one example at a time and stacks it (a per-example pipeline).
* ``resident`` — what batchlab's trainer does (``batchlab/training/loop.py``): the whole training set
  lives on the device; each epoch draws ``epoch_permutation(N, epoch, seed, "epoch")`` and a batch
  is the gather ``x[order[start:end]]``.
* ``cuda-graph`` — resident data, and the whole step (gather from a static index buffer, forward,
  backward, the lecture's momentum update) captured once in a ``torch.cuda.CUDAGraph`` and replayed:
  one launch per update instead of dozens. CUDA only.

Every path starts from the same weights (``torch.manual_seed(seed)``, model built on the CPU, then
moved), differentiates the loss the trainer would (cross-entropy, the mean over the batch, for a
registry model; a user's task's own loss: :mod:`batchlab.timing.timed_task`), and walks whole
epochs: N examples, ``ceil(N / B)`` updates, the last batch shorter when B does not divide N.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from batchlab.data import batch_index_slices, epoch_permutation
from batchlab.runtime.device import synchronize
from batchlab.errors import ConfigError
from batchlab.optim import build_optimizer
from batchlab.optim.registry import check_settings, registered_with
from batchlab.optim.functional import momentum_
from batchlab.timing.timed_task import TimedTask
from batchlab.timing.workload import TimingData

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

DATALOADER = "dataloader"
RESIDENT = "resident"
CUDA_GRAPH = "cuda-graph"
PATHS = (DATALOADER, RESIDENT, CUDA_GRAPH)
# Optimizers the cuda-graph path can replay: the lecture's rule (and its λ = 0 case), written as
# in-place foreach operations on static buffers (the registry's ``graph_replayable``).
GRAPH_OPTIMIZERS = registered_with("graph_replayable")
# Eager steps run on a side stream before a capture, as torch.cuda.graphs' documentation asks
# (lazy initialization of cuBLAS handles and autograd's buffers must not happen inside a capture).
GRAPH_WARMUP_STEPS = 3


def check_path(path: str, device: torch.device) -> None:
    """Raise :class:`ConfigError` when ``path`` is unknown or cannot run on ``device``."""
    if path not in PATHS:
        raise ConfigError(f"unknown timing path {path!r}; allowed: {', '.join(PATHS)}")
    if path == CUDA_GRAPH and device.type != "cuda":
        raise ConfigError(
            f"cuda-graph needs a CUDA device; allowed on {device.type}: {DATALOADER}, {RESIDENT}"
        )


def timed_task_of(model: str | TimedTask, data: TimingData, hidden=None) -> TimedTask:
    """``model`` as a :class:`TimedTask`: a registry name on ``data``'s dataset, or itself."""
    return model if isinstance(model, TimedTask) else TimedTask.from_registry(model, data.dataset, hidden)


def build_timed_model(model: str | TimedTask, data: TimingData, device: torch.device, seed: int,
                      hidden=None) -> nn.Module:
    """The model as the trainer builds it: seeded, created on the CPU, then moved to ``device``."""
    return timed_task_of(model, data, hidden).build_model(data, device, seed)


class ResidentBatches:
    """Index batches that walk one seeded permutation per epoch, as ``loop.py`` does.

    ``next()`` returns the next slice of the current epoch's permutation (on ``device``) and
    starts a new epoch after the last slice; ``examples_seen`` counts every index handed out.
    """

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device) -> None:
        self.n = n
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.slices = batch_index_slices(n, batch_size)
        self.epoch = -1
        self.position = len(self.slices)
        self.examples_seen = 0
        self._order: torch.Tensor | None = None

    @property
    def updates_per_epoch(self) -> int:
        return len(self.slices)

    @property
    def batch_lengths(self) -> set[int]:
        return {end - start for start, end in self.slices}

    def new_epoch(self) -> None:
        self.epoch += 1
        self._order = epoch_permutation(self.n, self.epoch, self.seed, "epoch").to(self.device)
        self.position = 0

    def next(self) -> torch.Tensor:
        if self.position >= len(self.slices):
            self.new_epoch()
        start, end = self.slices[self.position]
        self.position += 1
        self.examples_seen += end - start
        assert self._order is not None
        return self._order[start:end]


class DataLoaderPath:
    """The plain-PyTorch way: a ``DataLoader`` over CPU tensors, batches copied to the device."""

    name = DATALOADER

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        data: TimingData,
        batch_size: int,
        device: torch.device,
        seed: int = 0,
        num_workers: int = 0,
        loss: Loss = F.cross_entropy,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.device = device
        self.loss = loss
        self.loader = DataLoader(
            TensorDataset(data.x, data.y),
            batch_size=batch_size,
            shuffle=True,
            num_workers=num_workers,
            generator=torch.Generator().manual_seed(seed),
        )
        self.updates_per_epoch = len(self.loader)
        self.examples_seen = 0
        self._iterator = None
        self.capture_s: float | None = None

    def new_epoch(self) -> None:
        self._iterator = iter(self.loader)

    def step(self) -> None:
        if self._iterator is None:
            self.new_epoch()
        try:
            x, y = next(self._iterator)
        except StopIteration:
            self.new_epoch()
            x, y = next(self._iterator)
        x, y = x.to(self.device), y.to(self.device)
        loss = self.loss(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.examples_seen += int(y.shape[0])


class ResidentPath:
    """batchlab's trainer step: data on the device, ``x[index]`` from a per-epoch permutation."""

    name = RESIDENT

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        data: TimingData,
        batch_size: int,
        device: torch.device,
        seed: int = 0,
        loss: Loss = F.cross_entropy,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.loss = loss
        self.x, self.y = data.on(device)
        self.batches = ResidentBatches(data.n, batch_size, seed, device)
        self.updates_per_epoch = self.batches.updates_per_epoch
        self.capture_s: float | None = None

    @property
    def examples_seen(self) -> int:
        return self.batches.examples_seen

    def new_epoch(self) -> None:
        self.batches.new_epoch()

    def step(self) -> None:
        index = self.batches.next()
        loss = self.loss(self.model(self.x[index]), self.y[index])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


class CapturableStep:
    """One whole training step written so that a CUDA graph can capture it: gather the batch from
    the resident data, forward, backward into gradients that are None (so backward assigns them),
    and the lecture's momentum update (:func:`batchlab.optim.functional.momentum_` in its foreach
    form, which touches only existing storage) on buffers allocated up front.

    It runs eagerly on any device too, which is how its arithmetic is checked against
    :class:`batchlab.optim.Momentum` without a GPU.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, lr: float, momentum: float,
                 loss: Loss = F.cross_entropy) -> None:
        self.model = model
        self.loss = loss
        self.x, self.y = x, y
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.buffers = [torch.zeros_like(p) for p in self.params]

    def __call__(self, index: torch.Tensor) -> None:
        loss = self.loss(self.model(self.x[index]), self.y[index])
        loss.backward()
        with torch.no_grad():
            momentum_(self.params, [p.grad for p in self.params], self.buffers, lr=self.lr, momentum=self.momentum,
                      foreach=True)

    def state_tensors(self) -> list[torch.Tensor]:
        """Everything a step changes: weights, momentum buffers, model buffers (batch-norm stats)."""
        return [*self.model.parameters(), *self.buffers, *self.model.buffers()]


class CudaGraphPath:
    """Resident data and the whole step replayed from a ``torch.cuda.CUDAGraph``.

    One graph is captured per batch length of an epoch (B, and N mod B when B does not divide
    N), each with its own memory pool. Each replay reads its batch from a static index buffer that
    :meth:`step` fills with the next slice of the epoch's permutation, so the data order is the
    resident path's. Before capturing, a few eager steps run on a side stream (PyTorch's
    documented recipe); the weights, momentum buffers and model buffers are then put back, so the
    first replay starts from the initial weights with m = 0. ``capture_s`` (warm-up plus capture)
    is reported apart from the update times.
    """

    name = CUDA_GRAPH

    def __init__(
        self,
        model: nn.Module,
        data: TimingData,
        batch_size: int,
        device: torch.device,
        *,
        lr: float,
        momentum: float,
        seed: int = 0,
        loss: Loss = F.cross_entropy,
    ) -> None:
        check_path(CUDA_GRAPH, device)
        self.model = model
        self.device = device
        x, y = data.on(device)
        self.train_step = CapturableStep(model, x, y, lr=lr, momentum=momentum, loss=loss)
        self.batches = ResidentBatches(data.n, batch_size, seed, device)
        self.updates_per_epoch = self.batches.updates_per_epoch
        self.static_index: dict[int, torch.Tensor] = {}
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        synchronize(device)
        started = time.perf_counter()
        for length in sorted(self.batches.batch_lengths, reverse=True):
            self._capture(length)
        synchronize(device)
        self.capture_s = time.perf_counter() - started

    @property
    def examples_seen(self) -> int:
        return self.batches.examples_seen

    def new_epoch(self) -> None:
        self.batches.new_epoch()

    def step(self) -> None:
        index = self.batches.next()
        length = int(index.shape[0])
        self.static_index[length].copy_(index)
        self.graphs[length].replay()

    def _capture(self, length: int) -> None:
        index = torch.arange(length, device=self.device)
        state = self.train_step.state_tensors()
        with torch.no_grad():
            initial = [t.detach().clone() for t in state]
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(GRAPH_WARMUP_STEPS):
                self.model.zero_grad(set_to_none=True)
                self.train_step(index)
        torch.cuda.current_stream(self.device).wait_stream(side)
        with torch.no_grad():
            for tensor, value in zip(state, initial):
                tensor.copy_(value)
        # Gradients allocated inside the capture live in the graph's private memory pool; each
        # replay writes them afresh (backward into None grads assigns instead of accumulating).
        self.model.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.train_step(index)
        self.static_index[length] = index
        self.graphs[length] = graph


def build_path(
    path: str,
    model: str | TimedTask,
    data: TimingData,
    batch_size: int,
    device: torch.device,
    *,
    optimizer: str = "momentum",
    lr: float = 0.1,
    momentum: float = 0.9,
    seed: int = 0,
    num_workers: int = 0,
    hidden=None,
):
    """A ready-to-step path object for one measurement (model seeded, graph captured): ``model``
    is a :class:`TimedTask` or a registry model's name (with ``hidden`` widths) on ``data``."""
    check_path(path, device)
    timed = timed_task_of(model, data, hidden)
    conflict = timed.batch_norm_conflict(data.n, batch_size)
    if conflict:
        raise ConfigError(conflict)
    net = timed.build_model(data, device, seed)
    if path == CUDA_GRAPH:
        if optimizer not in GRAPH_OPTIMIZERS:
            raise ConfigError(
                f"the cuda-graph path replays the lecture's momentum rule, not {optimizer!r}; "
                f"allowed: {', '.join(GRAPH_OPTIMIZERS)}"
            )
        check_settings(optimizer, momentum=momentum)
        return CudaGraphPath(net, data, batch_size, device, lr=lr, momentum=momentum, seed=seed, loss=timed.loss)
    opt = build_optimizer(optimizer, net.parameters(), lr=lr, momentum=momentum)
    if path == DATALOADER:
        return DataLoaderPath(net, opt, data, batch_size, device, seed=seed, num_workers=num_workers, loss=timed.loss)
    return ResidentPath(net, opt, data, batch_size, device, seed=seed, loss=timed.loss)
