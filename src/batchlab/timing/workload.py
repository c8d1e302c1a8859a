"""The examples a timing measurement trains on: real when the dataset is large enough, else random.

How long an update takes depends on the shapes of the data and the model, not on pixel values. So
when the timed training set of N examples is larger than the dataset's training set (``mnist-5k``
has 4,000 examples; the lecture's table assumes MNIST's 60,000) or the dataset's files are not on
this machine, the examples are random tensors of the dataset's shape and the measurement says so
(``synthetic=True`` and a ``reason``). Real pixels are scaled to [0, 1]; no standardization, as it
changes no time.

A user's data (:func:`task_timing_data`) is timed on its own training examples, as given (their
shape and dtype, its targets: class indices, regression values, …), so that the user's loss sees
what it sees in training. When N is larger than its training set, its examples are repeated in
order up to N, flagged the same way: the values then repeat, their shapes and types stay the
user's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from batchlab.errors import ConfigError, DataError

if TYPE_CHECKING:
    from batchlab.task import Task

# Seed of the random examples, so that two measurements time the same synthetic data.
SYNTHETIC_SEED = 0


@dataclass
class TimingData:
    """N training examples ``x`` (N × the example shape) and their targets ``y`` on the CPU:
    float32 pixels and int64 labels for a registry dataset, the user's tensors for a user's data
    (``num_classes``: the model's output width, 0 when it returns one number per example)."""

    dataset: str
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    synthetic: bool
    reason: str = ""
    _on_device: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` resident on ``device``, copied there once and kept for later points."""
        key = str(device)
        if key not in self._on_device:
            self._on_device[key] = (self.x.to(device), self.y.to(device))
        return self._on_device[key]

    def release(self, device: torch.device) -> None:
        """Drop the copy on ``device`` (frees GPU memory between sweeps)."""
        self._on_device.pop(str(device), None)


def make_timing_data(dataset: str, n_examples: int, data_dir: Path | str | None = None) -> TimingData:
    """``n_examples`` training examples of ``dataset``: its first N real ones when it has that many
    and its files are here, otherwise random ones of the same shape (with the reason recorded)."""
    from batchlab.data import DATASETS, load_arrays

    _check_count(n_examples)
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    spec = DATASETS[dataset]
    if n_examples > spec.n_train:
        reason = (
            f"{dataset} has {spec.n_train:,} training examples, fewer than the {n_examples:,} timed"
        )
        return synthetic_data(dataset, spec.input_shape, spec.num_classes, n_examples, reason)
    try:
        raw = load_arrays(dataset, data_dir)
    except DataError as error:
        reason = f"{dataset} could not be read here ({error})"
        return synthetic_data(dataset, spec.input_shape, spec.num_classes, n_examples, reason)
    x = torch.from_numpy(raw.train_x[:n_examples]).float().div_(255.0)
    y = torch.from_numpy(raw.train_y[:n_examples]).long()
    return TimingData(dataset, x.contiguous(), y.contiguous(), spec.num_classes, synthetic=False)


def synthetic_data(
    dataset: str, input_shape: tuple[int, ...], num_classes: int, n_examples: int, reason: str
) -> TimingData:
    """Random examples (uniform in [0, 1), like scaled pixels) and uniform random labels."""
    generator = torch.Generator().manual_seed(SYNTHETIC_SEED)
    x = torch.rand((n_examples, *input_shape), generator=generator)
    y = torch.randint(0, num_classes, (n_examples,), generator=generator)
    return TimingData(dataset, x, y, num_classes, synthetic=True, reason=reason)


def task_timing_data(task: "Task", n_examples: int) -> TimingData:
    """The first ``n_examples`` training examples of a user's task, its examples repeated in order
    up to N when it has fewer (flagged, with the reason; see the module docstring)."""
    _check_count(n_examples)
    split = task.data.splits["train"]
    x, y = split.first(min(n_examples, split.length))
    num_classes = task.output_width or 0
    if n_examples <= split.length:
        return TimingData(task.dataset_id, x.contiguous(), y.contiguous(), num_classes, synthetic=False)
    copies = math.ceil(n_examples / split.length)
    reason = (f"{task.dataset_id} has {split.length:,} training examples, fewer than the {n_examples:,} timed: "
              f"its examples repeated in order up to {n_examples:,}")
    return TimingData(task.dataset_id, _repeated(x, copies, n_examples), _repeated(y, copies, n_examples),
                      num_classes, synthetic=True, reason=reason)


def _repeated(tensor: torch.Tensor, copies: int, n: int) -> torch.Tensor:
    """``tensor``'s rows repeated ``copies`` times in order, cut to ``n`` rows."""
    return tensor.repeat(copies, *([1] * (tensor.ndim - 1)))[:n].contiguous()


def _check_count(n_examples: int) -> None:
    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
        raise ConfigError(f"number of examples {n_examples!r} is not a positive integer; allowed: 1 or more")
