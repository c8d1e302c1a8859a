"""A user's data: the forms accepted, the checks, the content fingerprint, and where it lives.

Accepted forms (``batchlab.Task(data=...)`` and what ``--data-file``'s function returns):

* a tuple of 4 or 6 tensors ``(x_train, y_train, x_val, y_val[, x_test, y_test])`` (NumPy arrays
  are taken as tensors);
* a tuple of 2 or 3 ``torch.utils.data.Dataset`` objects ``(train, val[, test])``, each item an
  ``(x, y)`` pair (a ``TensorDataset`` of two tensors is one);
* a mapping with keys ``train``, ``val`` and optionally ``test``, each an ``(x, y)`` pair of
  tensors or a Dataset.

Checks (:class:`~batchlab.errors.DataError`, one line): inputs and targets of a split have the
same length, no split is empty, every example has the shape of the first training example, a
Dataset gives the same item when read twice (a random transform would change the data under
the run id), and items of one split all have one shape and dtype.

Fingerprint: per split, the number of examples, the per-example shape and dtype of inputs and
targets, and SHA-256 digests of the inputs' and the targets' bytes in dataset order (every item
of a Dataset is read once for it). A Dataset and the tensors it holds give the same fingerprint.

Where it lives (:meth:`UserData.split_on`): on the training device as tensors when it fits
(Datasets stacked into tensors), otherwise streamed (:class:`~batchlab.data.streamed.StreamedSplit`).
"Fits" means: all splits together take at most :data:`DEVICE_MEMORY_SHARE` of the device's free
memory (CUDA: ``torch.cuda.mem_get_info``; CPU: available RAM, for Datasets, which must be
stacked; tensors given in Python are already in RAM).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

from batchlab.data.splits import TensorSplit
from batchlab.data.streamed import StreamedSplit
from batchlab.errors import DataError
from batchlab.task.model import one_line

PARTS = ("train", "val", "test")
# Share of the device's free memory the data may take; the rest is for the model and its steps.
DEVICE_MEMORY_SHARE = 0.5

FORMS = ("allowed: (x_train, y_train, x_val, y_val[, x_test, y_test]) tensors, "
         "(train, val[, test]) Datasets of (x, y) items, or a dict with train, val[, test]")


@dataclass
class UserSplit:
    """One split as given, after its single read: tensors (given, or a Dataset stacked) or a
    Dataset to stream, and what the fingerprint and the checks need."""

    part: str
    length: int
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None
    dataset: Dataset | None = None
    x_shape: tuple[int, ...] = ()
    x_dtype: torch.dtype = torch.float32
    y_shape: tuple[int, ...] = ()
    y_dtype: torch.dtype = torch.int64
    y_min: float = 0.0
    y_max: float = 0.0
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def item_bytes(self) -> int:
        return (math.prod(self.x_shape) * _itemsize(self.x_dtype) + math.prod(self.y_shape) * _itemsize(self.y_dtype))

    def first(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``count`` examples as CPU tensors (a probe batch)."""
        count = min(count, self.length)
        if self.x is not None:
            return self.x[:count], self.y[:count]
        items = [_item(self.dataset, i, self.part) for i in range(count)]
        return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])

    def describe(self) -> dict[str, Any]:
        return {"n": self.length, "x": [list(self.x_shape), _dtype_name(self.x_dtype)],
                "y": [list(self.y_shape), _dtype_name(self.y_dtype)], "sha256": dict(self.sha256)}


class UserData:
    """A user's splits, read once: see the module docstring."""

    def __init__(self, data: Any, *, keep_on_device: bool | None = None, workers: int = 0) -> None:
        given = _parts(data)
        self.keep_on_device = keep_on_device
        self.workers = workers
        budget = None if keep_on_device is not None else _cpu_available_bytes() * DEVICE_MEMORY_SHARE
        self.splits: dict[str, UserSplit] = {}
        stack = keep_on_device is not False
        for part, value in given.items():
            if isinstance(value, Dataset):
                estimate = _dataset_estimate(value, part)
                keep = stack and (budget is None or estimate <= budget)
                self.splits[part] = _read_dataset(value, part, keep=keep)
                if keep and budget is not None:
                    budget -= estimate
            else:
                self.splits[part] = _read_tensors(value, part)
        train = self.splits["train"]
        for part, split in self.splits.items():
            if split.x_shape != train.x_shape:
                raise DataError(f"{part} examples have shape {list(split.x_shape)} but train examples "
                                f"{list(train.x_shape)}; allowed: one input shape for all splits")

    @property
    def n_train(self) -> int:
        return self.splits["train"].length

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.splits["train"].x_shape

    def fingerprint(self, name: str) -> dict[str, Any]:
        """The part of the run id that names this data (see the module docstring)."""
        parts = {part: split.describe() for part, split in self.splits.items()}
        digest = hashlib.sha256(repr(sorted(parts.items())).encode()).hexdigest()
        return {"name": name, "splits": {part: [s["n"], s["x"], s["y"]] for part, s in parts.items()},
                "sha256": digest}

    def total_bytes(self) -> int:
        return sum(split.length * split.item_bytes for split in self.splits.values())

    def fits_on(self, device: torch.device) -> bool:
        """Whether every split can be kept on ``device`` as tensors."""
        if self.keep_on_device is not None:
            return self.keep_on_device
        if any(split.x is None for split in self.splits.values()):
            return False  # a Dataset too large to stack in RAM
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return self.total_bytes() <= DEVICE_MEMORY_SHARE * free
        return True  # tensors already in RAM

    def split_on(self, part: str, device: torch.device, on_device: bool) -> "TensorSplit | StreamedSplit | None":
        split = self.splits.get(part)
        if split is None:
            return None
        if on_device:
            if split.x is None:  # keep_on_device=True with a Dataset that was not stacked
                raise DataError(f"{part} could not be stacked into tensors; allowed: keep_on_device=None or False")
            return TensorSplit(split.x.to(device), split.y.to(device))
        if split.x is not None:
            return StreamedSplit(tensors=(split.x, split.y), length=split.length)
        return StreamedSplit(dataset=split.dataset, length=split.length, workers=self.workers)


# ----------------------------------------------------------------------------- reading


def _parts(data: Any) -> dict[str, Any]:
    """``{part: (x, y) | Dataset}`` from any accepted form (see the module docstring)."""
    if isinstance(data, Mapping):
        unknown = sorted(str(k) for k in data if k not in PARTS)
        if unknown or "train" not in data or "val" not in data:
            raise DataError(f"data keys {sorted(map(str, data))} are not train, val[, test]; {FORMS}")
        return {part: data[part] for part in PARTS if data.get(part) is not None}
    if isinstance(data, (tuple, list)):
        if len(data) in (2, 3) and all(isinstance(d, Dataset) for d in data):
            return dict(zip(PARTS, data))
        if len(data) in (4, 6) and not any(isinstance(d, Dataset) for d in data):
            return {part: (data[2 * i], data[2 * i + 1]) for i, part in enumerate(PARTS[: len(data) // 2])}
        kinds = ", ".join(type(d).__name__ for d in data)
        raise DataError(f"data is a sequence of {len(data)} ({kinds}); {FORMS}")
    raise DataError(f"data is a {type(data).__name__}; {FORMS}")


def _as_tensor(value: Any, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise DataError(f"{what} is a {type(value).__name__}, not a tensor; {FORMS}") from None


def _read_tensors(pair: Any, part: str) -> UserSplit:
    if isinstance(pair, Dataset) or not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise DataError(f"{part} is not an (x, y) pair; {FORMS}")
    x = _as_tensor(pair[0], f"{part} inputs").cpu().contiguous()
    y = _as_tensor(pair[1], f"{part} targets").cpu().contiguous()
    if x.ndim == 0 or y.ndim == 0:
        raise DataError(f"{part} inputs or targets are scalars; allowed: tensors with one row per example")
    if len(x) != len(y):
        raise DataError(f"{part} has {len(x)} inputs but {len(y)} targets; allowed: one target per input")
    if len(x) == 0:
        raise DataError(f"{part} is empty; allowed: at least one example")
    split = UserSplit(part, len(x), x=x, y=y, x_shape=tuple(x.shape[1:]), x_dtype=x.dtype,
                      y_shape=tuple(y.shape[1:]), y_dtype=y.dtype)
    split.sha256 = {"x": _sha256([x]), "y": _sha256([y])}
    _label_range(split, y)
    return split


def _item(dataset: Dataset, index: int, part: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        item = dataset[index]
    except Exception as error:  # a user's dataset: any failure is theirs to fix
        raise DataError(f"reading item {index} of {part} failed: {one_line(error)}") from None
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise DataError(f"item {index} of {part} is a {type(item).__name__}, not an (x, y) pair; {FORMS}")
    return _as_tensor(item[0], f"{part} item {index} input"), _as_tensor(item[1], f"{part} item {index} target")


def _dataset_length(dataset: Dataset, part: str) -> int:
    try:
        length = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise DataError(f"{part} is a Dataset without a length; allowed: a map-style Dataset (__len__, __getitem__)") from None
    if length == 0:
        raise DataError(f"{part} is empty; allowed: at least one example")
    return length


def _dataset_estimate(dataset: Dataset, part: str) -> int:
    """Bytes of the whole dataset stacked, from its first item."""
    length = _dataset_length(dataset, part)
    x, y = _item(dataset, 0, part)
    return length * (x.numel() * x.element_size() + y.numel() * y.element_size())


def _read_dataset(dataset: Dataset, part: str, *, keep: bool) -> UserSplit:
    """Read every item once: checks, digests, label range, and the stacked tensors when ``keep``."""
    length = _dataset_length(dataset, part)
    x0, y0 = _item(dataset, 0, part)
    again = _item(dataset, 0, part)
    if not (torch.equal(x0, again[0]) and torch.equal(y0, again[1])):
        raise DataError(f"item 0 of {part} differs between two reads (a random transform?); allowed: a "
                        "deterministic Dataset, so that its content can identify the run")
    split = UserSplit(part, length, dataset=dataset, x_shape=tuple(x0.shape), x_dtype=x0.dtype,
                      y_shape=tuple(y0.shape), y_dtype=y0.dtype)
    digest_x, digest_y = hashlib.sha256(), hashlib.sha256()
    xs, ys = [], []
    low, high = math.inf, -math.inf
    for index in range(length):
        x, y = (x0, y0) if index == 0 else _item(dataset, index, part)
        if x.shape != x0.shape or x.dtype != x0.dtype or y.shape != y0.shape or y.dtype != y0.dtype:
            raise DataError(
                f"item {index} of {part} is {list(x.shape)} {_dtype_name(x.dtype)} → {list(y.shape)} "
                f"{_dtype_name(y.dtype)} but item 0 is {list(x0.shape)} {_dtype_name(x0.dtype)} → "
                f"{list(y0.shape)} {_dtype_name(y0.dtype)}; allowed: one shape and dtype per split")
        digest_x.update(_bytes(x))
        digest_y.update(_bytes(y))
        if y.numel() and not y.is_complex():
            low, high = min(low, float(y.min())), max(high, float(y.max()))
        if keep:
            xs.append(x)
            ys.append(y)
    split.sha256 = {"x": digest_x.hexdigest(), "y": digest_y.hexdigest()}
    split.y_min, split.y_max = low, high
    if keep:
        split.x, split.y = torch.stack(xs), torch.stack(ys)
    return split


def _label_range(split: UserSplit, y: torch.Tensor) -> None:
    if y.numel() and not y.is_complex():
        split.y_min, split.y_max = float(y.min()), float(y.max())


def _bytes(tensor: torch.Tensor) -> memoryview:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else memoryview(b"")


def _sha256(tensors: Sequence[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(_bytes(tensor))
    return digest.hexdigest()


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _cpu_available_bytes() -> float:
    """RAM available to a new allocation (Linux ``sysconf``); infinite where it cannot be read."""
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return math.inf

