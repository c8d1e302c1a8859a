"""What to do with a run asked for: the one decision, :func:`decide`, as a pure function.

Every trainer asks it through the store's claim (:meth:`batchlab.store.RunStore.claim_run`, which
calls it inside one write transaction, so several processes asked for the same run train it once),
and the sweep planner asks it to say what a sweep will do. The rule, in this order:

1. **ended** — the store holds the run as a result (:func:`batchlab.store.status.is_result`:
   finished, diverged, failed to train) and ``force`` is off: it is read back, not trained;
2. **busy** — another live process on this host is training it: wait for it, then ask again;
3. **resume at epoch k** — it is unfinished and a checkpoint written after epoch k − 1 exists
   (``force`` off): training continues from that checkpoint;
4. **start** — otherwise (no record, no checkpoint, or ``force``): training starts at epoch 1.

A forced run that another live process is training is still *busy*: force replaces a result,
never a run in progress.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from batchlab.store.status import is_result

if TYPE_CHECKING:
    from batchlab.store.record import RunRecord


class Action(StrEnum):
    ENDED = "ended"
    BUSY = "busy"
    RESUME = "resume"
    START = "start"


@dataclass(frozen=True)
class Decision:
    """What :func:`decide` found: the ``action``, the epoch training starts at (``start_epoch``;
    1 unless resuming) and the stored ``record`` it looked at (None when the store has none)."""

    action: Action
    start_epoch: int = 1
    record: "RunRecord | None" = None

    @property
    def trains(self) -> bool:
        """True when this process trains the run (start or resume)."""
        return self.action in (Action.START, Action.RESUME)


def decide(
    record: "RunRecord | None",
    checkpoint: Mapping[str, Any] | None,
    force: bool,
    *,
    held_elsewhere: bool = False,
) -> Decision:
    """The decision of the module docstring for a run whose stored row is ``record`` (None: not
    in the store) and whose resumable ``checkpoint`` (a payload holding ``epoch``, the last epoch
    it completed; None when there is none) — ``held_elsewhere``: another live process holds the
    run (:func:`batchlab.store.runs.held_by_live_process`, which the caller checks, keeping this
    function free of the operating system)."""
    if record is not None and is_result(record.status) and not force:
        return Decision(Action.ENDED, record=record)
    if held_elsewhere:
        return Decision(Action.BUSY, record=record)
    if checkpoint is not None and not force:
        return Decision(Action.RESUME, start_epoch=int(checkpoint["epoch"]) + 1, record=record)
    return Decision(Action.START, record=record)
