"""Many configurations trained in one stacked step: ``train_pack(configs) -> list[RunResult]``.

Runs that share a :func:`~batchlab.training.packed_plan.pack_key` (dataset, architecture, batch size,
epochs, …) are trained together as one model stacked K times (``torch.func``), each with its own
learning rate, λ, Nesterov flag, weight decay, initialization seed and data order. Every run
follows loop.py exactly, so a packed result and a single result are interchangeable:

* initialization: ``torch.manual_seed(seed)`` then ``build_model`` on the CPU, then to the device;
* data: epoch e visits ``epoch_permutation(n, e − 1, seed, shuffle)`` in slices of B — each run
  its own permutation, so the K index vectors of a step form a (K, B) gather;
* update: the mean cross-entropy of the run's batch, and the rule of
  :class:`batchlab.optim.Momentum` (:class:`~batchlab.training.packed_state.PackedMomentum`), each
  run at the rate its own learning-rate schedule gives the update (set per row before every
  update when any run's schedule changes);
* after each epoch: training and validation loss/accuracy of every run (vmapped, in chunks), one
  metrics row per run in the store, and a checkpoint per run in loop.py's format (a single-model
  ``state_dict`` and a ``Momentum`` ``state_dict``), so a run checkpointed in a pack resumes
  alone and a run checkpointed alone resumes in a pack;
* the same run id (``run_id(config, device.type)``), statuses, summary keys and final weights.

A user's task (``task=``, :class:`batchlab.Task`) packs the same way: its factory builds each
run's starting model, its loss is the packed step's, its metric is evaluated run by run; a model
the task finds unpackable, or data that is streamed, trains one at a time (:func:`can_pack`).

Resuming: runs found finished in the store are returned from it. Unfinished runs resume from
their checkpoints; runs at different epochs are grouped by the (epoch, updates) they resume at,
and each group is trained as its own pack, one group after the other. Packable models draw no
random numbers while training, so the global random state saved in a checkpoint is not restored.

Divergence: a run whose epoch batch-loss mean or training loss is not finite ends with status
``diverged`` at that epoch (loop.py's rule). Under vmap each run's arithmetic involves only its
own row, so it cannot disturb the others; at the end of that epoch it leaves the pack (the pack
is rebuilt from the remaining rows), as does a run stopped early by ``stop_patience``.

Timing: a packed step updates K models at once, so ``time_per_update_s`` (and its quartiles) is
the step time divided by the number of runs in the pack — an amortized model-update time — and
``epoch_time_s`` is the pack's epoch time divided likewise. The summary adds ``pack_size`` (runs
in the pack when this run started; runs that diverge or stop early leave it),
``pack_step_time_s`` (median wall time of one whole packed step; ``timed_updates`` counts those
steps) and ``pack_capture_time_s`` (seconds spent capturing CUDA graphs, outside every other
timing; 0 on other devices).

Whether packing pays depends on the device: :func:`plan_packs` packs on CUDA (as many runs as
free memory allows) and elsewhere measures both ways on the actual pack and keeps the faster.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from batchlab import data as datasets
from batchlab.config import RunConfig
from batchlab.data.identity import load_splits
from batchlab.runtime.device import resolve_device, synchronize
from batchlab.runtime.environment import describe_environment
from batchlab.errors import ConfigError
from batchlab.runtime.threads import intra_op_threads, threads_for
from batchlab.training.loop import SPLITS_AND_TASK, initial_model_and_optimizer, new_session, train
from batchlab.training.methods import run_shape
from batchlab.training.objective import CLASSIFICATION
from batchlab.training.packed_plan import (
    AUTO,
    PACKED,
    SEQUENTIAL,
    STRATEGIES,
    Pack,
    can_pack,
    pack_key,
    plan_packs,
)
from batchlab.training.packed_state import PackedMomentum, momentum_row_from_optimizer, optimizer_state_dict
from batchlab.training.packed_step import PackedModel, evaluate_pack, make_step
from batchlab.training.progress import EpochProgress
from batchlab.training.result import FINISHED, RunResult
from batchlab.training.session import RunSession, epoch_row, open_store
from batchlab.training.update_timer import UpdateTimer

if TYPE_CHECKING:
    from batchlab.store import RunStore
    from batchlab.task import Task

__all__ = [
    "AUTO", "PACKED", "SEQUENTIAL", "STRATEGIES", "Pack", "PackResults", "can_pack", "pack_key", "plan_packs",
    "train_pack", "train_planned",
]


class PackResults(list):
    """The :class:`RunResult` of each config given to :func:`train_pack`, in that order, and in
    ``plan`` the packs they were trained in, each with its strategy and the reason for it."""

    def __init__(self, results: Sequence[RunResult], plan: Sequence[Pack]) -> None:
        super().__init__(results)
        self.plan = list(plan)


def train_pack(
    configs: Sequence[RunConfig],
    *,
    store: "RunStore | str | Path | None" = None,
    splits: "datasets.Splits | None" = None,
    progress: bool | None = None,
    keep_weights: bool = True,
    force: bool = False,
    strategy: str = AUTO,
    task: "Task | None" = None,
) -> PackResults:
    """Train ``configs``, packing those that can share a step; results in the order given.

    Args:
        configs: the runs. Equal configs (same run id) are trained once.
        store: a :class:`batchlab.store.RunStore` or a path to one (see :func:`batchlab.train`).
        splits: data already prepared on the right device, used for every run.
        progress: a progress bar (True), plain log lines (False) or decide by terminal (None).
        keep_weights: save each run's final weights beside the store.
        force: train again runs the store already holds as finished.
        strategy: ``auto`` (pack on CUDA; elsewhere measure and keep the faster), ``packed`` or
            ``sequential``. Runs that cannot be packed always train one at a time.
        task: a user's own model and data for every run (see :func:`batchlab.train`).

    How each group was trained, and why, is printed to stderr and kept in ``.plan``.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown packing strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")
    if task is not None:
        if splits is not None:
            raise ConfigError(SPLITS_AND_TASK)
        configs = [task.configure(config) for config in configs]
    configs = list(configs)
    run_store = open_store(store)
    sessions = [_session(config, run_store, splits, force, keep_weights, task) for config in configs]
    stored = {session.run_id: session.stored_result() for session in sessions}
    to_train: dict[str, RunConfig] = {}
    for session in sessions:
        if stored[session.run_id] is None:
            to_train.setdefault(session.run_id, session.config)
    plan = plan_packs(list(to_train.values()), splits=splits, strategy=strategy, task=task)
    results = {result.run_id: result for result in train_planned(
        plan, store=run_store, splits=splits, progress=progress, keep_weights=keep_weights, force=force, task=task)}
    results.update({identity: result for identity, result in stored.items() if result is not None})
    return PackResults([results[session.run_id] for session in sessions], plan)


def train_planned(
    plan: Sequence[Pack],
    *,
    store: "RunStore | None",
    splits: "datasets.Splits | None" = None,
    progress: bool | None = None,
    keep_weights: bool = True,
    force: bool = False,
    task: "Task | None" = None,
) -> Iterator[RunResult]:
    """Train packs already planned (by :func:`plan_packs` or a sweep's plan), each as its
    strategy says, printing the reason to stderr; yields each result as its run ends (a packed
    run's once its pack ends)."""
    for pack in plan:
        print(f"batchlab pack: {pack.reason}", file=sys.stderr, flush=True)
        if pack.strategy == SEQUENTIAL:
            for config in pack.configs:
                yield train(config, store=store, force=force, progress=progress, splits=splits,
                            keep_weights=keep_weights, task=task)
        else:
            yield from _train_packed(pack.configs, store, splits, progress, keep_weights, force, task)


def _session(config: RunConfig, run_store: "RunStore | None", splits, force: bool, keep_weights: bool,
             task: "Task | None" = None) -> RunSession:
    return new_session(config, run_store, resolve_device(config.device), splits, task, force=force,
                       keep_weights=keep_weights)


@dataclass
class _Run:
    """One run inside a pack: its session (where it starts, what it has produced so far) and,
    until the pack is stacked, the single model and momentum it starts from."""

    session: RunSession
    model: torch.nn.Module | None
    momentum_row: torch.Tensor | None

    @property
    def config(self) -> RunConfig:
        return self.session.config


def _train_packed(
    configs: Sequence[RunConfig], run_store: "RunStore | None", splits, progress: bool | None, keep_weights: bool,
    force: bool,
    task: "Task | None" = None,
) -> list[RunResult]:
    device = resolve_device(configs[0].device)
    if task is not None:
        configs = [task.configure(config) for config in configs]
        splits = task.splits(device)
    sessions = [_session(config, run_store, splits, force, keep_weights, task) for config in configs]
    if splits is None:
        splits = load_splits(configs[0], device)
    # A stacked step updates K models on K·B examples; the thread rule counts it that way.
    batch_size = datasets.resolve_batch_size(configs[0].batch_size, len(splits.train))
    threads = threads_for(len(configs) * batch_size, device)
    environment = describe_environment(device, update_threads=threads)
    results: list[RunResult] = []
    runs: list[_Run] = []
    for session in sessions:
        model, optimizer = initial_model_and_optimizer(session.config, splits, device, task, store=run_store)
        stored = session.claim(environment)
        if stored is not None:  # another process ended it meanwhile
            results.append(stored)
            continue
        if session.checkpoint is not None:
            model.load_state_dict(session.checkpoint["model"])
            optimizer.load_state_dict(session.checkpoint["optimizer"])
        runs.append(_Run(session, model, momentum_row_from_optimizer(optimizer, model)))
    # Runs resumed at different points train as separate packs (see the module docstring).
    groups: dict[tuple[int, int], list[_Run]] = {}
    for run in runs:
        groups.setdefault((run.session.start_epoch, run.session.updates), []).append(run)
    for start in sorted(groups):
        results += _train_together(groups[start], device, splits, progress, threads, task)
    return results


def _train_together(
    runs: list[_Run], device: torch.device, splits, progress: bool | None, threads: int, task: "Task | None" = None
) -> list[RunResult]:
    """Train ``runs`` (all resuming at the same epoch) as one pack; the loop of loop.py, K-wide."""
    objective = task.objective if task is not None else CLASSIFICATION
    shared = runs[0].config  # every field of the pack key is the same for all runs
    n_train = len(splits.train)
    batch_size = datasets.resolve_batch_size(shared.batch_size, n_train)
    slices = datasets.batch_index_slices(n_train, batch_size, drop_last=shared.drop_last)

    model = PackedModel.from_models([run.model for run in runs])
    optimizer = PackedMomentum([run.config for run in runs], torch.stack([run.momentum_row for run in runs]),
                               model.layout.columns)
    for run in runs:
        run.model = run.momentum_row = None  # the pack holds the only copy from here on
    schedules = [run_shape(run.config, n_train).schedule for run in runs]
    scheduled = not all(schedule.is_constant for schedule in schedules)
    optimizer.set_lr([schedule.lr_at(runs[0].session.updates) for schedule in schedules])
    step = make_step(model, optimizer, splits.train, loss=objective.loss)
    batch_lengths = sorted({end - start for start, end in slices})
    capture_s = step.prepare(batch_lengths)  # CUDA graphs are captured here, outside the timing
    active = list(runs)
    pack_size = len(runs)

    timer = _PackTimer(device)
    start_epoch, updates = runs[0].session.start_epoch, runs[0].session.updates
    reporter = EpochProgress(shared.epochs, enabled=progress, label=f"{shared.model} B={batch_size} ×{pack_size}")
    for run in runs:
        run.session.log_plain = reporter.plain
    reporter.skip_to(start_epoch - 1)
    results: list[RunResult] = []

    try:
        for epoch in range(start_epoch, shared.epochs + 1):
            orders = torch.stack(
                [datasets.epoch_permutation(n_train, epoch - 1, run.config.seed, shared.shuffle) for run in active]
            ).to(device)
            step.loss_sum.zero_()
            epoch_updates = 0
            synchronize(device)
            epoch_start = time.perf_counter()
            with intra_op_threads(threads):
                for start, end in slices:
                    if shared.max_updates is not None and updates >= shared.max_updates:
                        break
                    if scheduled:
                        optimizer.set_lr([schedule.lr_at(updates) for schedule in schedules])
                    timer.start()
                    step(orders[:, start:end])
                    timer.stop(len(active))
                    epoch_updates += 1
                    updates += 1
            synchronize(device)
            epoch_time = (time.perf_counter() - epoch_start) / len(active)  # amortized over the pack
            timer.flush()

            batch_loss_sums = step.loss_sum.tolist()
            train_losses, train_metrics = evaluate_pack(model, splits.train, objective=objective)
            if splits.val is not None:
                val_losses, val_metrics = evaluate_pack(model, splits.val, objective=objective)
            ending: list[int] = []
            for k, run in enumerate(active):
                row = epoch_row(
                    epoch,
                    train=(train_losses[k], train_metrics[k]),
                    val=None if splits.val is None else (val_losses[k], val_metrics[k]),
                    batch_loss_sum=batch_loss_sums[k],
                    updates=updates,
                    epoch_updates=epoch_updates,
                    epoch_time_s=epoch_time,
                    metric=objective.metric_name,
                )
                if run.session.end_of_epoch(row):
                    ending.append(k)
                else:
                    last_lr = schedules[k].lr_at(max(updates - 1, 0))
                    run.session.save_checkpoint(_checkpoint(run, k, epoch, updates, model, optimizer, last_lr))
            reporter.update(epoch, _median_row(run.session.history[-1] for run in active))

            if ending:
                timing = timer.summary() | {"pack_size": pack_size, "pack_capture_time_s": capture_s}
                shape = {"batch_size": batch_size, "n_train": n_train, "updates_per_epoch": len(slices)}
                results += _finish_runs([active[k] for k in ending], model.select(ending), timing, shape, splits,
                                        objective)
                keep = [k for k in range(len(active)) if k not in ending]
                if not keep:
                    break
                # Ended runs leave the pack; the rest go on as a smaller pack.
                active = [active[k] for k in keep]
                schedules = [schedules[k] for k in keep]
                model, optimizer = model.select(keep), optimizer.select(keep)
                step = make_step(model, optimizer, splits.train, loss=objective.loss)
                capture_s += step.prepare(batch_lengths)
    except KeyboardInterrupt:
        for run in active:
            run.session.interrupted()
        raise
    finally:
        reporter.close()
    return results


def _checkpoint(
    run: _Run, k: int, epoch: int, updates: int, model: PackedModel, optimizer: PackedMomentum, lr: float
) -> dict:
    """Run ``k``'s checkpoint in loop.py's payload format (``lr``: the rate of its last update)."""
    state = model.single_state_dict(k)
    parameters = {name: state[name] for name in model.layout.names}
    return {
        "epoch": epoch,
        "updates": updates,
        "model": state,
        "optimizer": optimizer_state_dict(run.config, model.layout, parameters, optimizer.buffer[k], lr),
        "rng_state": torch.get_rng_state(),
        "history": run.session.history,
    }


def _finish_runs(
    runs: list[_Run], model: PackedModel, timing: dict[str, Any], shape: dict[str, int], splits,
    objective=CLASSIFICATION,
) -> list[RunResult]:
    """Finish ``runs``, whose parameters are the rows of ``model`` in the same order: test
    accuracy of the finished ones in one vectorized pass, then each session's end."""
    finished = [k for k, run in enumerate(runs) if run.session.status == FINISHED]
    test_scores: dict[int, tuple[float, float]] = {}
    if finished and splits.test is not None:
        losses, accs = evaluate_pack(model.select(finished), splits.test, objective=objective)
        test_scores = {k: (loss, acc) for k, loss, acc in zip(finished, losses, accs)}
    return [
        run.session.finish(**shape, timing=timing, test=test_scores.get(k), weights=model.single_state_dict(k))
        for k, run in enumerate(runs)
    ]


def _median_row(rows) -> dict[str, float]:
    """One row for the pack's progress line: the median of each metric over the active runs."""
    rows = list(rows)
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}


class _PackTimer:
    """:class:`UpdateTimer` for packed steps: each step's time is also divided by the number of
    runs it updated, which gives the amortized time of one model-update.

    As in UpdateTimer, the first step is a warm-up and is left out (unless it is the only one).
    """

    def __init__(self, device: torch.device) -> None:
        self._timer = UpdateTimer(device, skip_first=0)
        self._pack_sizes: list[int] = []

    def start(self) -> None:
        self._timer.start()

    def stop(self, pack_size: int) -> None:
        self._timer.stop()
        self._pack_sizes.append(pack_size)

    def flush(self) -> None:
        self._timer.flush()

    def summary(self) -> dict[str, Any]:
        """``time_per_update_s`` (median, amortized) with quartiles, ``timed_updates`` (packed
        steps timed) and ``pack_step_time_s`` (median time of a whole packed step)."""
        step_seconds = self._timer.seconds
        sizes = self._pack_sizes
        if len(step_seconds) > 1:
            step_seconds, sizes = step_seconds[1:], sizes[1:]
        if not step_seconds:
            return {"time_per_update_s": None, "time_per_update_q25_s": None, "time_per_update_q75_s": None,
                    "timed_updates": 0, "pack_step_time_s": None}
        per_update = [seconds / size for seconds, size in zip(step_seconds, sizes)]
        if len(per_update) >= 2:
            q25, _, q75 = statistics.quantiles(per_update, n=4, method="inclusive")
        else:
            q25 = q75 = per_update[0]
        return {
            "time_per_update_s": statistics.median(per_update),
            "time_per_update_q25_s": q25,
            "time_per_update_q75_s": q75,
            "timed_updates": len(per_update),
            "pack_step_time_s": statistics.median(step_seconds),
        }
