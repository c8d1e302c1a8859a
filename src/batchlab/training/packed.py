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
* the same run id (``run_id(config, device.type)``), statuses, summary keys and final weights;
  with ``keep_state``, each finished run's final training state in loop.py's format (its row's
  checkpoint after its last epoch), so a ``continue_from`` run trains it on as it would a run
  trained alone.

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
free memory allows); elsewhere a pack decides on its first updates whether to stay packed or go on
one run at a time (:mod:`batchlab.training.packed_auto`, the rule in
:mod:`batchlab.training.packed_plan`), and :attr:`PackResults.plan` holds what it chose and why.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from batchlab import data as datasets
from batchlab.config import RunConfig, resolve_batch_size
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
    pack_label,
    plan_packs,
)
from batchlab.training.packed_auto import AutoPackStep
from batchlab.training.packed_state import PackedMomentum, momentum_rows, optimizer_state_dict, put_momentum_row
from batchlab.training.packed_step import PackedModel, evaluate_pack, make_step
from batchlab.training.driver import EpochWork, checkpoint_payload, drive, restore
from batchlab.training.progress import EpochProgress
from batchlab.training.result import RunResult
from batchlab.training.session import RunSession, open_store
from batchlab.training.update_timer import UpdateTimer, update_time_summary

if TYPE_CHECKING:
    from batchlab.store import RunStore
    from batchlab.task import Task

__all__ = [
    "AUTO", "PACKED", "SEQUENTIAL", "STRATEGIES", "Pack", "PackResults", "can_pack", "check_one_pack", "pack_key",
    "plan_packs",
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
    keep_state: bool = False,
) -> PackResults:
    """Train ``configs``, packing those that can share a step; results in the order given.

    Args:
        configs: the runs. Equal configs (same run id) are trained once.
        store: a :class:`batchlab.store.RunStore` or a path to one (see :func:`batchlab.train`).
        splits: data already prepared on the right device, used for every run.
        progress: a progress bar (True), plain log lines (False) or decide by terminal (None).
        keep_weights: save each run's final weights beside the store.
        force: train again runs the store already holds as finished.
        keep_state: also keep each finished run's final training state (see :func:`batchlab.train`).
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
    sessions = [_session(config, run_store, splits, force, keep_weights, task, keep_state) for config in configs]
    stored = {session.run_id: session.stored_result() for session in sessions}
    to_train: dict[str, RunConfig] = {}
    for session in sessions:
        if stored[session.run_id] is None:
            to_train.setdefault(session.run_id, session.config)
    plan = plan_packs(list(to_train.values()), splits=splits, strategy=strategy, task=task)
    choices: list[Pack] = []
    results = {result.run_id: result for result in train_planned(
        plan, store=run_store, splits=splits, progress=progress, keep_weights=keep_weights, force=force, task=task,
        keep_state=keep_state, on_choice=choices.append)}
    results.update({identity: result for identity, result in stored.items() if result is not None})
    return PackResults([results[session.run_id] for session in sessions], decided_plan(plan, choices))


def decided_plan(plan: Sequence[Pack], choices: Sequence[Pack]) -> list[Pack]:
    """``plan`` with each ``auto`` pack replaced by the choices its runs made while training (one
    per group of runs trained together); an ``auto`` pack that ended before deciding stays."""
    decided: list[Pack] = []
    for pack in plan:
        made = [choice for choice in choices if pack.strategy == AUTO and set(choice.configs) <= set(pack.configs)]
        decided += made or [pack]
    return decided


def train_planned(
    plan: Sequence[Pack],
    *,
    store: "RunStore | None",
    splits: "datasets.Splits | None" = None,
    progress: bool | None = None,
    keep_weights: bool = True,
    force: bool = False,
    task: "Task | None" = None,
    keep_state: bool = False,
    on_choice: Callable[[Pack], None] | None = None,
) -> Iterator[RunResult]:
    """Train packs already planned (by :func:`plan_packs` or a sweep's plan), each as its
    strategy says, printing the reason to stderr; yields each result as its run ends (a packed
    run's once its pack ends). A pack planned ``auto`` decides on its first updates
    (:mod:`batchlab.training.packed_auto`); each decision is printed and given to ``on_choice``."""
    for pack in plan:
        print(f"batchlab pack: {pack.reason}", file=sys.stderr, flush=True)
        if pack.strategy == SEQUENTIAL:
            for config in pack.configs:
                yield train(config, store=store, force=force, progress=progress, splits=splits,
                            keep_weights=keep_weights, keep_state=keep_state, task=task)
        else:
            def chosen(choice: Pack) -> None:
                print(f"batchlab pack: {choice.reason}", file=sys.stderr, flush=True)
                if on_choice is not None:
                    on_choice(choice)

            yield from _train_packed(pack.configs, store, splits, progress, keep_weights, force, task, keep_state,
                                     on_choice=chosen if pack.strategy == AUTO else None)


def _session(config: RunConfig, run_store: "RunStore | None", splits, force: bool, keep_weights: bool,
             task: "Task | None" = None, keep_state: bool = False) -> RunSession:
    return new_session(config, run_store, resolve_device(config.device), splits, task, force=force,
                       keep_weights=keep_weights, keep_state=keep_state)


@dataclass
class _Run:
    """One run inside a pack: its session (where it starts, what it has produced so far) and,
    until the pack is stacked, the single model and optimizer it starts from."""

    session: RunSession
    model: torch.nn.Module | None
    optimizer: torch.optim.Optimizer | None

    @property
    def config(self) -> RunConfig:
        return self.session.config


def _train_packed(
    configs: Sequence[RunConfig], run_store: "RunStore | None", splits, progress: bool | None, keep_weights: bool,
    force: bool,
    task: "Task | None" = None,
    keep_state: bool = False,
    *,
    on_choice: Callable[[Pack], None] | None = None,
) -> list[RunResult]:
    """Train ``configs`` stacked; with ``on_choice``, as an ``auto`` pack that decides on its
    first updates whether to stay packed, and tells ``on_choice`` what it chose."""
    device = resolve_device(configs[0].device)
    if task is not None:
        configs = [task.configure(config) for config in configs]
        splits = task.splits(device)
    sessions = [_session(config, run_store, splits, force, keep_weights, task, keep_state) for config in configs]
    if splits is None:
        splits = load_splits(configs[0], device)
    # A stacked step updates K models on K·B examples; the thread rule counts it that way.
    batch_size = resolve_batch_size(configs[0].batch_size, len(splits.train))
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
        restore(model, optimizer, session.checkpoint)
        runs.append(_Run(session, model, optimizer))
    # Runs resumed at different points train as separate packs (see the module docstring).
    groups: dict[tuple[int, int], list[_Run]] = {}
    for run in runs:
        groups.setdefault((run.session.start_epoch, run.session.updates), []).append(run)
    for start in sorted(groups):
        results += _train_together(groups[start], device, splits, progress, threads, task, on_choice=on_choice)
    return results


def _train_together(
    runs: list[_Run], device: torch.device, splits, progress: bool | None, threads: int, task: "Task | None" = None,
    *, on_choice: Callable[[Pack], None] | None = None,
) -> list[RunResult]:
    """Train ``runs`` (all resuming at the same epoch) as one pack with the epoch driver (as an
    ``auto`` pack, :class:`AutoPackStep`, when ``on_choice`` is given)."""
    objective = task.objective if task is not None else CLASSIFICATION
    shared = runs[0].config  # every field of the pack key is the same for all runs
    configs = [run.config for run in runs]

    def stack(configs, models, optimizers, start_update: int) -> PackStep:
        return PackStep(configs, models, optimizers, device, splits.train, objective, threads,
                        start_update=start_update)

    models, optimizers = [run.model for run in runs], [run.optimizer for run in runs]
    for run in runs:
        run.model = run.optimizer = None  # the step holds the only copy from here on
    batch_size = resolve_batch_size(shared.batch_size, len(splits.train))
    if on_choice is None:
        step: PackStep | AutoPackStep = stack(configs, models, optimizers, runs[0].session.updates)
    else:
        step = AutoPackStep(configs, models, optimizers, stack, train=splits.train, objective=objective,
                            single_threads=threads_for(batch_size, device), pack_threads=threads,
                            label=pack_label(shared, len(runs)))
    del models, optimizers
    reporter = EpochProgress(shared.epochs, enabled=progress, label=f"{shared.model} B={batch_size} ×{len(runs)}")
    shape = {"batch_size": batch_size, "n_train": len(splits.train),
             "updates_per_epoch": len(datasets.batch_index_slices(len(splits.train), batch_size,
                                                                  drop_last=shared.drop_last))}
    results = drive(step, [run.session for run in runs], splits, objective, reporter, shape=shape)
    if isinstance(step, AutoPackStep) and step.choice is not None and on_choice is not None:
        on_choice(step.choice)
    return results


def check_one_pack(configs: Sequence[RunConfig]) -> None:
    """ConfigError unless ``configs`` can be stacked in one :class:`PackStep`: the same batch size,
    model, hidden widths, shuffle and drop_last (each run keeps its own η, λ and seed)."""
    shared = configs[0]
    for config in configs[1:]:
        if (config.batch_size, config.model, config.hidden, config.shuffle, config.drop_last) != (
                shared.batch_size, shared.model, shared.hidden, shared.shuffle, shared.drop_last):
            raise ConfigError("configurations trained together must share batch size, model, shuffle and drop_last")


class PackStep:
    """K runs' updates as one stacked step, for the epoch driver (:mod:`batchlab.training.driver`).

    Each run walks its own permutation, so an epoch's K index vectors form one (K, B) gather;
    each run's learning rate is set per row before an update only when some run's schedule
    changes. Runs that end leave the pack (:meth:`keep`), which is then rebuilt from the
    remaining rows (and its CUDA graphs captured again, outside the timing). The advisor's trace
    (:mod:`batchlab.experiments.advise.trace`) drives the same step update by update
    (:meth:`update`), on its own evaluation schedule.
    """

    def __init__(self, configs: Sequence[RunConfig], models: Sequence[torch.nn.Module],
                 optimizers: Sequence[torch.optim.Optimizer], device: torch.device, train, objective,
                 threads: int = 0, start_update: int = 0) -> None:
        """Stack ``models`` and their ``optimizers``' momentum buffers (one of each per config) into one pack;
        ``start_update``: the update the runs resume at (their learning rates start there)."""
        self.device, self.train, self.objective, self.threads = device, train, objective, threads
        self.configs = list(configs)
        shared = self.configs[0]
        n_train = len(train)
        self.batch_size = resolve_batch_size(shared.batch_size, n_train)
        self.slices = datasets.batch_index_slices(n_train, self.batch_size, drop_last=shared.drop_last)
        self.batch_lengths = sorted({end - start for start, end in self.slices})
        self.model = PackedModel.from_models(list(models))
        layout = self.model.layout
        self.optimizer = PackedMomentum(self.configs, momentum_rows(optimizers, models, layout), layout.columns)
        self.schedules = [run_shape(config, n_train).schedule for config in self.configs]
        self.scheduled = not all(schedule.is_constant for schedule in self.schedules)
        self.optimizer.set_lr([schedule.lr_at(start_update) for schedule in self.schedules])
        self.pack_size = len(self.configs)
        self.timer = _PackTimer(device)
        self.capture_s = 0.0
        self._orders: tuple[int, torch.Tensor] | None = None
        self._build_step()

    def _build_step(self) -> None:
        self.step = make_step(self.model, self.optimizer, self.train, loss=self.objective.loss)
        # CUDA graphs are captured here, outside the timing.
        self.capture_s += self.step.prepare(self.batch_lengths)

    def update(self, index: torch.Tensor) -> None:
        """One update of every run: row k on the examples ``index[k]`` (a (K, b) index tensor)."""
        self.step(index)

    def orders(self, epoch: int) -> torch.Tensor:
        """The (K, n) order in which each run visits the training examples in epoch ``epoch``
        (1-based): run k's ``epoch_permutation(n, epoch − 1, seed_k, shuffle)``, cut into batches by
        :attr:`slices`. Kept for the epoch last asked for, until the pack's rows change: an epoch
        trained in parts (the turns of :mod:`batchlab.training.packed_auto`) draws them once, not
        once a part (16 permutations of 4,000 examples took ~4 ms on a 2-core CPU, about a packed
        step of 16 runs of 784-64-10 at B = 16)."""
        if self._orders is None or self._orders[0] != epoch:
            shuffle = self.configs[0].shuffle
            orders = torch.stack([datasets.epoch_permutation(len(self.train), epoch - 1, config.seed, shuffle)
                                  for config in self.configs]).to(self.device)
            self._orders = (epoch, orders)
        return self._orders[1]

    def train_epoch(self, epoch: int, updates: int, limit: int | None, *, first_batch: int = 0) -> EpochWork:
        """The epoch's batches from ``first_batch`` on, at most ``limit`` of them, the first
        being update ``updates`` (:mod:`batchlab.training.packed_auto` trains an epoch in parts)."""
        step, optimizer, timer = self.step, self.optimizer, self.timer
        slices = self.slices[first_batch:]
        slices = slices if limit is None else slices[:max(0, limit)]
        orders = self.orders(epoch)
        step.loss_sum.zero_()
        first = None
        size = len(self.configs)
        synchronize(self.device)
        epoch_start = time.perf_counter()
        with intra_op_threads(self.threads):
            for update, (start, end) in enumerate(slices, start=updates):
                if self.scheduled:
                    optimizer.set_lr([schedule.lr_at(update) for schedule in self.schedules])
                timer.start()
                step(orders[:, start:end])
                timer.stop(size)
                if update == 0:
                    first = step.loss_sum.clone()  # each run's loss of its first update
        synchronize(self.device)
        seconds = (time.perf_counter() - epoch_start) / size  # amortized over the pack
        timer.flush()
        return EpochWork(len(slices), seconds, step.loss_sum.tolist(), None if first is None else first.tolist())

    def evaluate(self, split, rows: Sequence[int] | None = None) -> list[tuple[float, float]]:
        model = self.model if rows is None else self.model.select(list(rows))
        losses, metrics = evaluate_pack(model, split, objective=self.objective)
        return list(zip(losses, metrics))

    def hand_over(self, row: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Write run ``row``'s weights, buffers and momentum into its own ``model`` and
        ``optimizer``, in place: what loading its :meth:`checkpoint` would leave there, without
        first building the checkpoint's copies and an optimizer to format them (a pack that the
        probe sends one at a time hands every run back this way)."""
        self.model.write_run(row, model)
        if self.optimizer.buffer is not None and self.configs[row].momentum != 0.0:
            layout, params = self.model.layout, dict(model.named_parameters())
            put_momentum_row(optimizer, [params[name] for name in layout.names], layout, self.optimizer.buffer[row])

    def checkpoint(self, row: int, epoch: int, updates: int) -> dict[str, Any]:
        """Run ``row``'s checkpoint in loop.py's format (its optimizer state at the rate of its
        last update)."""
        state = self.model.single_state_dict(row)
        parameters = {name: state[name] for name in self.model.layout.names}
        lr = self.schedules[row].lr_at(max(updates - 1, 0))
        optimizer_state = optimizer_state_dict(self.configs[row], self.model.layout, parameters,
                                               self.optimizer.buffer[row], lr)
        return checkpoint_payload(epoch, updates, state, optimizer_state)

    def weights(self, row: int) -> dict[str, torch.Tensor]:
        return self.model.single_state_dict(row)

    def keep(self, rows: list[int]) -> None:
        self.configs = [self.configs[k] for k in rows]
        self.schedules = [self.schedules[k] for k in rows]
        self.model, self.optimizer = self.model.select(rows), self.optimizer.select(rows)
        self._orders = None
        self._build_step()

    def agree(self, ending: list[bool]) -> list[bool]:
        return ending

    def timing(self) -> dict[str, Any]:
        return self.timer.summary() | {"pack_size": self.pack_size, "pack_capture_time_s": self.capture_s}

    def release(self) -> None:
        """Drop the stacked state (its runs went on elsewhere); only :meth:`timing` is left."""
        self.model = self.optimizer = self.step = None  # type: ignore[assignment]


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

    def per_update_seconds(self) -> list[float]:
        """Every step's time divided by the runs it updated (the first step included)."""
        return [seconds / size for seconds, size in zip(self._timer.seconds, self._pack_sizes)]

    def summary(self) -> dict[str, Any]:
        """``time_per_update_s`` (median, amortized) with quartiles, ``timed_updates`` (packed
        steps timed) and ``pack_step_time_s`` (median time of a whole packed step)."""
        step_seconds = self._timer.seconds
        sizes = self._pack_sizes
        if len(step_seconds) > 1:
            step_seconds, sizes = step_seconds[1:], sizes[1:]
        per_update = [seconds / size for seconds, size in zip(step_seconds, sizes)]
        return {**update_time_summary(per_update),
                "pack_step_time_s": statistics.median(step_seconds) if step_seconds else None}
