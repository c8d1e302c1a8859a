"""Training a finished run on with the same optimizer and settings: ``continue_from``.

A run whose configuration names ``continue_from`` = S is run S trained on. It is a run of its own
(its own id, metrics, weights), and it is the run S would have been had its ending rule let it go
on: it ends at ``epochs`` epochs *in all*, S's included.

**What must match** (:func:`check_continue_source`). S is a finished run of the same store, and
the configuration equals S's in every field but the ending rules — :data:`ENDING_FIELDS`:
``epochs`` (more than the epochs S completed), ``target_train_acc``, ``stop_patience`` and
``max_updates`` (None, or more than S's updates) — and ``continue_from`` itself (``device`` and
``data_dir`` say where, not what). Anything else is a one-line :class:`StoreError` naming the
field: another optimizer, rate or batch size would be a new run started from S's weights, which
is ``init_from``.

**Where it starts** (:func:`continuation_start`). From S's final training state, kept beside the
store when S finished (``train(..., keep_state=True)``, ``batchlab train --keep-state``, or in a
sweep ``run_sweep(..., keep_state=True)``, ``batchlab sweep --keep-state``: local, packed — each
row's own state — or on Ray, whose workers send it back with the run;
:meth:`batchlab.store.RunStore.save_final_state`): a checkpoint of S's last epoch in the trainers'
one format (:func:`batchlab.training.driver.checkpoint_payload`) — S's weights and batch-norm
statistics, its optimizer's state dict (the momentum buffer m of the lecture's rule, Adam's
moments and step count), the update count (the schedule gives update u_S + 1 the rate it gives
it in an uninterrupted run), the epoch count (epoch E + 1 draws the permutation of
(seed, E), :func:`batchlab.data.batches.epoch_permutation`), the CPU random state (dropout), the
metrics history (written into this run's metrics, so its record is the whole run) and the
initial loss. The session resumes from it as from its own checkpoint
(:meth:`batchlab.training.session.RunSession.claim`).

**What holds.** Then S's E epochs followed by this run's are the same updates, on the same batches
in the same order, with the same optimizer state, as one run of this configuration without
``continue_from`` trained from its initial weights for ``epochs`` epochs — provided the rates of
the first E epochs do not depend on the run's length: a constant rate, a warm-up, step decay at
fixed epochs; not cosine decay or the slow start, whose shape stretches with the run, nor the
RMSprop warm-up's hand-over (those continue at the rate this run's own schedule gives the update,
a schedule S did not follow). On one device and thread layout the weights agree to the bit
(``tests/test_continuation.py``). A packed trainer does not restore the CPU random state (its
runs draw none).

**A source without a final state** (trained before states were kept, or without
``keep_state``): its optimizer state is gone, and restarting the optimizer at S's weights is not
training on (Adam's first steps with zero moments move every weight by about η, a jump in the
loss). Such a run starts from S's initial weights instead (its seed, and ``init_from`` if any) and
trains all ``epochs`` epochs: by the rule above the same run, at the cost of E epochs trained
again; a line on stderr says so.

**Failed to train** (:func:`batchlab.store.status.training_failure`). The initial loss a
continuation carries is the chain's: the loss of θ₀, the first run's initial weights, on its
first batch — never the continuation's own first batch. Its final training loss is compared with
that: a run trained on at a minimum, whose loss stays flat there, is far below θ₀'s loss and is
finished, while its loss on its own first batch (one mini-batch at the minimum, about as likely
below the training loss as above it) would call it failed about half the time.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from batchlab.config import RunConfig
from batchlab.errors import StoreError
from batchlab.training.methods import finished_source

if TYPE_CHECKING:
    from batchlab.store import RunStore

# The fields a continuation may set otherwise than its source: when it ends.
ENDING_FIELDS = ("epochs", "target_train_acc", "stop_patience", "max_updates")
# Fields that say where a run is trained or whose data it reads, not what it computes.
_PLACE_FIELDS = ("device", "data_dir")


def check_continue_source(config: RunConfig, store: "RunStore | None") -> None:
    """The rules of "what must match" (module docstring) for ``config.continue_from``; a
    one-line :class:`StoreError` (:class:`ConfigError` without a store) when one is broken.
    Nothing to check without ``continue_from``."""
    source = config.continue_from
    if source is None:
        return
    record = finished_source("continue_from", source, store)
    own, theirs = config.to_dict(), RunConfig.from_dict(record.config).to_dict()
    for name in own:
        if name in ENDING_FIELDS or name in _PLACE_FIELDS or name == "continue_from":
            continue
        if own[name] != theirs[name]:
            raise StoreError(
                f"continue_from run {source} has {name} {theirs[name]!r}, this run {own[name]!r}; allowed: the "
                f"source's settings, except when it ends ({', '.join(ENDING_FIELDS)}); init_from starts a new run "
                "from another run's weights"
            )
    epochs, updates = int(record.summary.get("epochs_completed", 0)), int(record.summary.get("updates", 0))
    if config.epochs <= epochs:
        raise StoreError(f"continue_from run {source} completed {epochs} epochs, and this run ends at {config.epochs} "
                         f"in all; allowed: epochs > {epochs}")
    if config.max_updates is not None and config.max_updates <= updates:
        raise StoreError(f"continue_from run {source} made {updates} updates, and this run's budget is "
                         f"{config.max_updates}; allowed: max_updates > {updates}, or none")


def continuation_start(config: RunConfig, store: "RunStore") -> dict[str, Any] | None:
    """The checkpoint a run with ``continue_from`` starts from: its source's final training state
    (module docstring), or None — the run then trains from its initial weights, as the source
    did, and says so on stderr."""
    source = config.continue_from
    state = store.load_final_state(source) if source is not None else None
    if source is not None and state is None:
        print(f"batchlab: run {source} kept no final training state (optimizer state), so continuing it trains "
              f"its epochs again from its initial weights", file=sys.stderr, flush=True)
    return state
