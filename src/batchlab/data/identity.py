"""What a run trains on: the one place that turns a configuration into its data, and data into
the part of a run id that names it.

Two kinds of data reach a run:

* **Registry data**, prepared from the configuration's own fields (``dataset``, ``val_fraction``,
  ``split_seed``, ``train_subset``) by :func:`load_splits`. Those fields are already in the run
  id, so such data adds nothing to it. The data folder is not part of the id: the same files
  anywhere are the same data (the readers check every file's format, downloads their SHA-256).
* **Anything else**: splits a caller built, or registry splits prepared with other settings than
  the configuration says. Their content identifies them: :func:`data_fingerprint` hashes the
  shapes, dtypes and bytes of every split, and that fingerprint becomes part of the run id. A run
  on a user's own tensors under a registry name therefore never shares an id with the registry
  run, and a later plain run never gets the user's result back.
"""

from __future__ import annotations

import copy
import hashlib
import weakref
from typing import Any

import torch
from torch.utils.weak import WeakIdKeyDictionary

from batchlab.config import RunConfig
from batchlab.data.splits import Splits, TensorSplit, prepare_splits
from batchlab.errors import ConfigError


def registry_origin(config: RunConfig) -> tuple:
    """The origin :func:`load_splits` stamps on the splits it prepares for ``config``."""
    return ("registry", config.dataset, float(config.val_fraction), config.split_seed, config.train_subset)


def load_splits(config: RunConfig, device: torch.device | str = "cpu") -> Splits:
    """The training / validation / test splits of ``config`` on ``device``.

    ``train_subset = n`` keeps n examples of the training split: the first n of
    ``torch.randperm(N, generator=torch.Generator().manual_seed(split_seed))``, in dataset order.
    Standardization keeps the statistics of the whole training split (never of held-out data).
    Raises :class:`ConfigError` when n exceeds the training split.
    """
    splits = prepare_splits(
        config.dataset,
        data_dir=config.data_dir,
        val_fraction=config.val_fraction,
        split_seed=config.split_seed,
        device=device,
    )
    if config.train_subset is not None:
        n = len(splits.train)
        if config.train_subset > n:
            raise ConfigError(
                f"training subset {config.train_subset} is larger than the training split of "
                f"{config.dataset} ({n} examples); allowed: 1 … {n}"
            )
        order = torch.randperm(n, generator=torch.Generator().manual_seed(config.split_seed))
        keep = torch.sort(order[: config.train_subset]).values.to(splits.train.x.device)
        splits = splits.replace(train=TensorSplit(splits.train.x[keep], splits.train.y[keep]))
    return splits.replace(origin=registry_origin(config))


def data_fingerprint(config: RunConfig, splits: Splits | None) -> dict[str, Any] | None:
    """The part of the run id that names the data, or None when the configuration names it.

    None for ``splits=None`` (the run will load its registry data) and for splits that
    :func:`load_splits` prepared for this very configuration. Otherwise a dict with the splits'
    ``name``, each split's shape and dtype, and the SHA-256 of their bytes (images and labels of
    train, validation and test, in that order, on the CPU).
    """
    if splits is None or splits.origin == registry_origin(config):
        return None
    tensors = _split_tensors(splits)
    known = _FINGERPRINTS.get(tensors[0])
    if known is not None and known[0] == splits.name and _same_tensors(known[1], tensors):
        return copy.deepcopy(known[2])
    fingerprint = _hash_splits(splits)
    _FINGERPRINTS[tensors[0]] = (splits.name, [(weakref.ref(t), t._version) for t in tensors], fingerprint)
    return copy.deepcopy(fingerprint)


# Fingerprints already computed, by the training images' tensor (held weakly): a sweep trains many
# runs on one set of splits, and hashing ~16 MB (mnist-5k) again for every run costs each run
# ~10 ms. An entry counts only while every tensor of the splits is the same object at the same
# version: torch bumps a tensor's version on every in-place change made through it or its views,
# so data changed in place is hashed again. (A change that bypasses torch — through ``.data`` or
# a NumPy view of the memory — is not seen; make new tensors to change a dataset.)
# (Keyed by identity: a tensor's == is elementwise, so torch's own weak dictionary is used.)
_FINGERPRINTS = WeakIdKeyDictionary()


def _split_tensors(splits: Splits) -> list[torch.Tensor]:
    return [tensor for split in (splits.train, splits.val, splits.test) if split is not None
            for tensor in (split.x, split.y)]


def _same_tensors(known: list[tuple[weakref.ref, int]], tensors: list[torch.Tensor]) -> bool:
    return len(known) == len(tensors) and all(
        reference() is tensor and version == tensor._version for (reference, version), tensor in zip(known, tensors))


def _hash_splits(splits: Splits) -> dict[str, Any]:
    digest = hashlib.sha256()
    shapes: dict[str, Any] = {}
    for part, split in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if split is None:
            shapes[part] = None
            continue
        shapes[part] = [list(split.x.shape), str(split.x.dtype).removeprefix("torch."), list(split.y.shape)]
        for tensor in (split.x, split.y):
            digest.update(part.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return {"name": splits.name, "shapes": shapes, "sha256": digest.hexdigest()}
