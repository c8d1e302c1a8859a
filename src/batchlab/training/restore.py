"""Reopen the minimum a stored run found: its config, its model with the final weights, its data.

Later analyses (Hessian, sharpness, landscapes) start from here, so they measure exactly the
parameters the run ended with, on exactly its training/validation/test split, with the loss and
metric it trained with.

A registry run is rebuilt from its configuration. A run of a user's model (``model =
"user:…"``) is rebuilt from files: those given (``files``: ``--model-file``/``--data-file``,
for files that moved), else the ones the run was trained from, kept in its environment under
``origin`` (:mod:`batchlab.store.identity`). The task the files give must have the run's
fingerprints — the model's (architecture, code, parameter count, loss, metric) and the data's
(shapes and bytes); the task's name (file stem and function) may differ, so a renamed copy
serves. A file changed since is a one-line :class:`StoreError` that says which and what to do.
A run of a ``Task`` built in Python has no origin; files that give the same model and data serve.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from batchlab import data as datasets
from batchlab.config import RunConfig
from batchlab.data.identity import load_splits
from batchlab.errors import StoreError
from batchlab.models.registry import build_model
from batchlab.runtime.device import resolve_device
from batchlab.store.identity import DATA_KEY, MODEL_KEY, ORIGIN_KEY, data_digest, model_digest
from batchlab.task.reference import FORM
from batchlab.training.methods import use_batch_norm_settings
from batchlab.training.objective import CLASSIFICATION, Objective

if TYPE_CHECKING:
    from batchlab.store import RunRecord, RunStore
    from batchlab.task import Task

FILES_FLAGS = f"--model-file {FORM} --data-file {FORM}"


@dataclass
class RestoredRun:
    run_id: str
    config: RunConfig
    model: nn.Module
    splits: "datasets.Splits"
    record: RunRecord
    objective: Objective = CLASSIFICATION
    task: "Task | None" = None  # a user's model and data, rebuilt from files


def restore_run(
    store: RunStore,
    run_id: str,
    device: str | torch.device = "cpu",
    *,
    files: tuple[str, str] | None = None,
    tasks: Iterable["Task"] = (),
) -> RestoredRun:
    """Load run ``run_id`` (an id, or a unique prefix of one) from ``store`` (a RunStore) with
    its final weights on ``device``. A user's model and data come from ``files`` or the run's
    origin (see the module docstring); a task of ``tasks`` with the run's fingerprints is used
    as it is (two runs of one task import the files once).

    Raises :class:`StoreError` for an unknown or ambiguous run id, a run whose weights were not
    kept, or a user's run whose files are gone or changed.
    """
    run_id = store.resolve_run_id(run_id)  # a unique prefix names the run too
    record = store.get(run_id)
    config = RunConfig.from_dict(record.config)
    environment = record.environment or {}
    if environment.get(MODEL_KEY) is None and environment.get(DATA_KEY) is not None:
        raise StoreError(
            f"run {run_id} trained a registry model on data given to it in Python "
            f"({environment[DATA_KEY].get('name')}), which the store does not hold; allowed: runs of registry "
            f"data, or of your own model and data given as files ({FILES_FLAGS})"
        )
    if environment.get(MODEL_KEY) is None and files is not None:
        raise StoreError(f"run {run_id} trained the registry model {config.model} on {config.dataset}; allowed: "
                         "--model-file and --data-file only for runs of your own model")
    target = resolve_device(device)
    state = store.load_weights(run_id)
    task = None
    if environment.get(MODEL_KEY) is not None:
        task = rebuilt_task(run_id, environment, files, tasks)
        splits = task.splits(target)
        model = task.build_model()
    else:
        splits = load_splits(config, target)
        model = build_model(config.model, splits.input_shape, splits.num_classes, config.hidden)
    use_batch_norm_settings(model, config)  # ghost batch norm / no moving averages, as trained
    model.load_state_dict(state)
    model.to(target).eval()
    objective = task.objective if task is not None else CLASSIFICATION
    return RestoredRun(run_id, config, model, splits, record, objective, task)


def rebuilt_task(
    run_id: str, environment: Mapping[str, Any], files: tuple[str, str] | None, tasks: Iterable["Task"] = ()
) -> "Task":
    """The task of a user's run ``run_id``: one of ``tasks`` with its fingerprints, else the task
    of ``files`` or of the run's origin, checked against its fingerprints."""
    for task in tasks:
        if not changed_parts(environment, task):
            return task
    origin = environment.get(ORIGIN_KEY)
    if files is None:
        if not origin:
            raise StoreError(f"run {run_id} trained a model given to it in Python ({environment[MODEL_KEY].get('name')}), "
                             f"and the store keeps no files to build it from; allowed: {FILES_FLAGS} naming files "
                             "that give the same model and data")
        files = (origin["model_file"], origin["data_file"])
        for reference in files:
            path = Path(reference.rpartition(":")[0])
            if not path.is_file():
                raise StoreError(f"run {run_id} was trained from {path}, which is gone; allowed: {FILES_FLAGS} "
                                 "naming where its model and data files are now")
    from batchlab.task.files import task_from_files

    task = task_from_files(*files)
    changed = changed_parts(environment, task)
    if changed:
        raise StoreError(_changed_message(run_id, environment, task, files, changed))
    return task


def changed_parts(environment: Mapping[str, Any], task: "Task") -> list[str]:
    """What of the run's model and data fingerprints ``task`` does not have: the model entry's
    parts (``architecture``, ``code``, ``parameters``, ``loss``, ``metric``) and ``data``; the
    names (file stem and function) are not compared."""
    stored_model = {k: v for k, v in (environment.get(MODEL_KEY) or {}).items() if k != "name"}
    model = {k: v for k, v in task.model_fingerprint.items() if k != "name"}
    changed = sorted(key for key in stored_model.keys() | model.keys() if stored_model.get(key) != model.get(key))
    stored_data = environment.get(DATA_KEY) or {}
    if (stored_data.get("sha256"), stored_data.get("splits")) != (task.data_fingerprint["sha256"],
                                                                  task.data_fingerprint["splits"]):
        changed.append("data")
    return changed


def _changed_message(run_id: str, environment: Mapping[str, Any], task: "Task", files: tuple[str, str],
                     changed: list[str]) -> str:
    model_parts = [part for part in changed if part != "data"]
    what = []
    if model_parts:
        what.append(f"the model of {files[0]} ({', '.join(model_parts)}: {model_digest(environment.get(MODEL_KEY))} "
                    f"then, {model_digest(task.model_fingerprint)} now)")
    if "data" in changed:
        what.append(f"the data of {files[1]} ({data_digest(environment.get(DATA_KEY))} then, "
                    f"{data_digest(task.data_fingerprint)} now)")
    return (f"run {run_id}: {' and '.join(what)} changed since the run trained; allowed: the files as they were "
            f"(or {FILES_FLAGS} naming copies that are), or train the changed files again and measure that run")
