"""What a run minimizes and what it reports: the loss and the metric, as one :class:`Objective`.

Registry runs use the lecture's pair: mean cross-entropy and accuracy (:data:`CLASSIFICATION`).
A user's task (:class:`batchlab.Task`) may bring its own loss and metric. The rules are the same
for both:

* ``loss(outputs, targets)`` is the mean over the batch's examples, a scalar tensor — what one
  update differentiates;
* ``metric(outputs, targets)`` is a mean over the batch's examples too (a float or a scalar
  tensor). Over a whole split, loss and metric are the example-weighted mean of their values on
  chunks of the split, which is exact for per-example means (cross-entropy, accuracy, MSE, …);
* the metric's key in a run's metrics is ``train_<name>``, ``val_<name>``, ``test_<name>``;
  accuracy keeps its name ``acc`` (``train_acc`` …), so every figure of accuracy works on it.

Named losses and metrics (:data:`LOSSES`, :data:`METRICS`), for a model file that cannot pass a
function by value as easily as Python can: ``cross_entropy`` (the default loss), ``mse`` (mean
squared error, for regression); metrics ``accuracy`` (the default, key ``acc``), ``mse`` and
``mae`` (mean absolute error). The regression ones refuse outputs whose shape is not the
targets' shape, since broadcasting an ``(n, 1)`` output against ``(n,)`` targets would silently
average n² differences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

ACCURACY = "acc"


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The fraction of examples whose largest output is at the target class."""
    return (outputs.argmax(dim=1) == targets).double().mean()


def _same_shape(outputs: torch.Tensor, targets: torch.Tensor, name: str) -> None:
    if outputs.shape != targets.shape:
        raise ValueError(f"{name} needs outputs and targets of one shape, got {list(outputs.shape)} and "
                         f"{list(targets.shape)} (reshape the model's output or the targets)")


def mean_squared_error(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean over every entry of (outputs − targets)²; outputs and targets of one shape."""
    _same_shape(outputs, targets, "mse")
    return F.mse_loss(outputs, targets.to(outputs.dtype))


def mean_absolute_error(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean over every entry of |outputs − targets|; outputs and targets of one shape."""
    _same_shape(outputs, targets, "mae")
    return F.l1_loss(outputs, targets.to(outputs.dtype))


@dataclass(frozen=True)
class Objective:
    """A loss and a metric with their names (see the module docstring for the rules)."""

    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    metric: Callable[[torch.Tensor, torch.Tensor], float | torch.Tensor]
    loss_name: str
    metric_name: str

    @property
    def is_classification(self) -> bool:
        """True for the registry pair (cross-entropy, accuracy), computed in its exact fast form."""
        return self.loss is F.cross_entropy and self.metric is accuracy

    def sums(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and metric summed over the examples of one chunk, as float64 scalars on the
        outputs' device (no host synchronization)."""
        if self.is_classification:
            loss_sum = F.cross_entropy(outputs, targets, reduction="sum").double()
            return loss_sum, (outputs.argmax(dim=1) == targets).sum().double()
        n = len(targets)
        loss_sum = self.loss(outputs, targets).detach().double() * n
        metric = torch.as_tensor(self.metric(outputs, targets), dtype=torch.float64, device=outputs.device)
        return loss_sum, metric.detach() * n


CLASSIFICATION = Objective(F.cross_entropy, accuracy, "cross_entropy", ACCURACY)

# What a name in a model file (``loss = "mse"``) or in ``batchlab.Task(loss="mse")`` stands for.
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": F.cross_entropy, "mse": mean_squared_error,
}
METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "accuracy": accuracy, "mse": mean_squared_error, "mae": mean_absolute_error,
}
# The metric key of a named metric: accuracy keeps ``acc`` (``val_acc``).
METRIC_KEYS = {"accuracy": ACCURACY, "mse": "mse", "mae": "mae"}


def is_named(function: object) -> bool:
    """True for a loss or metric of :data:`LOSSES` or :data:`METRICS` (batchlab's own)."""
    return any(function is known for known in (*LOSSES.values(), *METRICS.values()))
