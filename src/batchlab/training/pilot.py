"""How long the runs an experiment still has to train will take: a pilot of each batch size's
updates, trained as :func:`batchlab.training.train` trains them.

For ``gap`` and ``largebatch`` on a user's model (whose time per update nobody has told the user),
:func:`training_seconds` sums, over the configurations the store does not hold as ended, their
updates × the time of one update at their batch size, plus their epochs × the time of one epoch's
evaluation (the training split, and the validation split when there is one, as the epoch driver
evaluates them). The times come from :func:`batchlab.timing.estimate.pilot_times` on the run's
own step (:class:`~batchlab.training.loop.SingleStep`: the run's seeded model, optimizer,
schedule, data order and intra-op threads), one pilot per batch size, built from the first
pending configuration of that size. Every epoch up to the cap is counted, so the sum is what the
runs take at most; runs that stop early take less.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from batchlab.config import RunConfig
from batchlab.runtime.threads import threads_for
from batchlab.timing.estimate import PILOT_UPDATES, PilotTimes, estimate_line, pilot_times
from batchlab.training.loop import SingleStep, initial_model_and_optimizer, new_session, task_config_and_splits
from batchlab.training.methods import run_shape
from batchlab.training.objective import CLASSIFICATION

if TYPE_CHECKING:
    from batchlab.store import RunStore
    from batchlab.task import Task


def is_stored(config: RunConfig, store: "RunStore | None", device: torch.device, splits: Any,
              task: "Task | None" = None) -> bool:
    """Whether ``train(config, store=store, splits=splits, task=task)`` would return a stored
    result without training (the run ended in the store)."""
    if store is None:
        return False
    config, run_splits = task_config_and_splits(config, None if task is not None else splits, task, device)
    session = new_session(config, store, device, run_splits, task, force=False, keep_weights=True)
    return session.stored_result() is not None


def run_pilot(config: RunConfig, splits: Any, device: torch.device, task: "Task | None" = None, *,
              updates: int = PILOT_UPDATES, clock: Callable[[], float] = time.perf_counter) -> PilotTimes:
    """The pilot of one run of ``config``: its first updates and one epoch's evaluation, timed
    (module docstring). Nothing is stored, and the random number generators are left as they
    were (building the model seeds them)."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return _pilot(config, splits, device, task, updates, clock)


def _pilot(config: RunConfig, splits: Any, device: torch.device, task: "Task | None", updates: int,
           clock: Callable[[], float]) -> PilotTimes:
    # The pilot times updates, not their starting point: weights another run left are not read.
    config = config.replace(init_from=None)
    config, splits = task_config_and_splits(config, None if task is not None else splits, task, device)
    objective = task.objective if task is not None else CLASSIFICATION
    shape = run_shape(config, len(splits.train))
    model, optimizer = initial_model_and_optimizer(config, splits, device, task, shape=shape)
    step = SingleStep(model, optimizer, splits.train, objective, shape, config, threads_for(shape.batch_size, device))
    done = 0

    def run_updates(count: int) -> None:
        # An epoch shorter than the pilot is walked again from its start, and a run shorter than
        # the pilot again from its first update (the schedule has no rate beyond its last one).
        nonlocal done
        while count > 0:
            chunk = min(count, shape.updates_per_epoch, shape.schedule.total_updates)
            if done + chunk > shape.schedule.total_updates:
                done = 0
            step.train_epoch(1, done, chunk)
            done, count = done + chunk, count - chunk

    def evaluate_epoch() -> None:
        step.evaluate(splits.train)
        if splits.val is not None:
            step.evaluate(splits.val)

    return pilot_times(run_updates, evaluate_epoch, updates=updates, clock=clock)


def run_updates_and_epochs(config: RunConfig, n_train: int) -> tuple[int, int]:
    """The updates and epochs ``config`` trains at most on ``n_train`` examples."""
    per_epoch = run_shape(config, n_train).updates_per_epoch
    updates = per_epoch * config.epochs
    if config.max_updates is not None:
        updates = min(updates, config.max_updates)
    return updates, config.epochs


def training_seconds(configs: Sequence[RunConfig], splits: Any, device: torch.device, *,
                     store: "RunStore | None" = None, task: "Task | None" = None,
                     clock: Callable[[], float] | None = None) -> tuple[float, int] | None:
    """The seconds ``configs`` take at most to train, counting only those not ended in ``store``
    (module docstring), and how many those are; None when every one is stored. ``clock``: the
    pilot's (default ``time.perf_counter``; tests inject one)."""
    clock = clock or time.perf_counter
    data = task.splits(device) if task is not None else splits
    pending = [c for c in configs if not is_stored(c, store, device, splits, task)]
    if not pending:
        return None
    n_train = len(data.train)
    pilots: dict[int, PilotTimes] = {}
    total = 0.0
    for config in pending:
        batch_size = run_shape(config, n_train).batch_size
        if batch_size not in pilots:
            pilots[batch_size] = run_pilot(config, splits, device, task, clock=clock)
        times = pilots[batch_size]
        updates, epochs = run_updates_and_epochs(config, n_train)
        total += times.update_s * updates + times.evaluation_s * epochs
    return total, len(pending)


def training_estimate(configs: Sequence[RunConfig], splits: Any, device: torch.device, *,
                      store: "RunStore | None", task: "Task | None", scope: Callable[[int], str],
                      clock: Callable[[], float] | None = None) -> str | None:
    """The line an experiment prints before training ``configs`` (:func:`training_seconds`, then
    :func:`batchlab.timing.estimate.estimate_line`; ``scope(pending)`` says what it covers), or
    None when it is short or nothing is left to train."""
    found = training_seconds(configs, splits, device, store=store, task=task, clock=clock)
    return None if found is None else estimate_line(found[0], scope(found[1]))
