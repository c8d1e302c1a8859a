"""A strict reader of the IDX format used by MNIST and Fashion-MNIST.

The format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic number whose first
two bytes are 0, third byte the element type (0x08 = unsigned byte) and fourth byte the number of
dimensions; then one big-endian uint32 per dimension; then the elements, row-major. Images are
``0x00000803`` (count, rows, columns) and labels ``0x00000801`` (count). Files may be gzip
compressed (recognised by the gzip magic bytes 1f 8b, whatever the file name).

Every inconsistency (wrong magic, short header, a payload shorter or longer than the product of
the dimensions, a broken gzip stream) is a :class:`DataError` naming the file, so a truncated
download can never pass for a dataset.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from batchlab.errors import DataError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_GZIP_MAGIC = b"\x1f\x8b"
_KINDS = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}
_PAYLOAD_WORD = {IMAGES_MAGIC: "pixels", LABELS_MAGIC: "labels"}


def read_file_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic bytes."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}") from None
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        # gzip raises BadGzipFile (an OSError) for bad headers or CRC, EOFError for a cut stream.
        raise DataError(f"{path} is not a valid gzip file ({error}); delete it and fetch it again") from None


def read_idx(path: Path | str, magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes whose magic number must be ``magic``.

    Returns a read-only ``uint8`` array with the file's dimensions.
    """
    path = Path(path)
    kind = _KINDS[magic]
    data = read_file_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path} is truncated: {len(data)} bytes, too short for an IDX header")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise DataError(
            f"{path} is not an IDX {kind} file: magic number 0x{found:08X}, expected 0x{magic:08X}"
        )
    ndim = magic & 0xFF
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{path} is truncated: header needs {header_len} bytes, found {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    expected = int(np.prod(dims, dtype=np.int64))
    found_payload = len(data) - header_len
    word = _PAYLOAD_WORD[magic]
    if found_payload < expected:
        raise DataError(f"{path} is truncated: expected {expected} bytes of {word}, found {found_payload}")
    if found_payload > expected:
        raise DataError(
            f"{path} is corrupt: expected {expected} bytes of {word} for dimensions {dims}, found {found_payload}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


def read_idx_images(path: Path | str) -> np.ndarray:
    """Images as ``uint8`` (count, 1, rows, columns): one channel, the layout models expect."""
    images = read_idx(path, IMAGES_MAGIC)
    return images.reshape(images.shape[0], 1, images.shape[1], images.shape[2]).copy()


def read_idx_labels(path: Path | str) -> np.ndarray:
    """Labels as ``int64`` (count,)."""
    return read_idx(path, LABELS_MAGIC).astype(np.int64)


def find_idx_file(directory: Path, file_name: str) -> Path | None:
    """``directory/file_name`` or, for a ``.gz`` name, its uncompressed twin; None if neither."""
    candidates = [directory / file_name]
    if file_name.endswith(".gz"):
        candidates.append(directory / file_name[: -len(".gz")])
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def read_idx_pair(images_path: Path, labels_path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split, checked against each other.

    The label count must equal the image count and every label must lie in 0 … num_classes − 1.
    """
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
    if len(labels) != len(images):
        raise DataError(
            f"{labels_path} holds {len(labels)} labels but {images_path} holds {len(images)} images; "
            "they must match"
        )
    if len(labels) and labels.max() >= num_classes:
        raise DataError(
            f"{labels_path} has label {int(labels.max())}; allowed: 0 … {num_classes - 1}"
        )
    return images, labels
