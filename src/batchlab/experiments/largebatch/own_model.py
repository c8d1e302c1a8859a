"""The comparison on a user's own model and data (:class:`batchlab.Task`, ``--model-file``/``--data-file``).

The scale's setting is kept — batch sizes, epochs, η grid, warm-up, SWAP's phases — and its
network and data are replaced by the task's: ``model`` and ``dataset`` become the task's names
(``user:<name>``) with their short fingerprints (:mod:`batchlab.store.identity`), so the table's
header and the record say which model and data were compared; ``hidden`` and ``train_subset``
do not apply.

What the comparison needs of the task, checked before anything trains (one-line
:class:`~batchlab.errors.ConfigError`):

* **a classification model** (loss cross-entropy, metric accuracy): the table, the margins and
  the verdicts are about accuracies in points, "LB to SB's training accuracy" and SWAP's phase 1
  stop at a training *accuracy*, and Keskar's sharpness is measured on the cross-entropy. A
  regression model's MSE in those places would be reported under the wrong name, so it is refused.
* **a test split**: the table reports test accuracy; the validation split chooses SB's η.
* **batch sizes that fit**: SB < LB ≤ the training set.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from batchlab.errors import ConfigError
from batchlab.store.identity import data_digest, model_digest

# The experiment's Setting, named by a type variable: importing it here would close a circle.
SettingT = TypeVar("SettingT")

if TYPE_CHECKING:
    from batchlab.task import Task

ALLOWED_TASK = "allowed: a classification model (loss cross_entropy, metric accuracy)"


def check_task(task: "Task") -> None:
    """ConfigError unless ``task`` is a classification model with a test split (module docstring)."""
    objective = task.objective
    if not objective.is_classification:
        raise ConfigError(f"largebatch compares accuracies and the sharpness of the cross-entropy; the model "
                          f"{task.name} has loss {objective.loss_name} and metric {objective.metric_name}; "
                          f"{ALLOWED_TASK}")
    if "test" not in task.data.splits:
        raise ConfigError(f"largebatch reports test accuracy, but the data {task.data_name} has no test split; "
                          "allowed: data with a test split (x_train, y_train, x_val, y_val, x_test, y_test)")


def task_setting(setting: SettingT, task: "Task") -> SettingT:
    """``setting`` (the experiment's ``Setting``, a dataclass) with the task's model and data in
    place of the registry's (module docstring)."""
    return replace(setting, model=task.model_id, dataset=task.dataset_id, hidden=None, train_subset=None, note="",
                   model_fingerprint=model_digest(task.model_fingerprint),
                   data_fingerprint=data_digest(task.data_fingerprint))


def task_identity(task: "Task | None") -> dict[str, Any] | None:
    """The record's entry for the task: names, short fingerprints and the files it came from
    (None for the registry's model and data)."""
    if task is None:
        return None
    return {"model": task.model_id, "model_fingerprint": model_digest(task.model_fingerprint),
            "data": task.dataset_id, "data_fingerprint": data_digest(task.data_fingerprint),
            "loss": task.objective.loss_name, "metric": task.objective.metric_name, "origin": task.origin}
