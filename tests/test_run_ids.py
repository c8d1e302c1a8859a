"""Run ids of registry configurations are pinned: a store written earlier keeps its results only
while the same configuration gives the same id. Each id below was computed before the trainers
shared one epoch driver; a change here strands every stored run of that kind."""

import pytest
import torch

from batchlab.config import RunConfig
from batchlab.data import identity, prepare_splits
from batchlab.data.identity import data_fingerprint
from batchlab.data.splits import TensorSplit
from batchlab.training.session import RunSession

PINNED = [
    ({}, "0df578769b86af4b"),
    ({"batch_size": 1, "lr": 0.01, "momentum": 0.9, "epochs": 10}, "7e09553013a1e56a"),
    ({"batch_size": "full", "lr": 0.3, "momentum": 0.5, "seed": 2}, "ce99f22838aca346"),
    ({"model": "cnn", "batch_size": 128, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
     "293efa5182114c9d"),
    ({"batch_size": 256, "lr_scaling": "linear", "base_batch": 32, "warmup_epochs": 2.0, "lr_decay": "cosine"},
     "b2981b64091a9407"),
    ({"batch_size": 32, "stop_patience": 3, "max_updates": 500, "train_subset": 1000, "hidden": (128, 64)},
     "d94275ad2c6fc643"),
    ({"optimizer": "adam", "lr": 1e-3, "batch_size": 16, "target_train_acc": 0.99}, "fca93b86e0da4704"),
]


@pytest.mark.parametrize(("changes", "expected"), PINNED)
def test_registry_run_ids_are_unchanged(changes, expected):
    config = RunConfig(**changes)
    session = RunSession(config, None, "cpu", data_fingerprint=data_fingerprint(config, None))
    assert session.run_id == expected


def test_the_data_fingerprint_is_hashed_once_per_unchanged_splits(monkeypatch):
    # A sweep asks for the fingerprint of the same splits once per run: hashed once, and again
    # only when a tensor of the splits changes in place or is replaced.
    hashed = []
    real_hash = identity._hash_splits
    monkeypatch.setattr(identity, "_hash_splits", lambda splits: hashed.append(1) or real_hash(splits))
    generator = torch.Generator().manual_seed(0)
    splits = prepare_splits("mnist-5k", device="cpu").replace(
        train=TensorSplit(torch.randn(20, 1, 28, 28, generator=generator), torch.arange(20) % 10))
    config = RunConfig(dataset="mnist-5k")
    first = identity.data_fingerprint(config, splits)
    assert identity.data_fingerprint(config, splits) == first and len(hashed) == 1
    splits.train.x[0, 0, 0, 0] += 1.0  # in place: torch bumps the version
    changed = identity.data_fingerprint(config, splits)
    assert changed != first and len(hashed) == 2
    renamed = identity.data_fingerprint(config, splits.replace(name="other"))
    assert renamed["name"] == "other" and renamed["sha256"] == changed["sha256"] and len(hashed) == 3
    other_test = splits.replace(test=TensorSplit(splits.test.x.clone(), splits.test.y.clone()))
    assert identity.data_fingerprint(config, other_test) == changed and len(hashed) == 4
