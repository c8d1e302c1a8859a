"""Run ids of registry configurations are pinned: a store written earlier keeps its results only
while the same configuration gives the same id. Each id below was computed before the trainers
shared one epoch driver; a change here strands every stored run of that kind."""

import pytest

from batchlab.config import RunConfig
from batchlab.data.identity import data_fingerprint
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
