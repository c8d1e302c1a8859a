"""What the small-vs-large-batch experiments (``gap``, ``largebatch``) need of a user's own model
and data (:class:`batchlab.Task`, ``--model-file``/``--data-file``), and how they record it.

Both compare accuracies in points, stop or judge at a training *accuracy*, and measure Keskar's
sharpness and the at-a-minimum rule on the cross-entropy; both report test accuracy. So the task
must be **a classification model** (loss cross-entropy, metric accuracy) with **a test split**:
a regression model's MSE in those places would be reported under the wrong name, so it is
refused in one line (:class:`~batchlab.errors.ConfigError`) before anything trains. The gradient
norms, sharpness and Hessian measures take the training split as tensors, so data streamed from
a Dataset (too large to keep on the device) is refused as well (:func:`check_tensor_data`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchlab.errors import ConfigError
from batchlab.store.identity import data_digest, model_digest

if TYPE_CHECKING:
    from batchlab.task import Task

ALLOWED_TASK = "allowed: a classification model (loss cross_entropy, metric accuracy)"


def check_classification_task(task: "Task", experiment: str) -> None:
    """ConfigError unless ``task`` is a classification model with a test split (module docstring);
    ``experiment`` names the command in the message."""
    objective = task.objective
    if not objective.is_classification:
        raise ConfigError(f"{experiment} compares accuracies and the sharpness of the cross-entropy; the model "
                          f"{task.name} has loss {objective.loss_name} and metric {objective.metric_name}; "
                          f"{ALLOWED_TASK}")
    if "test" not in task.data.splits:
        raise ConfigError(f"{experiment} reports test accuracy, but the data {task.data_name} has no test split; "
                          "allowed: data with a test split (x_train, y_train, x_val, y_val, x_test, y_test)")


def task_identity(task: "Task | None") -> dict[str, Any] | None:
    """The record's entry for the task: names, short fingerprints and the files it came from
    (None for the registry's model and data)."""
    if task is None:
        return None
    return {"model": task.model_id, "model_fingerprint": model_digest(task.model_fingerprint),
            "data": task.dataset_id, "data_fingerprint": data_digest(task.data_fingerprint),
            "loss": task.objective.loss_name, "metric": task.objective.metric_name, "origin": task.origin}


def check_batch_sizes(small_batch: int | None, large_batch: int | None) -> None:
    """ConfigError unless each of ``small_batch``, ``large_batch`` given (not None) is an integer ≥ 1;
    whether they fit the training set is checked where its size is known."""
    for name, value in (("small batch", small_batch), ("large batch", large_batch)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} {value!r} is invalid; allowed: an integer ≥ 1")


def check_tensor_data(task: "Task", splits: Any, experiment: str) -> None:
    """ConfigError unless the task's ``splits`` (for the device the experiment runs on) are held as
    tensors, which the experiment's measurements need (module docstring)."""
    from batchlab.data import TensorSplit

    if not isinstance(splits.train, TensorSplit):
        raise ConfigError(f"{experiment} measures gradient norms and sharpness on the training split as tensors, but "
                          f"the data {task.data_name} is streamed (too large to keep on the device); allowed: data "
                          "that fits on the device (tensors, or Datasets that can be stacked)")
