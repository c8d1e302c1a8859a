"""The file readers (IDX, CIFAR-10 binary, the embedded mnist-5k) and load_arrays.

Every malformed file must be a DataError that names the file, never a silent short dataset.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from batchlab.data import DATASETS, load_arrays
from batchlab.data import cifar, idx, mnist5k
from batchlab.data.registry import DEBIAN_FASHION_MNIST_DIR, PUBLISHED_FILES, get_spec
from batchlab.errors import DataError

IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file: big-endian magic, one uint32 per dimension, then the uint8 payload."""
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write(path: Path, payload: bytes, compress: bool) -> Path:
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def random_images(n: int, rows: int = 4, cols: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, rows, cols), dtype=np.uint8)


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    images = random_images(7)
    labels = np.arange(7, dtype=np.uint8) % 10
    images_path = write(tmp_path / "images", idx_bytes(images, idx.IMAGES_MAGIC), compress)
    labels_path = write(tmp_path / "labels", idx_bytes(labels, idx.LABELS_MAGIC), compress)

    read_images, read_labels = idx.read_idx_pair(images_path, labels_path, num_classes=10)

    assert read_images.shape == (7, 1, 4, 5) and read_images.dtype == np.uint8
    np.testing.assert_array_equal(read_images[:, 0], images)
    assert read_labels.dtype == np.int64
    np.testing.assert_array_equal(read_labels, labels)
    assert read_images.flags.writeable


@pytest.mark.parametrize("compress", [True, False])
def test_idx_truncated_payload_names_file_and_sizes(tmp_path, compress):
    full = idx_bytes(random_images(10), idx.IMAGES_MAGIC)
    path = write(tmp_path / "train-images-idx3-ubyte", full[: 16 + 100], compress)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte is truncated: expected 200 bytes of pixels, found 100"):
        idx.read_idx_images(path)


def test_idx_truncated_header(tmp_path):
    path = write(tmp_path / "short", struct.pack(">II", idx.IMAGES_MAGIC, 3), compress=False)
    with pytest.raises(DataError, match=r"short is truncated: header needs 16 bytes, found 8"):
        idx.read_idx_images(path)


def test_idx_extra_bytes_are_corrupt(tmp_path):
    path = write(tmp_path / "long", idx_bytes(np.zeros(3, np.uint8), idx.LABELS_MAGIC) + b"\x00", compress=False)
    with pytest.raises(DataError, match=r"long is corrupt: expected 3 bytes of labels"):
        idx.read_idx_labels(path)


def test_idx_wrong_magic(tmp_path):
    path = write(tmp_path / "labels.gz", idx_bytes(np.zeros(3, np.uint8), idx.LABELS_MAGIC), compress=True)
    with pytest.raises(DataError, match=r"labels.gz is not an IDX images file: magic number 0x00000801, expected 0x00000803"):
        idx.read_idx_images(path)


def test_idx_label_count_must_match_image_count(tmp_path):
    images_path = write(tmp_path / "imgs", idx_bytes(random_images(5), idx.IMAGES_MAGIC), compress=False)
    labels_path = write(tmp_path / "labs", idx_bytes(np.zeros(4, np.uint8), idx.LABELS_MAGIC), compress=False)
    with pytest.raises(DataError, match=r"labs holds 4 labels but .*imgs holds 5 images"):
        idx.read_idx_pair(images_path, labels_path, num_classes=10)


def test_idx_label_out_of_range(tmp_path):
    images_path = write(tmp_path / "imgs", idx_bytes(random_images(2), idx.IMAGES_MAGIC), compress=False)
    labels_path = write(tmp_path / "labs", idx_bytes(np.array([3, 10], np.uint8), idx.LABELS_MAGIC), compress=False)
    with pytest.raises(DataError, match=r"labs has label 10; allowed: 0 … 9"):
        idx.read_idx_pair(images_path, labels_path, num_classes=10)


def test_idx_cut_gzip_stream(tmp_path):
    packed = gzip.compress(idx_bytes(random_images(50), idx.IMAGES_MAGIC))
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match=r"cut.gz is not a valid gzip file"):
        idx.read_idx_images(path)


def test_idx_gzip_with_bad_crc(tmp_path):
    packed = bytearray(gzip.compress(idx_bytes(random_images(50), idx.IMAGES_MAGIC)))
    packed[-8] ^= 0xFF  # the stored CRC-32 of the uncompressed data
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(DataError, match=r"crc.gz is not a valid gzip file"):
        idx.read_idx_images(path)


def test_find_idx_file_accepts_uncompressed_twin(tmp_path):
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"x")
    assert idx.find_idx_file(tmp_path, "train-labels-idx1-ubyte.gz") == tmp_path / "train-labels-idx1-ubyte"
    assert idx.find_idx_file(tmp_path, "t10k-labels-idx1-ubyte.gz") is None


def tiny_idx_spec(name="tiny-idx", n_train=6, n_test=3):
    return dataclasses.replace(
        get_spec("mnist"), name=name, input_shape=(1, 4, 5), n_train=n_train, n_test=n_test, system_dirs=()
    )


def write_idx_dataset(directory: Path, n_train=6, n_test=3, compress=(True, False, True, False)) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    arrays = (
        (random_images(n_train, seed=1), idx.IMAGES_MAGIC),
        (np.arange(n_train, dtype=np.uint8) % 10, idx.LABELS_MAGIC),
        (random_images(n_test, seed=2), idx.IMAGES_MAGIC),
        (np.arange(n_test, dtype=np.uint8) % 10, idx.LABELS_MAGIC),
    )
    for name, (array, magic), gz in zip(IDX_NAMES, arrays, compress):
        write(directory / (name if gz else name[:-3]), idx_bytes(array, magic), gz)


def test_load_arrays_reads_an_idx_dataset_from_data_dir(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "tiny-idx", tiny_idx_spec())
    write_idx_dataset(tmp_path / "tiny-idx")
    raw = load_arrays("tiny-idx", tmp_path)
    assert raw.train_x.shape == (6, 1, 4, 5) and raw.test_x.shape == (3, 1, 4, 5)
    np.testing.assert_array_equal(raw.train_y, np.arange(6) % 10)
    assert raw.source == tmp_path / "tiny-idx"


def test_load_arrays_checks_counts_against_the_spec(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "tiny-idx", tiny_idx_spec(n_train=60))
    write_idx_dataset(tmp_path / "tiny-idx")
    with pytest.raises(DataError, match=r"training set has 6 images and 6 labels, expected 60 for tiny-idx"):
        load_arrays("tiny-idx", tmp_path)


def test_load_arrays_missing_files_say_how_to_fetch(tmp_path):
    with pytest.raises(DataError, match=r"run `batchlab data fetch mnist --data-dir .*` first"):
        load_arrays("mnist", tmp_path)


def test_load_arrays_unknown_name_lists_known():
    with pytest.raises(DataError, match=r"unknown dataset 'imagenet'; known: mnist-5k, mnist, fashion-mnist, cifar10"):
        load_arrays("imagenet")


# ---------------------------------------------------------------- CIFAR-10 binary


def cifar_records(labels, seed=0) -> tuple[bytes, np.ndarray]:
    """Records of 1 label byte + 3072 pixel bytes, and the images they encode."""
    images = np.random.default_rng(seed).integers(0, 256, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    records = b"".join(bytes([label]) + image.tobytes() for label, image in zip(labels, images))
    return records, images


def test_cifar_batch_round_trip(tmp_path):
    payload, images = cifar_records([3, 0, 9])
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(payload)
    x, y = cifar.read_cifar_batch(path, records=3)
    assert x.shape == (3, 3, 32, 32) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, [3, 0, 9])
    # Channel planes are red, green, blue in that order: byte 1 + 1024 is the first green pixel.
    assert x[0, 1, 0, 0] == payload[1 + 1024]


def test_cifar_truncated_batch(tmp_path):
    payload, _ = cifar_records([1, 2])
    path = tmp_path / "test_batch.bin"
    path.write_bytes(payload[:-5])
    with pytest.raises(DataError, match=r"test_batch.bin is truncated or not a CIFAR-10 binary batch: 6141 bytes"):
        cifar.read_cifar_batch(path, records=2)


def test_cifar_wrong_record_count(tmp_path):
    payload, _ = cifar_records([1, 2])
    path = tmp_path / "data_batch_2.bin"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=r"data_batch_2.bin holds 2 records; expected 10000"):
        cifar.read_cifar_batch(path, records=10000)


def test_cifar_bad_label(tmp_path):
    payload, _ = cifar_records([1, 12, 4])
    path = tmp_path / "data_batch_3.bin"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=r"data_batch_3.bin has label 12 at record 1; allowed: 0 … 9"):
        cifar.read_cifar_batch(path, records=3)


def write_cifar_batches(directory: Path, records: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(cifar.ALL_BATCHES):
        payload, _ = cifar_records([(i + k) % 10 for k in range(records)], seed=i)
        (directory / name).write_bytes(payload)


def tiny_cifar_spec(records=2):
    return dataclasses.replace(get_spec("cifar10"), n_train=5 * records, n_test=records, records_per_file=records)


@pytest.mark.parametrize("layout", ["cifar10/cifar-10-batches-bin", "cifar10"])
def test_load_arrays_reads_extracted_cifar(tmp_path, monkeypatch, layout):
    monkeypatch.setitem(DATASETS, "cifar10", tiny_cifar_spec())
    write_cifar_batches(tmp_path / layout, records=2)
    raw = load_arrays("cifar10", tmp_path)
    assert raw.train_x.shape == (10, 3, 32, 32) and raw.test_x.shape == (2, 3, 32, 32)
    np.testing.assert_array_equal(raw.train_y[:4], [0, 1, 1, 2])  # batch 1 then batch 2, in order


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_extract_batches_takes_only_known_files(tmp_path):
    payload, _ = cifar_records([1])
    members = {f"cifar-10-batches-bin/{name}": payload for name in cifar.ALL_BATCHES}
    members["../escaped.bin"] = b"evil"
    members["cifar-10-batches-bin/../../escaped2.bin"] = b"evil"
    archive = tmp_path / "archive.tar.gz"
    archive.write_bytes(tar_gz(members))
    target_parent = tmp_path / "cifar10"
    target_parent.mkdir()

    batches = cifar.extract_batches(archive, target_parent)

    assert batches == target_parent / "cifar-10-batches-bin"
    assert sorted(p.name for p in batches.iterdir()) == sorted(cifar.ALL_BATCHES)
    assert sorted(p.name for p in target_parent.iterdir()) == ["cifar-10-batches-bin"]  # no staging left
    assert not (tmp_path / "escaped.bin").exists() and not (tmp_path.parent / "escaped2.bin").exists()


def test_extract_batches_incomplete_archive_leaves_nothing(tmp_path):
    payload, _ = cifar_records([1])
    archive = tmp_path / "archive.tar.gz"
    archive.write_bytes(tar_gz({"cifar-10-batches-bin/data_batch_1.bin": payload}))
    target_parent = tmp_path / "cifar10"
    target_parent.mkdir()
    with pytest.raises(DataError, match=r"archive.tar.gz lacks data_batch_2.bin"):
        cifar.extract_batches(archive, target_parent)
    assert list(target_parent.iterdir()) == []


def test_extract_batches_corrupt_archive(tmp_path):
    archive = tmp_path / "archive.tar.gz"
    archive.write_bytes(tar_gz({"a": b"x" * 1000})[:40])
    target_parent = tmp_path / "cifar10"
    target_parent.mkdir()
    with pytest.raises(DataError, match=r"archive.tar.gz is not a readable tar.gz archive"):
        cifar.extract_batches(archive, target_parent)
    assert list(target_parent.iterdir()) == []


# ---------------------------------------------------------------- mnist-5k and Fashion-MNIST


def test_mnist_5k_is_real_mnist_with_a_fixed_4000_1000_split():
    raw = load_arrays("mnist-5k")
    assert raw.train_x.shape == (4000, 1, 28, 28) and raw.test_x.shape == (1000, 1, 28, 28)
    assert raw.train_x.dtype == np.uint8 and raw.train_y.dtype == np.int64
    assert raw.train_x.max() == 255 and raw.train_x.min() == 0
    assert set(np.unique(raw.train_y)) == set(range(10))
    assert (np.bincount(raw.train_y, minlength=10) > 300).all()
    np.testing.assert_array_equal(np.bincount(raw.test_y, minlength=10), [100] * 10)
    # Real digits: about a fifth of MNIST pixels are ink (> 127); noise or blanks would not be.
    ink = (raw.train_x > 127).mean()
    assert 0.08 < ink < 0.25


def test_mnist_5k_split_is_a_partition_of_the_file_and_fixed():
    images, labels = mnist5k.read_embedded_mnist_5k()
    train_index, test_index = mnist5k.fixed_test_split(labels)
    assert len(set(train_index.tolist()) | set(test_index.tolist())) == 5000
    assert len(set(train_index.tolist()) & set(test_index.tolist())) == 0
    again_train, again_test = mnist5k.fixed_test_split(labels)
    np.testing.assert_array_equal(train_index, again_train)
    np.testing.assert_array_equal(test_index, again_test)
    raw = load_arrays("mnist-5k")
    np.testing.assert_array_equal(raw.test_x, images[test_index])
    # The stored training order mixes the digits from the start (the file is sorted by digit).
    assert len(np.unique(raw.train_y[:100])) == 10


def test_mnist_5k_spec_describes_the_split_it_gets():
    spec = get_spec("mnist-5k")
    assert (spec.n_train, spec.n_test) == (4000, 1000)
    assert f"{mnist5k.TEST_PER_CLASS} per digit, chosen with seed {mnist5k.TEST_SPLIT_SEED}" in spec.description


@pytest.mark.skipif(not Path(DEBIAN_FASHION_MNIST_DIR).is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_is_found_where_debian_installs_it(tmp_path):
    raw = load_arrays("fashion-mnist", tmp_path)  # nothing in the data directory itself
    assert raw.source == Path(DEBIAN_FASHION_MNIST_DIR)
    assert raw.train_x.shape == (60000, 1, 28, 28) and raw.test_x.shape == (10000, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(raw.train_y), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(raw.test_y), [1000] * 10)
    assert abs(raw.train_x.mean() / 255 - 0.2860) < 1e-3  # the well-known Fashion-MNIST pixel mean


# ---------------------------------------------------------------- registry


def test_registry_digest_table_matches_published_sizes():
    expected_sizes = {
        ("mnist", "train-images-idx3-ubyte.gz"): 9912422,
        ("mnist", "train-labels-idx1-ubyte.gz"): 28881,
        ("mnist", "t10k-images-idx3-ubyte.gz"): 1648877,
        ("mnist", "t10k-labels-idx1-ubyte.gz"): 4542,
        ("fashion-mnist", "train-images-idx3-ubyte.gz"): 26421880,
        ("fashion-mnist", "train-labels-idx1-ubyte.gz"): 29515,
        ("fashion-mnist", "t10k-images-idx3-ubyte.gz"): 4422102,
        ("fashion-mnist", "t10k-labels-idx1-ubyte.gz"): 5148,
        ("cifar10", "cifar-10-binary.tar.gz"): 170052171,
    }
    assert {key: size for key, (size, _) in PUBLISHED_FILES.items()} == expected_sizes
    for spec in DATASETS.values():
        for remote in spec.files:
            assert len(remote.sha256) == 64 and int(remote.sha256, 16) >= 0
            assert all(url.endswith("/" + remote.name) for url in remote.urls)
    assert [f.name for f in DATASETS["mnist"].files] == list(IDX_NAMES)
    assert DATASETS["mnist"].files[0].urls[0].startswith("https://ossci-datasets.s3.amazonaws.com/mnist/")


def test_remote_file_rejects_a_malformed_digest():
    from batchlab.data import RemoteFile

    with pytest.raises(ValueError, match="64 lowercase hex digits"):
        RemoteFile("f", ["http://x/f"], "abc", 10)
