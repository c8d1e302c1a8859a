"""One run's life in the store, in one place: :class:`RunSession`.

Every trainer — one run (loop.py), many runs in one stacked step (packed.py), a run trained on a
Ray worker and recorded on the driver (ray_executor.py) — and the sweep planner ask a session,
so each rule below is written once:

1. **Ended?** A run the store holds as a result (finished, diverged, failed to train) is
   returned as stored, never trained again, unless ``force``.
2. **Claim.** Before the first update the session claims the run in one store transaction
   (:meth:`RunStore.claim_run`, which asks the one decision, :func:`batchlab.store.decision.decide`).
   The claim sees what other processes did meanwhile: a run that
   another process ended since step 1 is returned from the store; one that another live process
   on this host is training is waited for, then returned from the store (or taken over, if that
   process died). With ``force``, the old result is replaced here — after the caller has its
   data and model ready, so a force that fails on the data loses nothing.
3. **Resume.** An unfinished run with a checkpoint resumes from it (``resuming from epoch k``); a
   run with ``continue_from`` and no checkpoint of its own starts from its source's final
   training state (:mod:`batchlab.training.continuation`).
4. **Each epoch**: the metrics row is stored, and the end rules decide whether the run goes on —
   a non-finite loss ends it as ``diverged``; then the accuracy target (``target_train_acc``:
   the first epoch whose training accuracy reaches it ends the run, finished — SWAP's first
   phase, Gupta et al. 2020); then the update budget (``max_updates``); then
   ``stop_patience`` (Keskar et al.'s "until the training loss stops improving"); then the last
   epoch. A run that goes on is checkpointed by its trainer.
5. **Settle**: a run that ends finished but did not learn ends ``failed to train`` instead, with
   the reason in its summary (``failure``; :func:`batchlab.store.status.training_failure`);
   like every result it is not trained again unless forced.
6. **Finish**: one summary builder, the final weights beside the store (and, when asked,
   a finished run's final training state, for ``continue_from``), the final status.
7. **Interrupted** (Ctrl-C): the run is marked ``interrupted`` and resumes from its last
   checkpoint the next time it is asked for.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchlab.config import RunConfig, run_id
from batchlab.store.decision import Action, decide
from batchlab.store.identity import ORIGIN_KEY
from batchlab.store.status import DIVERGED, FAILED_TO_TRAIN, FINISHED, training_failure
from batchlab.training.continuation import continuation_start
from batchlab.training.result import RunResult

if TYPE_CHECKING:
    import torch

    from batchlab.store import RunStore

# Relative improvement of the training loss that counts as "still improving" for stop_patience.
IMPROVEMENT_TOLERANCE = 1e-4
# Seconds between two looks at a run that another live process is training.
WAIT_POLL_S = 0.5



def open_store(store: "RunStore | str | Path | None") -> "RunStore | None":
    """A :class:`RunStore` for a path, the store itself, or None."""
    if store is None:
        return None
    if isinstance(store, (str, Path)):
        from batchlab.store import RunStore

        return RunStore(store)
    return store


class RunSession:
    """The store's side of one run: what is stored, what resumes, what each epoch and the end
    write. Trainers only run updates and hand each epoch's metrics row to :meth:`end_of_epoch`.

    Args:
        config: the run.
        store: where it lives (None: nothing is stored, nothing resumes).
        device_type: ``cpu``/``cuda``/…, part of the run id.
        data_fingerprint: what the run trains on when the configuration's registry fields do not
            say it (:func:`batchlab.data.identity.data_fingerprint`), part of the run id.
        execution: how the run is trained when that changes its numbers (data-parallel
            processes with per-process batch norm), part of the run id; None otherwise.
        model_fingerprint: a user's model, loss and metric (:class:`batchlab.Task`), part of
            the run id.
        metric_name: the metric's key in the summary (``test_<metric_name>``; ``acc`` for
            accuracy).
        origin: where a user's model and data came from (:attr:`batchlab.Task.origin`: the
            files), kept in the environment, not in the run id, so that moving the files keeps
            the run; None when not from files.
        force: train again a run the store holds as ended (replaced at :meth:`claim`).
        keep_weights: save the final weights beside the store.
        keep_state: also keep a finished run's final training state (weights, optimizer state,
            counts, history), so a run with ``continue_from`` can train it on
            (:mod:`batchlab.training.continuation`).
        log_plain: print one summary line when the run ends (logs without a progress bar).
    """

    def __init__(
        self,
        config: RunConfig,
        store: "RunStore | None",
        device_type: str,
        *,
        data_fingerprint: dict[str, Any] | None = None,
        execution: dict[str, Any] | None = None,
        model_fingerprint: dict[str, Any] | None = None,
        metric_name: str = "acc",
        origin: dict[str, str] | None = None,
        force: bool = False,
        keep_weights: bool = True,
        keep_state: bool = False,
        log_plain: bool = False,
    ) -> None:
        self.config = config
        self.store = store
        self.device_type = device_type
        self.data_fingerprint = data_fingerprint
        self.model_fingerprint = model_fingerprint
        self.metric_name = metric_name
        self.origin = origin
        self.run_id = run_id(config, device_type, data_fingerprint, execution, model_fingerprint)
        self.force = force
        self.keep_weights = keep_weights
        self.keep_state = keep_state
        self.log_plain = log_plain
        self.environment: dict[str, Any] = {}
        self.checkpoint: dict[str, Any] | None = None
        self.history: list[dict[str, float]] = []
        self.start_epoch = 1
        self.updates = 0
        self.status = FINISHED
        self.diverged_epoch: int | None = None
        self.stopped_early_at: int | None = None
        self.reached_target_at: int | None = None
        self.initial_loss: float | None = None
        self.failure: str | None = None

    # ------------------------------------------------------------------ before training

    def stored_result(self) -> RunResult | None:
        """The stored result when the store holds this run as ended (and ``force`` is off)."""
        if self.store is None:
            return None
        decision = decide(self.store.get(self.run_id), None, self.force)
        return result_from_record(decision.record, self.store) if decision.action == Action.ENDED else None

    def claim(self, environment: dict[str, Any]) -> RunResult | None:
        """Make this process the run's trainer; returns the stored result instead when another
        process ended the run meanwhile (see the module docstring, step 2).

        On a claim, :attr:`checkpoint` holds the checkpoint to resume from (or None), and
        :attr:`history`, :attr:`start_epoch`, :attr:`updates` where it left off.
        """
        self.environment = dict(environment)
        if self.data_fingerprint is not None:
            self.environment["data"] = self.data_fingerprint
        if self.model_fingerprint is not None:
            self.environment["user_model"] = self.model_fingerprint
        if self.origin is not None:
            self.environment[ORIGIN_KEY] = dict(self.origin)
        if self.store is None:
            return None
        stored_config = self.config.to_dict() | {"device": self.device_type}
        announced_wait = False
        while True:
            checkpoint = None if self.force else self.store.load_checkpoint(self.run_id)
            decision = self.store.claim_run(self.run_id, stored_config, self.environment, force=self.force,
                                            checkpoint=checkpoint)
            if decision.action == Action.ENDED:
                return result_from_record(decision.record, self.store)
            if decision.trains:
                break
            record = decision.record
            if not announced_wait:
                print(f"batchlab: run {self.run_id} is being trained by process {record.pid} on "
                      f"{record.host}; waiting for it to end", file=sys.stderr, flush=True)
                announced_wait = True
            _wait()
        self.force = False  # the old result is gone now; a retried claim must not drop this one
        self.checkpoint = checkpoint if decision.action == Action.RESUME else None
        continued = self.checkpoint is None and self.config.continue_from is not None
        if continued:
            self.checkpoint = continuation_start(self.config, self.store)
        if self.checkpoint is not None:
            self.history = [dict(row) for row in self.checkpoint["history"]]
            self.start_epoch = int(self.checkpoint["epoch"]) + 1
            self.updates = int(self.checkpoint["updates"])
            # Checkpoints written before the failed-to-train rule lack it; rule 1 is then skipped.
            self.initial_loss = self.checkpoint.get("initial_loss")
            if continued:  # the source's epochs are this run's first ones
                for row in self.history:
                    self.store.log_epoch(self.run_id, int(row["epoch"]), {k: v for k, v in row.items() if k != "epoch"})
            what = f"continuing run {self.config.continue_from}" if continued else "resuming"
            print(f"batchlab: run {self.run_id} {what} from epoch {self.start_epoch}", file=sys.stderr, flush=True)
        return None

    # ------------------------------------------------------------------ while training

    def end_of_epoch(self, row: Mapping[str, float]) -> bool:
        """Record one epoch's metrics (``row`` holds ``epoch``, ``updates``, losses, accuracies,
        ``epoch_time_s``); True when the run ends with it (the end rules of the module
        docstring, step 4, in that order)."""
        row = dict(row)
        epoch = int(row["epoch"])
        self.updates = int(row["updates"])
        self.history.append(row)
        if not (math.isfinite(row["batch_loss_mean"]) and math.isfinite(row["train_loss"])):
            self.status, self.diverged_epoch = DIVERGED, epoch
        if self.store is not None:
            self.store.log_epoch(self.run_id, epoch, {k: v for k, v in row.items() if k != "epoch"})
        if self.status == DIVERGED:
            return True
        if self.config.target_train_acc is not None and row["train_acc"] >= self.config.target_train_acc:
            self.reached_target_at = epoch
            return True
        if self.config.max_updates is not None and self.updates >= self.config.max_updates:
            return True
        if self.config.stop_patience and stopped_improving(self.history, self.config.stop_patience):
            self.stopped_early_at = epoch
            return True
        return epoch >= self.config.epochs

    def settle(self, num_classes: int | None = None) -> None:
        """Apply the failed-to-train rule to a run that ends ``finished``
        (:func:`batchlab.store.status.training_failure`; ``num_classes`` for the chance rule of a
        classifier, None otherwise)."""
        if self.status != FINISHED or not self.history:
            return
        last = self.history[-1]
        accuracy = last.get("train_acc") if num_classes is not None else None
        self.failure = training_failure(self.initial_loss, last["train_loss"], accuracy, num_classes)
        if self.failure is not None:
            self.status = FAILED_TO_TRAIN

    def save_checkpoint(self, payload: Mapping[str, Any]) -> None:
        """Keep ``payload`` (loop.py's checkpoint format) so the run can resume after this epoch."""
        if self.store is not None:
            self.store.save_checkpoint(self.run_id, payload)

    def resume_fields(self) -> dict[str, Any]:
        """What a checkpoint carries beside the trainer's payload: the history and the initial loss."""
        return {"history": self.history, "initial_loss": self.initial_loss}

    def interrupted(self) -> None:
        """Mark the run ``interrupted`` (Ctrl-C); its last checkpoint stays for resuming."""
        if self.store is not None:
            self.store.mark_interrupted(self.run_id)

    # ------------------------------------------------------------------ at the end

    def finish(
        self,
        *,
        batch_size: int,
        n_train: int,
        updates_per_epoch: int,
        timing: Mapping[str, Any],
        test: tuple[float, float] | None,
        weights: "Mapping[str, torch.Tensor] | None",
        state: "Mapping[str, Any] | None" = None,
    ) -> RunResult:
        """Summarize, store the final weights and status, and return the run's result.

        ``timing`` holds the trainer's timing keys (``time_per_update_s`` and its quartiles,
        ``timed_updates``, packed extras); ``test`` the test loss and metric (finished runs with
        a test split only); ``weights`` the final state dict (kept when ``keep_weights``);
        ``state`` the last epoch's checkpoint payload (kept, with the history and the initial
        loss, when ``keep_state`` and the run finished).
        """
        summary = build_summary(
            self.history,
            updates=self.updates,
            batch_size=batch_size,
            n_train=n_train,
            updates_per_epoch=updates_per_epoch,
            timing=timing,
            diverged_epoch=self.diverged_epoch,
            stopped_early_at=self.stopped_early_at,
        )
        if self.config.target_train_acc is not None:
            summary["reached_target_at"] = self.reached_target_at
        if self.initial_loss is not None:
            summary["initial_loss"] = self.initial_loss
        if self.failure is not None:
            summary["failure"] = self.failure
        if test is not None and self.status == FINISHED:
            summary["test_loss"], summary[f"test_{self.metric_name}"] = test
        if self.store is not None:
            if self.keep_weights and weights is not None:
                self.store.save_weights(self.run_id, {k: v.detach().cpu() for k, v in weights.items()})
            if self.keep_state and state is not None and self.status == FINISHED:
                self.store.save_final_state(self.run_id, dict(state) | self.resume_fields())
            self.store.finish_run(self.run_id, self.status, summary)
            self.store.delete_checkpoint(self.run_id)
        if self.log_plain:
            log_summary(self.run_id, self.status, summary, self.metric_name)
        return RunResult(self.run_id, self.config, self.status, self.history, summary, self.environment)


def epoch_row(
    epoch: int,
    *,
    train: tuple[float, float],
    val: tuple[float, float] | None,
    batch_loss_sum: float,
    updates: int,
    epoch_updates: int,
    epoch_time_s: float,
    metric: str = "acc",
) -> dict[str, float]:
    """One epoch's metrics row as every trainer stores it: the training (and validation) loss and
    metric (accuracy, ``*_acc``, unless a user's task names another) of the parameters at the end
    of the epoch, the mean loss of its batches, the update counts and the epoch's wall time."""
    row = {
        "epoch": epoch,
        "train_loss": train[0],
        f"train_{metric}": train[1],
        "batch_loss_mean": batch_loss_sum / max(epoch_updates, 1),
        "updates": updates,
        "epoch_updates": epoch_updates,
        "epoch_time_s": epoch_time_s,
    }
    if val is not None:
        row["val_loss"], row[f"val_{metric}"] = val
    return row


def build_summary(
    history: list[dict[str, float]],
    *,
    updates: int,
    batch_size: int,
    n_train: int,
    updates_per_epoch: int,
    timing: Mapping[str, Any],
    diverged_epoch: int | None,
    stopped_early_at: int | None,
) -> dict[str, Any]:
    """A run's summary: counts, timing, how it ended, and the last epoch's losses and metrics
    (every ``train_*`` and ``val_*`` key of its row)."""
    epoch_times = [row["epoch_time_s"] for row in history]
    summary: dict[str, Any] = {
        "epochs_completed": len(history),
        "updates": updates,
        "batch_size": batch_size,
        "n_train": n_train,
        "updates_per_epoch": updates_per_epoch,
        **timing,
        "time_per_epoch_s": statistics.median(epoch_times) if epoch_times else None,
        "train_time_s": sum(epoch_times),
        "diverged_epoch": diverged_epoch,
        "stopped_early_at": stopped_early_at,
    }
    if history:
        last = history[-1]
        summary.update({k: v for k, v in last.items() if k.startswith(("train_", "val_"))})
    return summary


def stopped_improving(history: list[dict[str, float]], patience: int) -> bool:
    """True when the training loss has not improved by IMPROVEMENT_TOLERANCE (relative) for
    ``patience`` epochs in a row — Keskar et al.'s "until the loss stops improving"."""
    losses = [row["train_loss"] for row in history]
    if len(losses) <= patience:
        return False
    best_before = min(losses[:-patience])
    recent_best = min(losses[-patience:])
    return recent_best > best_before * (1.0 - IMPROVEMENT_TOLERANCE)


def result_from_record(record: Any, store: "RunStore") -> RunResult:
    """Rebuild a :class:`RunResult` from a stored run (no training)."""
    return RunResult(
        record.run_id,
        RunConfig.from_dict(record.config),
        record.status,
        store.metrics(record.run_id),
        dict(record.summary),
        dict(record.environment),
        from_store=True,
    )


def run_status(store: "RunStore | None", identity: str, *, force: bool = False) -> str:
    """What a trainer asked for ``identity`` would do (:func:`batchlab.store.decision.decide`):
    ``ended`` (returned as stored), ``resume`` (continues from a checkpoint) or ``start`` — the
    sweep planner's question. A run another process trains now is planned as it would be once
    that process ends."""
    if store is None:
        return Action.START
    checkpoint = None if force else store.load_checkpoint(identity)
    return decide(store.get(identity), checkpoint, force).action


def record_trained_elsewhere(
    store: "RunStore | None",
    result: RunResult,
    weights: "Mapping[str, torch.Tensor] | None",
    *,
    force: bool = False,
    state: "Mapping[str, Any] | None" = None,
) -> RunResult:
    """Write a run trained in another process (a Ray worker's scratch store) into ``store`` as
    a session would have written it — its metrics, final weights, final training state (``state``,
    when it was kept) and summary — under the same claim rule: a run the store already holds as
    ended is left alone and returned as stored, unless ``force``."""
    if store is None:
        return result
    device_type = str(result.environment.get("device", result.config.device)).split(":")[0]
    stored_config = result.config.to_dict() | {"device": device_type}
    while True:
        decision = store.claim_run(result.run_id, stored_config, result.environment, force=force)
        if decision.action == Action.ENDED:
            return result_from_record(decision.record, store)
        if decision.trains:
            break
        _wait()
    for row in result.epochs:
        store.log_epoch(result.run_id, int(row["epoch"]), {k: v for k, v in row.items() if k != "epoch"})
    if weights is not None:
        store.save_weights(result.run_id, weights)
    if state is not None and result.status == FINISHED:
        store.save_final_state(result.run_id, state)
    store.finish_run(result.run_id, result.status, result.summary)
    store.delete_checkpoint(result.run_id)
    return result


def _wait() -> None:
    """Pause before looking again at a run another process is training."""
    time.sleep(WAIT_POLL_S)


def log_summary(identity: str, status: str, summary: Mapping[str, Any], metric_name: str = "acc") -> None:
    """One plain line for a run that ended (logs without a progress bar), with the run's own
    metric (``metric_name``: ``acc``, or a user's task's, e.g. ``mae``)."""
    parts = [f"run {identity} {status}"]
    for key in (f"train_{metric_name}", f"val_{metric_name}", f"test_{metric_name}"):
        if summary.get(key) is not None:
            parts.append(f"{key}={summary[key]:.4f}")
    if summary.get("time_per_update_s") is not None:
        parts.append(f"update={summary['time_per_update_s'] * 1e3:.3f}ms")
    if summary.get("diverged_epoch") is not None:
        parts.append(f"diverged at epoch {summary['diverged_epoch']}")
    if summary.get("failure") is not None:
        parts.append(f"({summary['failure']})")
    print(" ".join(parts), file=sys.stderr, flush=True)
