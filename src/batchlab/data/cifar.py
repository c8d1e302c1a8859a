"""CIFAR-10, binary version: a strict batch-file reader and a safe, atomic archive extraction.

Format (https://www.cs.toronto.edu/~kriz/cifar.html): each of ``data_batch_1.bin`` …
``data_batch_5.bin`` and ``test_batch.bin`` holds 10,000 records of 3,073 bytes: one label byte
(0 … 9), then 1,024 red, 1,024 green and 1,024 blue pixel bytes, each plane row-major 32 × 32.
So a record reshapes directly to (3, 32, 32), channels first.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import numpy as np

from batchlab.errors import DataError
from batchlab.files import atomic_directory

IMAGE_SHAPE = (3, 32, 32)
RECORD_BYTES = 1 + 3 * 32 * 32
NUM_CLASSES = 10
BATCHES_DIR = "cifar-10-batches-bin"
TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCH = "test_batch.bin"
ALL_BATCHES = (*TRAIN_BATCHES, TEST_BATCH)
# Other files of the archive, kept beside the batches (class names and the readme).
_ARCHIVE_EXTRAS = ("batches.meta.txt", "readme.html")


def read_cifar_batch(path: Path | str, records: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as ``uint8`` images (records, 3, 32, 32) and ``int64`` labels (records,).

    The file must hold exactly ``records`` whole records with labels in 0 … 9.
    """
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}") from None
    if raw.size % RECORD_BYTES:
        raise DataError(
            f"{path} is truncated or not a CIFAR-10 binary batch: {raw.size} bytes is not a "
            f"multiple of the record size {RECORD_BYTES}"
        )
    found = raw.size // RECORD_BYTES
    if found != records:
        raise DataError(f"{path} holds {found} records; expected {records}")
    table = raw.reshape(found, RECORD_BYTES)
    labels = table[:, 0].astype(np.int64)
    if found and labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise DataError(
            f"{path} has label {int(labels[bad])} at record {bad}; allowed: 0 … {NUM_CLASSES - 1}"
        )
    images = np.ascontiguousarray(table[:, 1:]).reshape(found, *IMAGE_SHAPE)
    return images, labels


def find_batches_dir(directory: Path) -> Path | None:
    """The directory holding all six batch files: ``directory/cifar-10-batches-bin`` or
    ``directory`` itself (an archive extracted by hand); None when neither is complete."""
    for candidate in (directory / BATCHES_DIR, directory):
        if all((candidate / name).is_file() for name in ALL_BATCHES):
            return candidate
    return None


def read_cifar10(batches_dir: Path, records_per_file: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training (the five data batches, in order) and test arrays from an extracted directory."""
    parts = [read_cifar_batch(batches_dir / name, records_per_file) for name in TRAIN_BATCHES]
    train_x = np.concatenate([x for x, _ in parts])
    train_y = np.concatenate([y for _, y in parts])
    test_x, test_y = read_cifar_batch(batches_dir / TEST_BATCH, records_per_file)
    return train_x, train_y, test_x, test_y


def extract_batches(archive: Path, target_parent: Path) -> Path:
    """Extract the batch files of ``archive`` to ``target_parent/cifar-10-batches-bin``, atomically.

    Only regular files named like the known batch files are taken from the archive (nothing else
    is written, whatever paths the archive holds). They are written to a temporary directory
    beside the target, which is renamed into place only when every batch is there, so an
    interrupted extraction never leaves a half-filled directory behind.
    """
    wanted = {f"{BATCHES_DIR}/{name}": name for name in (*ALL_BATCHES, *_ARCHIVE_EXTRAS)}
    target = target_parent / BATCHES_DIR
    with atomic_directory(target) as staging:
        written: set[str] = set()
        try:
            with tarfile.open(archive, mode="r:*") as tar:
                for member in tar:
                    name = wanted.get(member.name.removeprefix("./"))
                    if name is None or not member.isfile():
                        continue
                    source = tar.extractfile(member)
                    if source is None:
                        continue
                    with source, open(staging / name, "wb") as sink:
                        shutil.copyfileobj(source, sink, length=1 << 20)
                    written.add(name)
        except (tarfile.TarError, EOFError, OSError) as error:
            raise DataError(f"{archive} is not a readable tar.gz archive ({error}); delete it and fetch again") from None
        missing = [name for name in ALL_BATCHES if name not in written]
        if missing:
            raise DataError(f"{archive} lacks {', '.join(missing)} under {BATCHES_DIR}/; it is not the CIFAR-10 binary archive")
    return target
