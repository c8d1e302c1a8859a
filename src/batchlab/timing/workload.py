"""The examples a timing measurement trains on: real when the dataset is large enough, else random.

How long an update takes depends on the shapes of the data and the model, not on pixel values. So
when the timed training set of N examples is larger than the dataset's training set (``mnist-5k``
has 4,000 examples; the lecture's table assumes MNIST's 60,000) or the dataset's files are not on
this machine, the examples are random tensors of the dataset's shape and the measurement says so
(``synthetic=True`` and a ``reason``). Real pixels are scaled to [0, 1]; no standardization, as it
changes no time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from batchlab.errors import ConfigError, DataError

# Seed of the random examples, so that two measurements time the same synthetic data.
SYNTHETIC_SEED = 0


@dataclass
class TimingData:
    """N training examples ``x`` (float32, N×C×H×W) and labels ``y`` (int64) on the CPU."""

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
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

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

    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
        raise ConfigError(f"number of examples {n_examples!r} is not a positive integer; allowed: 1 or more")
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
