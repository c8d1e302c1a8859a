"""Reopen the minimum a stored run found: its config, its model with the final weights, its data.

Later analyses (Hessian, sharpness, landscapes) start from here, so they measure exactly the
parameters the run ended with, on exactly its training/validation/test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from batchlab import data as datasets
from batchlab.config import RunConfig
from batchlab.data.identity import load_splits
from batchlab.runtime.device import resolve_device
from batchlab.errors import StoreError
from batchlab.models.registry import build_model
from batchlab.training.methods import use_batch_norm_settings

if TYPE_CHECKING:
    from batchlab.store import RunRecord, RunStore


@dataclass
class RestoredRun:
    run_id: str
    config: RunConfig
    model: nn.Module
    splits: "datasets.Splits"
    record: RunRecord


def restore_run(store: RunStore, run_id: str, device: str | torch.device = "cpu") -> RestoredRun:
    """Load run ``run_id`` (an id, or a unique prefix of one) from ``store`` (a RunStore) with
    its final weights on ``device``.

    Raises :class:`StoreError` for an unknown or ambiguous run id or a run whose weights were not kept.
    """
    run_id = store.resolve_run_id(run_id)  # a unique prefix names the run too
    record = store.get(run_id)
    config = RunConfig.from_dict(record.config)
    if record.environment.get("data") is not None:
        raise StoreError(
            f"run {run_id} trained on data given to it in Python ({record.environment['data'].get('name')}), "
            "which the store does not hold; allowed: runs trained on registry data (`batchlab data list`)"
        )
    target = resolve_device(device)
    state = store.load_weights(run_id)
    splits = load_splits(config, target)
    model = build_model(config.model, splits.input_shape, splits.num_classes, config.hidden)
    use_batch_norm_settings(model, config)  # ghost batch norm / no moving averages, as trained
    model.load_state_dict(state)
    model.to(target).eval()
    return RestoredRun(run_id, config, model, splits, record)
