"""Steps to a target for many configurations of one batch size, trained together:
:func:`train_to_target`.

Why its own loop rather than :func:`batchlab.run_sweep`: the sweep's trainers evaluate once per
epoch, and at B = 1 one epoch of mnist-5k is 3,600 updates, so S(B) would be known only to a
multiple of 3,600 at small B and to a factor of two or more at large B — useless on a log-log
steps-vs-batch figure. This loop drives the packed trainer's own step
(:class:`batchlab.training.packed.PackStep`, the step the epoch driver gives K runs) update by
update, so a configuration's trajectory here is the one ``batchlab train`` gives it:

* initialization by :func:`batchlab.training.loop.initial_model_and_optimizer` (seeded, on the CPU);
* data order ``epoch_permutation(n, e − 1, seed, shuffle)`` walked in slices of B;
* the packed step (:func:`batchlab.training.packed_step.make_step`: ``vmap`` of the gradient and the
  lecture's momentum for every run at once, a CUDA graph on a GPU) of the run's objective — the
  registry's cross-entropy, or a user task's own loss (``objective``), as the epoch driver's
  steps take it;

and evaluates the target's metric (:meth:`PackStep.evaluate`) after the
updates of :func:`~batchlab.experiments.advise.target.evaluation_schedule` instead of after every epoch.
A run leaves the pack once it reaches the target (its S is known) or its loss is no longer finite
(``diverged``); the others go on until the update budget. What each run did is returned as a
:class:`TraceOutcome`; storing and reusing them is :mod:`batchlab.experiments.advise.experiment`'s job.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from batchlab import data as datasets
from batchlab.experiments.advise.target import Target, evaluation_schedule, steps_to_target
from batchlab.config import RunConfig
from batchlab.errors import ConfigError
from batchlab.store.status import RunStatus
from batchlab.timing.estimate import PILOT_UPDATES, pilot_times
from batchlab.training.loop import initial_model_and_optimizer
from batchlab.training.objective import CLASSIFICATION, Objective
from batchlab.training.packed import PackStep, check_one_pack

REACHED = "reached"
NOT_REACHED = "not reached"
DIVERGED = RunStatus.DIVERGED  # a trace ends as a run does when its loss is not finite

# Builds a run's starting model and optimizer; the registry's by default. A user's own model
# factory plugs in here.
Initializer = Callable[[RunConfig, Any, torch.device], tuple[torch.nn.Module, torch.optim.Optimizer]]


@dataclass
class TraceOutcome:
    """One configuration trained towards the target.

    ``steps`` is S (None unless ``status`` is ``reached``); ``updates`` the updates trained;
    ``trace`` the (update, metric) pairs evaluated; ``snapshots`` single-model state dicts at
    the updates asked for (kept on the CPU).
    """

    config: RunConfig
    status: str
    steps: int | None
    updates: int
    budget: int
    trace: list[tuple[int, float]]
    seconds: float
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "steps": self.steps, "updates": self.updates, "budget": self.budget,
                "trace": [[u, v] for u, v in self.trace], "seconds": self.seconds}


def build_pack(configs: Sequence[RunConfig], splits: Any, device: torch.device, initializer: Initializer,
               objective: Objective) -> PackStep:
    """The packed step of ``configs`` from their seeded starting points."""
    models, optimizers = [], []
    for config in configs:
        model, optimizer = initializer(config, splits, device)
        models.append(model)
        optimizers.append(optimizer)
    return PackStep(configs, models, optimizers, device, splits.train, objective)


def pilot_seconds(configs: Sequence[RunConfig], splits: Any, target: Target, budget: int, *, ratio: float,
                  device: torch.device, initializer: Initializer = initial_model_and_optimizer,
                  objective: Objective = CLASSIFICATION, updates: int = PILOT_UPDATES,
                  clock: Callable[[], float] = time.perf_counter) -> float:
    """The seconds :func:`train_to_target` may take for ``configs`` at most (no run leaving early):
    the time of one packed update × ``budget`` plus the time of one evaluation × the evaluations
    of the schedule, both from the pilot of :func:`batchlab.timing.estimate.pilot_times`."""
    pack = build_pack(configs, splits, device, initializer, objective)
    evaluated = splits.val if target.split == "val" else splits.train
    n_train = len(splits.train)
    order = torch.stack([datasets.epoch_permutation(n_train, 0, c.seed, configs[0].shuffle)
                         for c in configs]).to(device)
    start, end = pack.slices[0]

    def run_updates(count: int) -> None:
        for _ in range(count):
            pack.update(order[:, start:end])

    times = pilot_times(run_updates, lambda: pack.evaluate(evaluated), updates=updates, clock=clock)
    return times.update_s * budget + times.evaluation_s * len(evaluation_schedule(budget, ratio))


def train_to_target(
    configs: Sequence[RunConfig],
    splits: Any,
    target: Target,
    budget: int,
    *,
    ratio: float,
    device: torch.device,
    initializer: Initializer = initial_model_and_optimizer,
    snapshot_at: Sequence[int] = (),
    stop_at_target: bool = True,
    objective: Objective = CLASSIFICATION,
) -> list[TraceOutcome]:
    """Train ``configs`` (one batch size, one architecture; any η, λ, seed) as one pack until each
    reaches ``target``, diverges, or has made ``budget`` updates; outcomes in the order given.

    ``snapshot_at``: updates after which each run's weights are copied (for measurements along
    the trajectory); with ``stop_at_target=False`` runs go on to ``budget`` after reaching it.
    ``objective``: the loss each update differentiates and the loss and metric evaluated (a
    user task's :attr:`batchlab.Task.objective`; cross-entropy and accuracy by default).
    """
    if not configs:
        return []
    shared = configs[0]
    check_one_pack(configs)
    evaluated = splits.val if target.split == "val" else splits.train
    if evaluated is None:
        raise ConfigError(
            f"target {target.key} needs a validation split; allowed: val_fraction > 0 or a train_* target")
    n_train = len(splits.train)
    schedule = set(evaluation_schedule(budget, ratio))
    snapshots = set(snapshot_at)

    pack = build_pack(configs, splits, device, initializer, objective)
    slices = pack.slices

    active = list(range(len(configs)))  # original index of each row of the pack
    traces: list[list[tuple[int, float]]] = [[] for _ in configs]
    status = [NOT_REACHED] * len(configs)
    steps: list[int | None] = [None] * len(configs)
    made = [0] * len(configs)  # updates each run made before it left the pack
    kept: list[dict[int, dict[str, torch.Tensor]]] = [{} for _ in configs]
    started = time.perf_counter()
    seconds = [0.0] * len(configs)

    def look(update: int) -> list[int]:
        """Evaluate and snapshot at ``update``; the rows that leave the pack now."""
        leaving = []
        if update in snapshots:
            for row, index in enumerate(active):
                kept[index][update] = {k: v.cpu() for k, v in pack.weights(row).items()}
        if update not in schedule:
            return leaving
        for row, (index, (loss, metric)) in enumerate(zip(active, pack.evaluate(evaluated))):
            value = loss if target.metric.endswith("_loss") else metric
            traces[index].append((update, float(value)))
            if not math.isfinite(loss):
                status[index] = DIVERGED
                leaving.append(row)
            elif steps[index] is None and target.reached(value):
                status[index], steps[index] = REACHED, update
                if stop_at_target:
                    leaving.append(row)
        return leaving

    def leave(rows_leaving: list[int], update: int) -> None:
        nonlocal active
        now = time.perf_counter() - started
        for row in rows_leaving:
            seconds[active[row]], made[active[row]] = now, update
        keep = [row for row in range(len(active)) if row not in rows_leaving]
        active = [active[row] for row in keep]
        if active:
            pack.keep(keep)

    update, epoch = 0, 0
    leave_now = look(0)
    if leave_now:
        leave(leave_now, 0)
    while active and update < budget:
        epoch += 1
        orders = torch.stack([datasets.epoch_permutation(n_train, epoch - 1, configs[i].seed, shared.shuffle)
                              for i in active]).to(device)
        for start, end in slices:
            if update >= budget or not active:
                break
            pack.update(orders[:, start:end])
            update += 1
            leave_now = look(update)
            if leave_now:
                keep = [row for row in range(len(active)) if row not in leave_now]
                leave(leave_now, update)
                orders = orders[keep] if keep else orders
    now = time.perf_counter() - started
    for index in active:
        seconds[index], made[index] = now, update
    # S by the one counting rule (steps_to_target), the same the pack used to let runs leave.
    return [TraceOutcome(config, status[i], steps_to_target(traces[i], target) if status[i] == REACHED else None,
                         made[i], budget, traces[i], seconds[i], kept[i])
            for i, config in enumerate(configs)]
