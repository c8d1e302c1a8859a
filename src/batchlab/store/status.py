"""The statuses of a run, shared by training results and the run store: the one place they are
defined.

A run is ``running`` while it trains (only ever seen in the store), then ends:

* ``finished``: it trained to its end rule (epochs, target, patience, update budget);
* ``diverged``: its loss became NaN or infinite;
* ``failed to train``: it ended with finite numbers but did not learn — its final training loss
  is above the loss of its initial weights, or (classification) its training accuracy sits at
  chance level (:func:`training_failure` states the rule);
* ``failed``: an exception stopped it.

A run the user stopped (Ctrl-C) is ``interrupted``: not a result, it resumes from its last
checkpoint.

``finished``, ``diverged`` and ``failed to train`` are *results*: a run holding one of them is
read back from the store and never trained again unless forced (a run that failed to train at
these settings fails again — same seed, same data order — so retraining it only costs time; it
is left out of means and figures, not out of the store). :func:`is_result` is the question every
experiment asks of a stored record before reusing it.

:class:`RunStatus` is a ``str`` enum: its members *are* the strings stored in SQLite and printed
in JSON (``RunStatus.FINISHED == "finished"``), so stores and outputs keep their values.
"""

from __future__ import annotations

import math
from enum import StrEnum


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    DIVERGED = "diverged"
    FAILED_TO_TRAIN = "failed to train"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


RUNNING = RunStatus.RUNNING
FINISHED = RunStatus.FINISHED
DIVERGED = RunStatus.DIVERGED
FAILED_TO_TRAIN = RunStatus.FAILED_TO_TRAIN
FAILED = RunStatus.FAILED
INTERRUPTED = RunStatus.INTERRUPTED
STATUSES = tuple(status.value for status in RunStatus)
# A run with one of these statuses is a result: it is read back, never trained again unless forced.
ENDED_STATUSES = (FINISHED, DIVERGED, FAILED_TO_TRAIN)
# The statuses a run can be closed with.
FINAL_STATUSES = (FINISHED, DIVERGED, FAILED_TO_TRAIN, FAILED)

# "At chance": training accuracy at most 1/C + CHANCE_MARGIN·(1 − 1/C), i.e. within 5 % of the way
# from guessing to perfect. On ten classes that is 0.145: a collapsed classifier (one class
# everywhere: 0.10, a little above it with noise) is caught, while an MLP passes after a few dozen
# updates on MNIST. A margin proportional to 1/C alone (1.5/C, say) would call a binary classifier
# at 74 % "at chance".
CHANCE_MARGIN = 0.05


def is_result(status: str | None) -> bool:
    """Whether a run with ``status`` is a result to reuse (finished, diverged, failed to train)."""
    return status in ENDED_STATUSES


def is_success(status: str | None) -> bool:
    """Whether a run with ``status`` counts in means and figures (finished only)."""
    return status == FINISHED


def training_failure(
    initial_loss: float | None,
    final_loss: float,
    final_accuracy: float | None = None,
    num_classes: int | None = None,
) -> str | None:
    """Why a run with finite numbers failed to train, or None when it trained.

    The rule, checked in this order:

    1. the final training loss is above the initial one (``final_loss > initial_loss``): the
       updates made the model worse than its initial weights;
    2. classification only (``final_accuracy`` and ``num_classes`` given): the final training
       accuracy is at most chance + :data:`CHANCE_MARGIN` · (1 − chance), chance = 1/``num_classes``
       — the model does no better than guessing.

    ``initial_loss`` is the loss of the initial weights; the trainers pass the loss of the run's
    first update (the initial weights on its first batch), which costs nothing — an evaluation of
    the whole split before training would add a pass over the data to every run. At
    initialization the outputs of the usual models barely depend on the example, so one batch
    gives the initial loss closely; with B = 1 it is one example's loss. None when unknown (a
    run resumed from a checkpoint written before this rule): rule 1 is skipped. Non-finite
    numbers are divergence, not this rule: they return None.
    """
    numbers = [final_loss] + [value for value in (initial_loss, final_accuracy) if value is not None]
    if not all(math.isfinite(value) for value in numbers):
        return None
    if initial_loss is not None and final_loss > initial_loss:
        return f"final training loss {final_loss:.4g} is above the initial {initial_loss:.4g}"
    if final_accuracy is not None and num_classes is not None and num_classes >= 2:
        chance = 1.0 / num_classes
        threshold = chance + CHANCE_MARGIN * (1.0 - chance)
        if final_accuracy <= threshold:
            return (f"training accuracy {final_accuracy:.4g} is at chance level "
                    f"(≤ 1/{num_classes} + {CHANCE_MARGIN:g} × (1 − 1/{num_classes}) = {threshold:.4g})")
    return None

