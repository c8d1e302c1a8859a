"""Keskar's comparison on a user's own model and data (:class:`batchlab.Task`,
``batchlab gap --model-file … --data-file …``).

The user's model takes the place of the paper's networks: one network, trained in both regimes
exactly as the built-in ones are — one optimizer and one set of hyperparameters for SB and LB
(Adam at lr 1e-3 unless ``--optimizer``/``--lr`` say otherwise), SB and LB of a seed from the same
initial weights (the task's factory called right after ``torch.manual_seed(seed)``), the whole
training split trained on (the task's validation split is evaluated, never trained on), stored
runs reused; then the same at-a-minimum rule, sharpness, curvature measures and parametric line,
all on the task's loss.

The scale gives the protocol (:data:`TEMPLATES`): its epoch caps, stopping patience, rounds of
training on, measurement subsets and its SB (16 at quick, 256 at standard and full); LB is 10 %
of the training set, as in the paper. A training-accuracy target (the standard scale's 87 %) is
chosen for Fashion-MNIST and is not applied to the user's data. SB and LB can be given instead
(``--small-batch``, ``--large-batch``) for a training set on which the scale's do not fit
(SB < LB ≤ the training set). The paper's numbers are about its networks, so none are set beside
the user's.

What the comparison needs of the task (a classification model with a test split) is checked by
:func:`batchlab.experiments.own_task.check_classification_task`, before anything trains.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from batchlab.store.identity import data_digest, model_digest, with_digest

if TYPE_CHECKING:
    from batchlab.task import Task

# The experiment's NetworkPlan, named by a type variable: importing it here would close a circle.
NetworkT = TypeVar("NetworkT")

# The network key of a user's model in the plan, and the scale's network whose protocol it takes.
KEY = "own"
TEMPLATES = {"quick": "f1", "standard": "c1", "full": "f1"}


def task_network(template: NetworkT, task: "Task", *, small_batch: int | None,
                 large_batch: int | None) -> NetworkT:
    """``template`` (the scale's network plan, a dataclass) with the task's model and data in place
    of the registry's, no training-accuracy target, and SB / LB as given (module docstring)."""
    changes: dict[str, Any] = dict(key=KEY, paper=task.model_id, model=task.model_id, dataset=task.dataset_id,
                                   hidden=None, train_subset=None, target_train_acc=None, note="")
    if small_batch is not None:
        changes["sb"] = small_batch
    if large_batch is not None:
        changes["lb_size"] = large_batch
    return replace(template, **changes)  # type: ignore[type-var]


def task_reasons(task: "Task", scale: str) -> tuple[str, ...]:
    """Why the plan departs from the paper, for the report's notes."""
    return (f"your model {task.name} on your data {task.data_name} in place of the paper's networks and datasets, "
            f"so the paper's numbers are not set beside it; trained with the {scale} scale's epoch caps, stopping "
            "rule, rounds of training on and measurement subsets",)


def task_key(task: "Task", sb: int, lb: str) -> str:
    """The record key's part that names the task by its short fingerprints, and SB and LB (a
    comparison on other files or other batches is kept beside the first)."""
    model = with_digest(task.model_id, model_digest(task.model_fingerprint))
    data = with_digest(task.dataset_id, data_digest(task.data_fingerprint))
    return f"|model={model}|data={data}|sb={sb}|lb={lb}"
