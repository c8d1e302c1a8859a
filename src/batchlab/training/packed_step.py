"""K copies of one architecture as a single functional model, its training step and evaluation.

The step is the single run's update (loop.py) for K runs at once, with ``torch.func``:

* each run gathers its own batch: the K index vectors of this step form a (K, b) tensor and
  ``x[index]`` is a (K, b, C, H, W) batch;
* ``vmap(grad_and_value(loss))`` over the stacked parameters gives every run the gradient of the
  mean loss of its own batch (cross-entropy, or a user task's loss) — run k's arithmetic involves only row k, so a run that
  blows up to inf/NaN cannot touch the others;
* :class:`~batchlab.training.packed_state.PackedMomentum` applies each run's optimizer rule.

On a CUDA device the step is captured in a CUDA graph (:class:`GraphedPackedStep`): every kernel
of the step is replayed with a single launch, which is what makes B = 1 updates fast there
(docs/science.md §8: K = 64, B = 1, 51 µs eager vs 14 µs graphed per model-update on an H100).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap
from torch.nn import functional as F

from batchlab.data import TensorSplit
from batchlab.training.loop import EVAL_CHUNK
from batchlab.training.objective import CLASSIFICATION, Objective
from batchlab.training.packed_state import PackedMomentum, ParameterLayout, stacked_rows

# Model-examples per vmapped evaluation forward pass (K runs × chunk examples): as many as
# loop.py's evaluation puts through one model per pass, so evaluating a pack needs no more memory
# than evaluating one run.
EVAL_MODEL_EXAMPLES = EVAL_CHUNK
# Eager steps run on a side stream before a CUDA graph is captured, so that lazy initialization
# (cuBLAS workspaces, autograd and vmap caches) happens outside the capture.
GRAPH_WARMUP_STEPS = 3


class PackedModel:
    """K runs of one architecture: a flat (K, P) parameter tensor, its named views, stacked buffers.

    ``base`` is one instance of the architecture whose own weights are never used: every forward
    goes through ``functional_call`` with a run's parameters.
    """

    def __init__(self, base: nn.Module, layout: ParameterLayout, flat: torch.Tensor, buffers: dict[str, torch.Tensor]):
        self.base = base
        self.layout = layout
        self.flat = flat
        self.params = layout.views(flat)
        self.buffers = buffers
        self._state_keys = tuple(base.state_dict().keys())

    @classmethod
    def from_models(cls, models: Sequence[nn.Module]) -> "PackedModel":
        """Stack ``models`` (same architecture, same device) row by row, in the given order."""
        base = models[0]
        layout = ParameterLayout.of(base)
        flat = stacked_rows([list(model.parameters()) for model in models])
        buffers = {
            name: torch.stack([dict(m.named_buffers())[name].detach() for m in models])
            for name, _ in base.named_buffers()
        }
        return cls(base, layout, flat, buffers)

    @property
    def size(self) -> int:
        """K, the number of runs."""
        return int(self.flat.shape[0])

    def select(self, keep: Sequence[int]) -> "PackedModel":
        """The runs ``keep`` only, as a new packed model (copies, rows in that order)."""
        index = torch.tensor(list(keep), dtype=torch.long, device=self.flat.device)
        buffers = {name: value.index_select(0, index) for name, value in self.buffers.items()}
        return PackedModel(self.base, self.layout, self.flat.index_select(0, index), buffers)

    def single_state_dict(self, run: int) -> dict[str, torch.Tensor]:
        """Run ``run``'s ``state_dict`` in the single model's key names (tensors copied, same device)."""
        state = {}
        for key in self._state_keys:
            source = self.params[key] if key in self.params else self.buffers[key]
            state[key] = source[run].detach().clone()
        return state

    def write_run(self, run: int, model: nn.Module) -> None:
        """Copy run ``run``'s parameters and buffers into ``model`` (the same architecture), in
        place: the inverse of :meth:`from_models` for one row, without the copies
        :meth:`single_state_dict` makes."""
        own = dict(model.named_parameters()) | dict(model.named_buffers())
        with torch.no_grad():
            for name, rows in (self.params | self.buffers).items():
                own[name].copy_(rows[run])

    def forward(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Logits of ONE run (to be vmapped): the base architecture with ``params`` and ``buffers``."""
        return functional_call(self.base, (params, buffers), (x,))


class PackedStep:
    """One update of all K runs; ``loss_sum`` (K,) accumulates each run's batch losses in place."""

    def __init__(self, model: PackedModel, optimizer: PackedMomentum, train: TensorSplit, loss=F.cross_entropy) -> None:
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.x = train.x
        self.y = train.y
        self.loss_sum = torch.zeros(model.size, device=model.flat.device)
        self._loss_and_grad = vmap(grad_and_value(self._batch_loss))

    def _batch_loss(self, params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # The single run's loss: the mean loss of its batch (loop.py).
        return self.loss(self.model.forward(params, buffers, x), y)

    def prepare(self, lengths: Iterable[int]) -> float:
        """Build whatever the step needs ahead for these batch lengths; seconds spent (none here)."""
        return 0.0

    def __call__(self, index: torch.Tensor) -> None:
        """Train every run on its batch: row k of ``index`` (K, b) holds run k's example indices."""
        grads, losses = self._loss_and_grad(self.model.params, self.model.buffers, self.x[index], self.y[index])
        k = self.model.size
        self.optimizer.step(self.model.flat, [grads[name].reshape(k, -1) for name in self.model.layout.names])
        # Kept on the device: a NaN anywhere in the epoch survives the sum, as in loop.py.
        self.loss_sum += losses.detach()


class GraphedPackedStep:
    """:class:`PackedStep` replayed from CUDA graphs, one per batch length (an epoch's last batch
    may be shorter).

    Everything the step touches lives at fixed addresses: the dataset, the (K, P) parameters and
    momentum (updated in place), ``loss_sum``, and a static (K, b) index buffer that each call
    fills before replaying. Warm-up steps run on a side stream before the capture; they change
    the training state, so the state is saved before them and restored after the capture (the
    capture itself runs nothing).
    """

    def __init__(self, step: PackedStep) -> None:
        self.step = step
        self._graphs: dict[int, tuple[torch.Tensor, torch.cuda.CUDAGraph]] = {}

    @property
    def loss_sum(self) -> torch.Tensor:
        return self.step.loss_sum

    def prepare(self, lengths: Iterable[int]) -> float:
        """Capture a graph for every batch length in ``lengths`` not captured yet; seconds spent."""
        device = self.step.model.flat.device
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        for length in lengths:
            if length not in self._graphs:
                self._graphs[length] = self._capture(length)
        torch.cuda.synchronize(device)
        return time.perf_counter() - start

    def __call__(self, index: torch.Tensor) -> None:
        length = int(index.shape[1])
        if length not in self._graphs:
            self.prepare([length])
        static_index, graph = self._graphs[length]
        static_index.copy_(index)
        graph.replay()

    def _training_state(self) -> list[torch.Tensor]:
        return [self.step.model.flat, self.step.optimizer.buffer, self.step.loss_sum]

    def _capture(self, length: int) -> tuple[torch.Tensor, torch.cuda.CUDAGraph]:
        device = self.step.model.flat.device
        # Any valid indices do for warm-up and capture; each replay reads the real ones.
        static_index = torch.arange(length, device=device).repeat(self.step.model.size, 1)
        saved = [tensor.clone() for tensor in self._training_state()]
        side_stream = torch.cuda.Stream(device=device)
        side_stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side_stream):
            for _ in range(GRAPH_WARMUP_STEPS):
                self.step(static_index)
        torch.cuda.current_stream(device).wait_stream(side_stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.step(static_index)
        for tensor, value in zip(self._training_state(), saved):
            tensor.copy_(value)
        return static_index, graph


def make_step(model: PackedModel, optimizer: PackedMomentum, train: TensorSplit, *, graphed: bool | None = None,
              loss=F.cross_entropy):
    """The packed step for ``model``: graphed on CUDA (unless ``graphed=False``), eager elsewhere."""
    step = PackedStep(model, optimizer, train, loss)
    if graphed is None:
        graphed = model.flat.device.type == "cuda"
    return GraphedPackedStep(step) if graphed else step


@torch.no_grad()
def evaluate_pack(
    model: PackedModel, split: TensorSplit, chunk: int | None = None, *, objective: Objective = CLASSIFICATION
) -> tuple[list[float], list[float]]:
    """Mean cross-entropy and accuracy of each of the K runs over a whole split (eval mode).

    The per-run counterpart of :func:`batchlab.training.evaluate`: losses are summed per chunk in
    float32, accumulated in float64 and divided by n; accuracy is the fraction of argmax hits.
    ``chunk`` examples per forward default to EVAL_MODEL_EXAMPLES / K (at least one). Another
    ``objective`` (a user task's loss and metric) is applied to each run's outputs in turn, as
    :func:`batchlab.training.evaluate` applies it, since a metric need not run under vmap.
    """
    k = model.size
    chunk = chunk or max(1, EVAL_MODEL_EXAMPLES // k)
    forward_all = vmap(model.forward, in_dims=(0, 0, None))
    was_training = model.base.training
    model.base.eval()
    total_loss = torch.zeros(k, dtype=torch.float64, device=split.x.device)
    correct = torch.zeros(k, dtype=torch.int64, device=split.x.device)
    total_metric = torch.zeros(k, dtype=torch.float64, device=split.x.device)
    n = len(split)
    for start in range(0, n, chunk):
        logits = forward_all(model.params, model.buffers, split.x[start : start + chunk])  # (K, c, classes)
        targets = split.y[start : start + chunk]
        if not objective.is_classification:
            for run in range(k):
                loss_sum, metric_sum = objective.sums(logits[run], targets)
                total_loss[run] += loss_sum
                total_metric[run] += metric_sum
            continue
        per_example = F.cross_entropy(logits.flatten(0, 1), targets.repeat(k), reduction="none")
        total_loss += per_example.view(k, -1).sum(dim=1).double()
        correct += (logits.argmax(dim=2) == targets).sum(dim=1)
    model.base.train(was_training)
    if not objective.is_classification:
        return (total_loss / n).tolist(), (total_metric / n).tolist()
    return (total_loss / n).tolist(), (correct.double() / n).tolist()
