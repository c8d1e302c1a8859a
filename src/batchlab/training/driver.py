"""The epoch driver: the one loop over epochs, :func:`drive`, and what it is given, a :class:`Step`.

A run's life is the same whichever way its updates are computed — one model
(:class:`batchlab.training.loop.SingleStep`), K runs stacked in one vmapped step
(:class:`batchlab.training.packed.PackStep`), or one process of a data-parallel run
(:class:`batchlab.distributed.trainer.RankStep`). The driver owns that life, the trainers own
only their updates (the way :mod:`batchlab.optim.functional` keeps its variants side by side):

1. each epoch: the step's updates (:meth:`Step.train_epoch`), then the training and validation
   loss and metric of every run (:meth:`Step.evaluate`), one metrics row per run
   (:func:`~batchlab.training.session.epoch_row`, with the objective's metric name) handed to its
   session, whose end rules say whether the run ends (divergence, target, update budget,
   patience, last epoch); a run that goes on is checkpointed (:meth:`Step.checkpoint`);
2. runs that end leave the step (:meth:`Step.keep`); a data-parallel step first makes every
   process agree on who ends (:meth:`Step.agree`), because only process 0 evaluates;
3. at the end of each run: the failed-to-train rule (:func:`batchlab.store.status.training_failure`,
   whose reference is the loss of the initial weights on the run's first batch — the first
   update's loss, which the step reports at no cost; a resumed or continued run reads it from
   its checkpoint), the test split for finished runs, the final weights (and the final training
   state, :meth:`Step.checkpoint` after the last epoch, when the session keeps it), the summary
   (:meth:`RunSession.finish`).

Claiming, resuming and the stored result are the session's (:mod:`batchlab.training.session`),
asked before the step is built; :func:`restore` is the one way a model and its optimizer resume
from a checkpoint.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from batchlab.store.status import FINISHED
from batchlab.training.objective import ACCURACY, Objective
from batchlab.training.progress import EpochProgress
from batchlab.training.result import RunResult
from batchlab.training.session import RunSession, epoch_row

if TYPE_CHECKING:
    from batchlab import data as datasets


@dataclass
class EpochWork:
    """What one epoch of a step did: ``updates`` made, ``seconds`` of wall time per run (a packed
    step's time divided by its runs), each run's sum of batch losses (``loss_sums``) and, in an
    epoch that made a run's first update, each run's loss of that update (``first_losses``: the
    initial weights on the first batch)."""

    updates: int
    seconds: float
    loss_sums: list[float]
    first_losses: list[float] | None = None

    def row(self, k: int) -> "EpochWork":
        """Run ``k``'s part of this work, as the work of one run."""
        firsts = None if self.first_losses is None else [self.first_losses[k]]
        return EpochWork(self.updates, self.seconds, [self.loss_sums[k]], firsts)


class Step(Protocol):
    """How the updates of one or more runs are computed; row k is the k-th run still training."""

    def train_epoch(self, epoch: int, updates: int, limit: int) -> EpochWork:
        """Epoch ``epoch``'s updates (at most ``limit``), the first being update ``updates``."""

    def evaluate(self, split: Any, rows: Sequence[int] | None = None) -> list[tuple[float, float]]:
        """Mean loss and metric of each run (or of ``rows``) over a whole split."""

    def checkpoint(self, row: int, epoch: int, updates: int) -> dict[str, Any]:
        """Run ``row``'s checkpoint payload in the one-model format (:func:`checkpoint_payload`)."""

    def weights(self, row: int) -> Mapping[str, torch.Tensor]:
        """Run ``row``'s final weights as one model's state dict."""

    def keep(self, rows: list[int]) -> None:
        """Go on with ``rows`` only (the others ended)."""

    def agree(self, ending: list[bool]) -> list[bool]:
        """Which runs end, as every process of the step sees it (one process: ``ending``)."""

    def timing(self) -> dict[str, Any]:
        """The timing keys of the summary (``time_per_update_s`` and its quartiles, …)."""


def drive(
    step: Step,
    sessions: Sequence[RunSession],
    splits: "datasets.Splits",
    objective: Objective,
    reporter: EpochProgress,
    *,
    shape: Mapping[str, int],
    owner: bool = True,
) -> list[RunResult]:
    """Train ``sessions`` (claimed, all resuming at the same epoch and update) with ``step`` to
    their end; the results of the runs, in the order they ended (none on a process that does not
    own the store). ``shape``: ``batch_size``, ``n_train``, ``updates_per_epoch`` of the summary."""
    active = list(sessions)
    config = active[0].config  # every field the loop reads is shared by the runs of a step
    start_epoch, updates = active[0].start_epoch, active[0].updates
    classes = getattr(splits, "num_classes", None) if objective.metric_name == ACCURACY else None
    for session in active:
        session.log_plain = owner and reporter.plain
    reporter.skip_to(start_epoch - 1)
    results: list[RunResult] = []
    try:
        for epoch in range(start_epoch, config.epochs + 1):
            limit = None if config.max_updates is None else config.max_updates - updates
            work = step.train_epoch(epoch, updates, limit)
            updates += work.updates
            if work.first_losses is not None:
                for session, loss in zip(active, work.first_losses):
                    session.initial_loss = loss
            ending = [False] * len(active)
            if owner:
                train = step.evaluate(splits.train)
                val = None if splits.val is None else step.evaluate(splits.val)
                for k, session in enumerate(active):
                    row = epoch_row(epoch, train=train[k], val=None if val is None else val[k],
                                    batch_loss_sum=work.loss_sums[k], updates=updates, epoch_updates=work.updates,
                                    epoch_time_s=work.seconds, metric=objective.metric_name)
                    ending[k] = session.end_of_epoch(row)
                    if not ending[k] and session.store is not None:  # nothing to build without a store
                        session.save_checkpoint(step.checkpoint(k, epoch, updates) | session.resume_fields())
                reporter.update(epoch, median_row([session.history[-1] for session in active]))
            ending = step.agree(ending)
            if any(ending):
                done = [k for k, ends in enumerate(ending) if ends]
                if owner:
                    results += _finish(step, done, [active[k] for k in done], splits, objective, shape, classes)
                keep = [k for k, ends in enumerate(ending) if not ends]
                if not keep:
                    break
                active = [active[k] for k in keep]
                step.keep(keep)
    except KeyboardInterrupt:
        for session in active:
            session.interrupted()
        raise
    finally:
        reporter.close()
    return results


def _finish(
    step: Step, rows: list[int], sessions: list[RunSession], splits: "datasets.Splits", objective: Objective,
    shape: Mapping[str, int], classes: int | None,
) -> list[RunResult]:
    """End the runs of ``rows``: the failed-to-train rule, the test split of the finished ones
    (one pass for all), then each session's summary and final weights."""
    for session in sessions:
        session.settle(classes)
    finished = [k for k, session in zip(rows, sessions) if session.status == FINISHED]
    tests: dict[int, tuple[float, float]] = {}
    if finished and splits.test is not None:
        tests = dict(zip(finished, step.evaluate(splits.test, finished)))
    timing = step.timing()
    return [session.finish(**shape, timing=timing, test=tests.get(k), weights=step.weights(k),
                           state=_final_state(step, k, session))
            for k, session in zip(rows, sessions)]


def _final_state(step: Step, row: int, session: RunSession) -> dict[str, Any] | None:
    """Run ``row``'s checkpoint after its last epoch, when its session keeps it (``keep_state``)."""
    if not session.keep_state or not session.history:
        return None
    return step.checkpoint(row, int(session.history[-1]["epoch"]), session.updates)


def median_row(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """One row for the progress line: the row itself, or for a pack the median of each metric."""
    if len(rows) == 1:
        return dict(rows[0])
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}


def checkpoint_payload(
    epoch: int, updates: int, weights: Mapping[str, torch.Tensor], optimizer_state: Mapping[str, Any]
) -> dict:
    """What a run resumes from after ``epoch``: one model's weights, its optimizer's state dict
    and the CPU RNG (the driver adds the history and the initial loss)."""
    return {
        "epoch": epoch,
        "updates": updates,
        "model": dict(weights),
        "optimizer": dict(optimizer_state),
        "rng_state": torch.get_rng_state(),
    }


def restore(model: torch.nn.Module, optimizer: torch.optim.Optimizer, checkpoint: Mapping[str, Any] | None) -> None:
    """Resume ``model`` and ``optimizer`` from ``checkpoint`` (and the CPU RNG it saved, which
    models with dropout draw from); nothing when there is none. Every trainer resumes here."""
    if checkpoint is None:
        return
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    torch.set_rng_state(checkpoint["rng_state"])
