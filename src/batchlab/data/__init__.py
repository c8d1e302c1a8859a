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
:mod:`~batchlab.data.batches` (per-epoch permutations and batch slices). The names below are
imported on first use, so reading the registry (:mod:`~batchlab.data.registry`, which
:mod:`batchlab.models.architecture` does to describe a stored run) loads no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchlab.exports import lazy_exports

if TYPE_CHECKING:
    from batchlab.data.arrays import RawDataset, dataset_status, load_arrays, locate
    from batchlab.data.batches import batch_index_slices, epoch_permutation, iterate_batches, resolve_batch_size
    from batchlab.data.download import fetch
    from batchlab.data.paths import default_data_dir, resolve_data_dir
    from batchlab.data.registry import DATASETS, DatasetSpec, RemoteFile, get_spec
    from batchlab.data.splits import Splits, TensorSplit, clear_split_cache, prepare_splits

# Public name -> the module that defines it, imported on first use (PEP 562): the registry and the
# readers stay importable without torch, which the batches and the splits load.
_EXPORTS = {
    "RawDataset": "batchlab.data.arrays",
    "dataset_status": "batchlab.data.arrays",
    "load_arrays": "batchlab.data.arrays",
    "locate": "batchlab.data.arrays",
    "batch_index_slices": "batchlab.data.batches",
    "epoch_permutation": "batchlab.data.batches",
    "iterate_batches": "batchlab.data.batches",
    "resolve_batch_size": "batchlab.data.batches",
    "fetch": "batchlab.data.download",
    "default_data_dir": "batchlab.data.paths",
    "resolve_data_dir": "batchlab.data.paths",
    "DATASETS": "batchlab.data.registry",
    "DatasetSpec": "batchlab.data.registry",
    "RemoteFile": "batchlab.data.registry",
    "get_spec": "batchlab.data.registry",
    "Splits": "batchlab.data.splits",
    "TensorSplit": "batchlab.data.splits",
    "clear_split_cache": "batchlab.data.splits",
    "prepare_splits": "batchlab.data.splits",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
