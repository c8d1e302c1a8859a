"""Finding a dataset's files and reading them into raw ``uint8`` arrays.

:func:`load_arrays` is the one entry point: it looks the name up in the registry, finds the files
(``<data_dir>/<name>`` first, then the spec's system directories), reads them with the reader of
the dataset's format, and checks the result against the spec (counts, image shape, classes), so a
swapped or foreign file is caught here rather than as odd training curves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from batchlab.data.cifar import ALL_BATCHES, find_batches_dir, read_cifar10
from batchlab.data.idx import find_idx_file, read_idx_pair
from batchlab.data.mnist5k import EMBEDDED_DIR, IMAGES_FILE, LABELS_FILE, load_mnist_5k
from batchlab.data.paths import dataset_dir, search_dirs
from batchlab.data.registry import (
    DATASETS,
    FORMAT_CIFAR10_BINARY,
    FORMAT_IDX,
    FORMAT_EMBEDDED_IDX,
    DatasetSpec,
    get_spec,
)
from batchlab.errors import DataError

# The four IDX files of a split, in the order (train images, train labels, test images, test labels).
IDX_FILE_ORDER = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@dataclass(frozen=True)
class RawDataset:
    """A dataset as read from disk: ``uint8`` images (N, C, H, W), ``int64`` labels (N,)."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    spec: DatasetSpec
    source: Path | None = None


def locate(spec: DatasetSpec, data_dir: Path | str | None = None) -> Path | None:
    """The directory holding the dataset's readable files; None if missing."""
    if spec.format == FORMAT_EMBEDDED_IDX:
        return EMBEDDED_DIR
    for directory in search_dirs(spec, data_dir):
        if spec.format == FORMAT_IDX:
            if all(find_idx_file(directory, name) is not None for name in IDX_FILE_ORDER):
                return directory
        elif spec.format == FORMAT_CIFAR10_BINARY:
            found = find_batches_dir(directory)
            if found is not None:
                return found
    return None


def readable_files(spec: DatasetSpec, location: Path) -> list[Path]:
    """The files the reader of ``spec``'s format reads from ``location`` (see :func:`locate`)."""
    if spec.format == FORMAT_EMBEDDED_IDX:
        return [location / IMAGES_FILE, location / LABELS_FILE]
    if spec.format == FORMAT_IDX:
        return [find_idx_file(location, name) for name in IDX_FILE_ORDER]  # type: ignore[misc]
    return [location / name for name in ALL_BATCHES]


def fetch_hint(name: str, data_dir: Path | str | None) -> str:
    """The command that downloads ``name`` into the same data directory."""
    option = f" --data-dir {data_dir}" if data_dir not in (None, "") else ""
    return f"batchlab data fetch {name}{option}"


def load_arrays(name: str, data_dir: Path | str | None = None) -> RawDataset:
    """Read dataset ``name`` from disk (no download) and validate it against its spec.

    Raises :class:`DataError` for an unknown name (listing the known ones), missing files (naming
    the ``batchlab data fetch`` command) and files that are truncated, corrupt or do not match the
    spec.
    """
    spec = get_spec(name)
    if spec.format == FORMAT_EMBEDDED_IDX:
        location, train_x, train_y, test_x, test_y = load_mnist_5k()
    else:
        location = locate(spec, data_dir)
        if location is None:
            places = " or ".join(str(d) for d in search_dirs(spec, data_dir))
            raise DataError(f"dataset {name!r} is not in {places}; run `{fetch_hint(name, data_dir)}` first")
        if spec.format == FORMAT_IDX:
            train_images, train_labels, test_images, test_labels = readable_files(spec, location)
            train_x, train_y = read_idx_pair(train_images, train_labels, spec.num_classes)
            test_x, test_y = read_idx_pair(test_images, test_labels, spec.num_classes)
        else:
            train_x, train_y, test_x, test_y = read_cifar10(location, spec.records_per_file)
    raw = RawDataset(train_x, train_y, test_x, test_y, spec, location)
    check_against_spec(raw, location)
    return raw


def check_against_spec(raw: RawDataset, location: Path) -> None:
    """The arrays must have the spec's counts, image shape and label range."""
    spec = raw.spec
    for split, x, y, expected in (("training", raw.train_x, raw.train_y, spec.n_train), ("test", raw.test_x, raw.test_y, spec.n_test)):
        if x.shape[1:] != spec.input_shape:
            raise DataError(
                f"{location}: {split} images have shape {tuple(x.shape[1:])}, expected {spec.input_shape} for {spec.name}"
            )
        if len(x) != expected or len(y) != expected:
            raise DataError(
                f"{location}: the {split} set has {len(x)} images and {len(y)} labels, expected {expected} for {spec.name}"
            )
        if len(y) and (y.min() < 0 or y.max() >= spec.num_classes):
            raise DataError(f"{location}: {split} labels outside 0 … {spec.num_classes - 1}")


def dataset_status(data_dir: Path | str | None = None) -> list[dict[str, Any]]:
    """One row per registered dataset for ``batchlab data list``.

    Keys: name, description, n_train, n_test, input_shape, num_classes, present (bool), path (where
    the files were found, or where ``batchlab data fetch`` would put them), fetchable (bool).
    """
    rows = []
    for spec in DATASETS.values():
        location = locate(spec, data_dir)
        rows.append(
            {
                "name": spec.name,
                "description": spec.description,
                "n_train": spec.n_train,
                "n_test": spec.n_test,
                "input_shape": spec.input_shape,
                "num_classes": spec.num_classes,
                "present": location is not None,
                "path": str(location if location is not None else dataset_dir(spec, data_dir)),
                "fetchable": bool(spec.files),
            }
        )
    return rows

