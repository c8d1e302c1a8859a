"""Training / validation / test splits as float tensors that live on the training device.

* The validation set is carved from the training set by a seeded permutation:
  ``perm = torch.randperm(N, generator=torch.Generator().manual_seed(split_seed))``; its first
  ``round(val_fraction * N)`` indices are the validation set, the rest the training set. Both
  keep the dataset's order (indices sorted), so ``shuffle="none"`` walks the data as stored. The
  test set is kept apart and never touched by the split.
* Pixels become ``x / 255`` and are then standardized per channel with the mean and (population)
  standard deviation of the *training split only*, the same statistics applied to validation and
  test, so no information from held-out data leaks into training.

The CPU tensors are cached in-process (keyed on dataset, data directory, val_fraction and
split_seed): a sweep of many runs reads and standardizes the files once. The cached tensors are
shared, so callers must treat ``x`` and ``y`` as read-only.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import numpy as np
import torch

from batchlab.data.arrays import load_arrays
from batchlab.data.paths import resolve_data_dir
from batchlab.runtime.device import resolve_device
from batchlab.errors import ConfigError

# Distinct (dataset, split) combinations kept in memory; CIFAR-10 costs ~0.7 GB each.
SPLIT_CACHE_SIZE = 4


@dataclass(frozen=True)
class TensorSplit:
    """Images ``x`` (float32, n × C × H × W) and labels ``y`` (int64, n) on one device."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"{self.x.shape[0]} images but {self.y.shape[0]} labels")
        if self.x.device != self.y.device:
            raise ValueError(f"images on {self.x.device} but labels on {self.y.device}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: torch.device | str) -> "TensorSplit":
        """The same split on ``device`` (itself when already there)."""
        return TensorSplit(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class Splits:
    """The three splits of one dataset, ready for training.

    ``val`` is None when ``val_fraction`` is 0 (or rounds to no example). ``channel_mean`` and
    ``channel_std`` are the training-split statistics of ``x / 255`` used to standardize all
    three splits (x_std = (x / 255 − mean) / std), kept so images can be shown un-standardized.
    ``origin`` says how the splits were made: :func:`batchlab.data.identity.load_splits` stamps
    the configuration fields it used; splits built any other way carry None, and a run on them
    is identified by their content (:func:`batchlab.data.identity.data_fingerprint`).
    """

    train: TensorSplit
    val: TensorSplit | None
    test: TensorSplit
    input_shape: tuple[int, int, int]
    num_classes: int
    name: str
    channel_mean: tuple[float, ...] = ()
    channel_std: tuple[float, ...] = ()
    origin: tuple | None = None

    def to(self, device: torch.device | str) -> "Splits":
        return self.replace(
            train=self.train.to(device),
            val=None if self.val is None else self.val.to(device),
            test=self.test.to(device),
        )

    def replace(self, **changes: Any) -> "Splits":
        """A copy with ``changes`` applied (the tensors themselves are shared, not copied)."""
        return dataclasses.replace(self, **changes)


def validation_size(val_fraction: float, n: int) -> int:
    """``round(val_fraction · n)`` (Python's round: halves go to the even neighbour)."""
    return int(round(val_fraction * n))


def prepare_splits(
    name: str,
    *,
    data_dir: Path | str | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    device: torch.device | str = "cpu",
) -> Splits:
    """Dataset ``name`` as standardized train / validation / test tensors on ``device``.

    See the module docstring for the split and standardization rules. Raises
    :class:`ConfigError` for a val_fraction outside [0, 1) or one that leaves no training
    example, and :class:`DataError` (from :func:`load_arrays`) for missing or corrupt data.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not math.isfinite(val_fraction):
        raise ConfigError(f"validation fraction {val_fraction!r} is not a finite number; allowed: 0 ≤ val_fraction < 1")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"validation fraction {val_fraction} is outside [0, 1); allowed: 0 ≤ val_fraction < 1")
    if isinstance(split_seed, bool) or not isinstance(split_seed, int):
        raise ConfigError(f"split seed {split_seed!r} is not an integer")
    target = resolve_device(device)
    cpu_splits = _cpu_splits(name, str(resolve_data_dir(data_dir)), float(val_fraction), split_seed)
    return cpu_splits if target.type == "cpu" else cpu_splits.to(target)


def clear_split_cache() -> None:
    """Forget the cached CPU splits (after files changed on disk, or to free memory)."""
    _cpu_splits.cache_clear()


@functools.lru_cache(maxsize=SPLIT_CACHE_SIZE)
def _cpu_splits(name: str, data_dir: str, val_fraction: float, split_seed: int) -> Splits:
    raw = load_arrays(name, data_dir)
    n = len(raw.train_x)
    n_val = validation_size(val_fraction, n)
    if n_val >= n:
        raise ConfigError(
            f"validation fraction {val_fraction} leaves no training example of {n}; allowed: "
            f"0 ≤ val_fraction < {(n - 0.5) / n:.6g}"
        )
    permutation = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val_index = torch.sort(permutation[:n_val]).values
    train_index = torch.sort(permutation[n_val:]).values

    all_train_x, all_train_y = _as_tensor(raw.train_x), _as_tensor(raw.train_y).to(torch.int64)
    train_x = _unit_interval(all_train_x[train_index])
    mean, std = _channel_statistics(train_x)
    train = TensorSplit(_standardize_(train_x, mean, std), all_train_y[train_index])
    val = None
    if n_val > 0:
        val_x = _standardize_(_unit_interval(all_train_x[val_index]), mean, std)
        val = TensorSplit(val_x, all_train_y[val_index])
    test_x = _standardize_(_unit_interval(_as_tensor(raw.test_x)), mean, std)
    test = TensorSplit(test_x, _as_tensor(raw.test_y).to(torch.int64))
    return Splits(
        train,
        val,
        test,
        raw.spec.input_shape,
        raw.spec.num_classes,
        raw.spec.name,
        tuple(float(v) for v in mean.flatten()),
        tuple(float(v) for v in std.flatten()),
    )


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor sharing memory with ``array`` when it is contiguous and writable, else a copy."""
    if not (array.flags.c_contiguous and array.flags.writeable):
        array = np.array(array, order="C")
    return torch.from_numpy(array)


def _unit_interval(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` images as a new float32 tensor in [0, 1] (x / 255)."""
    return images.to(torch.float32).div_(255.0)


def _standardize_(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x − mean) / std per channel, in place (x is a fresh tensor owned by the caller)."""
    return x.sub_(mean).div_(std)


def _channel_statistics(x: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and population standard deviation over (examples, height, width).

    Accumulated in float64 (sums over ~10^8 pixels lose digits in float32), a chunk of examples
    at a time so no float64 copy of the whole set is made, with the two-pass formula
    var = mean((x − mean)²), which is free of the cancellation of E[x²] − E[x]². Returned as
    float32 of shape (1, C, 1, 1) for broadcasting. A constant channel gets std 1, so it maps to
    0 instead of dividing by zero.
    """
    channels = x.shape[1]
    count = x.shape[0] * x.shape[2] * x.shape[3]
    total = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, x.shape[0], chunk):
        total += x[start : start + chunk].to(torch.float64).sum(dim=(0, 2, 3))
    mean = (total / count).view(1, channels, 1, 1)
    squares = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, x.shape[0], chunk):
        centred = x[start : start + chunk].to(torch.float64) - mean
        squares += centred.square().sum(dim=(0, 2, 3))
    std = (squares / count).sqrt().view(1, channels, 1, 1)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return mean.to(torch.float32), std.to(torch.float32)
