"""What a timing measures: a network, the examples it trains on, and the loss of its update.

Two kinds, timed by the same paths, clock and rules (:mod:`batchlab.timing.harness`):

* a registry model on a registry dataset (:meth:`TimedTask.from_registry`): the network built by
  :func:`batchlab.models.registry.build_model` with the dataset's shape, cross-entropy as the loss,
  the dataset's examples (or random ones of its shape, :func:`~batchlab.timing.workload.make_timing_data`);
* a user's :class:`batchlab.Task` (:meth:`TimedTask.from_task`, ``--model-file``/``--data-file``
  on the command line): the task's factory, the task's loss (an MSE regression times its MSE),
  the task's training examples (:func:`~batchlab.timing.workload.task_timing_data`).

Identity, so that two different networks never make one curve or one stored series: ``model`` and
``dataset`` are the names a run of the same network has (``mlp``, ``user:net.make_model``, …);
``network`` says the network in one line (``784-512-512-10 mlp``: input size, hidden widths,
classes, :func:`batchlab.models.architecture.architecture`; a user's model by its name). A user's
model and data also carry short fingerprints: the first eight hex digits of the SHA-256 of
the model's fingerprint as canonical JSON (architecture, code, parameters, loss and metric:
:func:`batchlab.task.model.model_fingerprint`), and of the data's SHA-256 (shapes and bytes:
:mod:`batchlab.task.data`) — the same short forms the run store shows for runs of that task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from batchlab.data import batch_index_slices
from batchlab.errors import ConfigError
from batchlab.models.architecture import architecture
from batchlab.models.registry import build_model, get_model_spec
from batchlab.store.identity import data_digest, model_digest
from batchlab.timing.workload import TimingData, make_timing_data, task_timing_data

if TYPE_CHECKING:
    from batchlab.task import Task

REGISTRY_LOSS = "cross_entropy"


@dataclass(frozen=True)
class TimedTask:
    """A network with its data and loss, as timed (see the module docstring).

    ``build(data)`` returns a new module for examples of ``data``'s shape (unseeded: the caller
    seeds, see :meth:`build_model`); ``make_data(n)`` returns ``n`` training examples.
    """

    model: str
    dataset: str
    network: str
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    loss_name: str
    has_batch_norm: bool
    build: Callable[[TimingData], nn.Module]
    make_data: Callable[[int], TimingData]
    model_fingerprint: str | None = None
    data_fingerprint: str | None = None
    hidden: tuple[int, ...] | None = None

    @classmethod
    def from_registry(cls, model: str, dataset: str, hidden: tuple[int, ...] | None = None,
                      data_dir: Path | str | None = None) -> "TimedTask":
        """The registry's ``model`` (with ``hidden`` widths, or its own) on ``dataset``'s examples."""
        spec = get_model_spec(model)
        hidden = tuple(hidden) if hidden else None
        return cls(
            model=model,
            dataset=dataset,
            network=f"{architecture({'model': model, 'dataset': dataset, 'hidden': hidden})} {model}",
            loss=F.cross_entropy,
            loss_name=REGISTRY_LOSS,
            has_batch_norm=spec.has_batch_norm,
            build=lambda data: build_model(model, data.input_shape, data.num_classes, hidden),
            make_data=lambda n: make_timing_data(dataset, n, data_dir),
            hidden=hidden,
        )

    @classmethod
    def from_task(cls, task: "Task") -> "TimedTask":
        """A user's task: its model factory, loss and training examples."""
        return cls(
            model=task.model_id,
            dataset=task.dataset_id,
            network=task.model_id,
            loss=task.objective.loss,
            loss_name=task.objective.loss_name,
            has_batch_norm=task.has_batch_norm,
            build=lambda data: task.build_model(),
            make_data=lambda n: task_timing_data(task, n),
            model_fingerprint=model_digest(task.model_fingerprint),
            data_fingerprint=data_digest(task.data_fingerprint),
        )

    def build_model(self, data: TimingData, device: torch.device, seed: int) -> nn.Module:
        """The model as the trainer builds it: ``torch.manual_seed(seed)``, created on the CPU,
        then moved to ``device``, in training mode."""
        torch.manual_seed(seed)
        return self.build(data).to(device).train()

    def batch_norm_conflict(self, n: int, batch_size: int) -> str | None:
        """Why this model cannot train on batches of ``batch_size`` from ``n`` examples, or None.

        Batch normalization in training mode divides by the batch's spread, which one example does
        not have (PyTorch raises an error), so a model with it needs every batch of an epoch, the
        short last one included, to hold at least two examples.
        """
        if not self.has_batch_norm:
            return None
        smallest = min(end - start for start, end in batch_index_slices(n, batch_size))
        if smallest >= 2:
            return None
        return (
            f"{self.model} has batch normalization, which needs at least 2 examples in every batch "
            f"(B = {batch_size} over N = {n} gives a batch of 1); allowed: a batch size whose batches all hold ≥ 2"
        )

    def identity(self) -> dict[str, Any]:
        """What names this measurement's network and data in a point, a table's settings and the
        store: names, the one-line network, the loss, and the fingerprints a user's task has."""
        found = {"model": self.model, "dataset": self.dataset, "network": self.network, "loss": self.loss_name,
                 "model_fingerprint": self.model_fingerprint, "data_fingerprint": self.data_fingerprint}
        return {key: value for key, value in found.items() if value is not None}


def resolve_timed_task(model: "str | TimedTask | None", task: "Task | None", *, dataset: str | None,
                       hidden: tuple[int, ...] | None, data_dir: Path | str | None,
                       default_model: str = "mlp", default_dataset: str = "mnist-5k") -> TimedTask:
    """The :class:`TimedTask` of the harness's arguments: ``task`` (a user's), else the registry's
    ``model`` on ``dataset`` (defaults ``mlp`` on ``mnist-5k``); a :class:`TimedTask` as is.

    With ``task``, a registry argument (another ``model`` than the task's own name, ``dataset``,
    ``hidden``, ``data_dir``) is a one-line :class:`ConfigError`: the task replaces them.
    """
    if isinstance(model, TimedTask):
        return model
    if task is None:
        return TimedTask.from_registry(model or default_model, dataset or default_dataset, hidden, data_dir)
    given = [f"{name}={value!r}" for name, value in (("model", model), ("dataset", dataset), ("hidden", hidden),
                                                      ("data_dir", data_dir))
             if value is not None and not (name == "model" and value == task.model_id)]
    if given:
        raise ConfigError(f"{', '.join(given)} {'chooses' if len(given) == 1 else 'choose'} the registry's model or "
                          f"data, which task= replaces; allowed: task= without {'it' if len(given) == 1 else 'them'}")
    return TimedTask.from_task(task)

