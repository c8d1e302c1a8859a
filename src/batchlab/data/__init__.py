"""Datasets: registry, strict readers, verified downloads, and device-resident mini-batches.

::

    from batchlab import data
    splits = data.prepare_splits("mnist-5k", val_fraction=0.1, split_seed=0, device="cpu")
    for x, y in data.iterate_batches(splits.train, 64, epoch=0, seed=0):
        ...

Modules: :mod:`~batchlab.data.registry` (what each dataset is, published SHA-256 digests),
:mod:`~batchlab.data.idx` and :mod:`~batchlab.data.cifar` (file formats),
:mod:`~batchlab.data.mnist5k` (5,000 digits shipped inside batchlab), :mod:`~batchlab.data.arrays`
(finding and reading files), :mod:`~batchlab.data.download` (fetch with checksums),
:mod:`~batchlab.data.splits` (train / validation / test tensors) and
:mod:`~batchlab.data.batches` (per-epoch permutations and batch slices).
"""

from batchlab.data.arrays import RawDataset, dataset_status, load_arrays, locate
from batchlab.data.batches import batch_index_slices, epoch_permutation, iterate_batches, resolve_batch_size
from batchlab.data.download import fetch
from batchlab.data.paths import default_data_dir, resolve_data_dir
from batchlab.data.registry import DATASETS, DatasetSpec, RemoteFile, get_spec
from batchlab.data.splits import Splits, TensorSplit, clear_split_cache, prepare_splits

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "RawDataset",
    "RemoteFile",
    "Splits",
    "TensorSplit",
    "batch_index_slices",
    "clear_split_cache",
    "dataset_status",
    "default_data_dir",
    "epoch_permutation",
    "fetch",
    "get_spec",
    "iterate_batches",
    "load_arrays",
    "locate",
    "prepare_splits",
    "resolve_batch_size",
    "resolve_data_dir",
]
