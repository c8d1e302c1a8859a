"""The one status enum, the failed-to-train rule and the one run decision, as tables."""

import json
import math

import pytest

from batchlab.store.decision import Action, decide
from batchlab.store.record import RunRecord
from batchlab.store.status import (
    CHANCE_MARGIN,
    FAILED_TO_TRAIN,
    FINISHED,
    STATUSES,
    RunStatus,
    is_result,
    training_failure,
)


def test_statuses_are_the_strings_stores_and_json_hold():
    assert RunStatus.FINISHED == "finished" and f"{FAILED_TO_TRAIN}" == "failed to train"
    assert json.dumps({"status": FINISHED}) == '{"status": "finished"}'
    assert STATUSES == ("running", "finished", "diverged", "failed to train", "failed", "interrupted")


@pytest.mark.parametrize(("status", "result"), [
    ("finished", True), ("diverged", True), ("failed to train", True),
    ("running", False), ("interrupted", False), ("failed", False), (None, False),
])
def test_which_statuses_are_results_to_reuse(status, result):
    assert is_result(status) is result


# (initial loss, final loss, final accuracy, classes) → failed to train?
FAILURE_CASES = [
    (2.30, 0.20, 0.95, 10, False),            # learned
    (2.30, 2.40, 0.95, 10, True),             # loss rose above the initial loss
    (2.30, 2.30, 0.50, 10, False),            # equal to the initial loss is not above it
    (2.30, 1.90, 0.10, 10, True),             # accuracy at chance: 1/10
    (2.30, 1.90, 0.145, 10, True),            # at the threshold 0.1 + 0.05 × 0.9
    (2.30, 1.90, 0.15, 10, False),            # above it
    (0.69, 0.60, 0.52, 2, True),              # two classes: threshold 0.525
    (0.69, 0.60, 0.53, 2, False),             # a binary classifier a little above guessing trained
    (None, 9.00, 0.90, 10, False),            # initial loss unknown (an old checkpoint): rule 1 skipped
    (1.00, 0.50, None, None, False),          # not a classifier: loss rule only
    (1.00, 1.50, None, None, True),
    (2.30, math.nan, 0.10, 10, False),        # non-finite is divergence, not this rule
    (2.30, math.inf, None, None, False),
]


@pytest.mark.parametrize(("initial", "final", "accuracy", "classes", "fails"), FAILURE_CASES)
def test_the_failed_to_train_rule(initial, final, accuracy, classes, fails):
    reason = training_failure(initial, final, accuracy, classes)
    assert (reason is not None) is fails
    if fails:
        assert ("initial" in reason) or ("chance" in reason and f"{CHANCE_MARGIN:g}" in reason)


def record(status, host="elsewhere", pid=1):
    return RunRecord("r", status, {}, {}, {}, "created", None, None, host, pid)


# (stored status or None, checkpoint epoch or None, force, held elsewhere) → (action, start epoch)
DECISIONS = [
    (None, None, False, False, Action.START, 1),
    (None, 3, False, False, Action.RESUME, 4),
    ("finished", None, False, False, Action.ENDED, 1),
    ("diverged", 2, False, False, Action.ENDED, 1),
    ("failed to train", None, False, False, Action.ENDED, 1),  # a result: not retrained
    ("failed to train", None, True, False, Action.START, 1),   # unless forced
    ("finished", 2, True, False, Action.START, 1),             # force starts over, ignoring a checkpoint
    ("running", 2, False, True, Action.BUSY, 1),
    ("running", None, True, True, Action.BUSY, 1),             # force never takes a live run over
    ("running", 2, False, False, Action.RESUME, 3),            # its process died: take it over
    ("interrupted", 5, False, False, Action.RESUME, 6),
    ("interrupted", None, False, False, Action.START, 1),
    ("failed", None, False, False, Action.START, 1),
]


@pytest.mark.parametrize(("status", "epoch", "force", "held", "action", "start"), DECISIONS)
def test_the_one_run_decision(status, epoch, force, held, action, start):
    stored = None if status is None else record(status)
    checkpoint = None if epoch is None else {"epoch": epoch}
    decision = decide(stored, checkpoint, force, held_elsewhere=held)
    assert (decision.action, decision.start_epoch) == (action, start)
    assert decision.record is stored
    assert decision.trains is (action in (Action.START, Action.RESUME))
