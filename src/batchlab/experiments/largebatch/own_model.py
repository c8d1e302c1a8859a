"""The comparison on a user's own model and data (:class:`batchlab.Task`, ``--model-file``/``--data-file``).

The scale's setting is kept — batch sizes, epochs, η grid, warm-up, SWAP's phases — and its
network and data are replaced by the task's: ``model`` and ``dataset`` become the task's names
(``user:<name>``) with their short fingerprints (:mod:`batchlab.store.identity`), so the table's
header and the record say which model and data were compared; ``hidden`` and ``train_subset``
do not apply.

What the comparison needs of the task (a classification model with a test split:
:mod:`batchlab.experiments.own_task`, the rule ``gap`` shares) and batch sizes that fit
(SB < LB ≤ the training set) are checked before anything trains (one-line
:class:`~batchlab.errors.ConfigError`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from batchlab.experiments.own_task import check_classification_task
from batchlab.store.identity import data_digest, model_digest

# The experiment's Setting, named by a type variable: importing it here would close a circle.
SettingT = TypeVar("SettingT")

if TYPE_CHECKING:
    from batchlab.task import Task


def check_task(task: "Task") -> None:
    """ConfigError unless ``task`` is a classification model with a test split."""
    check_classification_task(task, "largebatch")


def task_setting(setting: SettingT, task: "Task") -> SettingT:
    """``setting`` (the experiment's ``Setting``, a dataclass) with the task's model and data in
    place of the registry's (module docstring)."""
    return replace(setting, model=task.model_id, dataset=task.dataset_id, hidden=None, train_subset=None, note="",
                   model_fingerprint=model_digest(task.model_fingerprint),
                   data_fingerprint=data_digest(task.data_fingerprint))
