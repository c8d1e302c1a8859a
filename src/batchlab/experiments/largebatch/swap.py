"""SWAP: stochastic weight averaging in parallel (Gupta, Serrano & DeCoste, ICLR 2020).

"Stochastic Weight Averaging in Parallel: Large-Batch Training That Generalizes Well",
Algorithm 1, in three phases:

1. **Large batch to a target.** One model trains with a large batch B_L until its training
   accuracy reaches a target (here the run's ``target_train_acc`` end rule, with an epoch cap).
2. **Small-batch refinement.** W copies start from phase 1's weights (``init_from`` = the
   phase-1 run id) and each trains with a small batch B_S and *its own data order* (its own
   seed) for a few epochs. In the paper the W copies run on W workers at once; here they are
   W ordinary runs of one :func:`batchlab.training.packed.train_pack` call (K = W).
3. **Average, then recompute batch norm.** The W final weight vectors are averaged,
   x̄ = (1/W) Σ_w x_w, for every parameter and floating-point buffer; the batch-norm statistics
   of x̄ are then *recomputed* from the training data, because the average of W sets of running
   statistics is not the statistics of the averaged network. The recomputation is
   :func:`torch.optim.swa_utils.update_bn`: running mean and variance reset, then a cumulative
   (equal-weight) average of the per-batch statistics over one pass of the training set in
   batches of B_S.

Every phase is stored: phases 1 and 2 are ordinary runs in the run store (a killed SWAP resumes
them like any run), and phase 3 writes a ``swap`` record (key :func:`swap_key`) with the averaged
network's training and test loss and accuracy, plus the averaged weights beside the store under
the record's id (:func:`swap_weights_id`). Phase 3 is deterministic given phase 2's weights, so
asking for it again reads the record back instead of recomputing (or recomputes the same numbers
if the record is missing).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from batchlab.errors import ConfigError
from batchlab.training.restore import RestoredRun, restore_run

if TYPE_CHECKING:
    from batchlab.config import RunConfig
    from batchlab.data import Splits
    from batchlab.store import RunStore
    from batchlab.task import Task
    from batchlab.training.result import RunResult

RECORD_KIND = "swap"


def average_state_dicts(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """x̄ = (1/W) Σ_w x_w for every floating-point entry of W state dicts with the same keys.

    Integer entries (batch norm's ``num_batches_tracked``) are not averaged: they are taken from
    the first state (they are reset by the batch-norm recomputation anyway). Sums run in float64
    so the average of W equal tensors is that tensor exactly.
    """
    if not states:
        raise ConfigError("no weights to average; allowed: one or more state dicts")
    keys = list(states[0])
    for state in states[1:]:
        if list(state) != keys:
            raise ConfigError("the weights to average have different entries; allowed: copies of one architecture")
    averaged: dict[str, torch.Tensor] = {}
    for key in keys:
        first = states[0][key]
        if not torch.is_floating_point(first):
            averaged[key] = first.clone()
            continue
        for state in states[1:]:
            if state[key].shape != first.shape:
                raise ConfigError(f"entry {key} has shapes {tuple(first.shape)} and {tuple(state[key].shape)}; "
                                  "allowed: copies of one architecture")
        total = torch.zeros(first.shape, dtype=torch.float64, device=first.device)
        for state in states:
            total += state[key].to(device=first.device, dtype=torch.float64)
        averaged[key] = (total / len(states)).to(first.dtype)
    return averaged


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def training_batches(x: torch.Tensor, batch_size: int) -> Iterable[torch.Tensor]:
    """Consecutive batches of ``batch_size`` inputs (the last one may be smaller)."""
    return (x[start:start + batch_size] for start in range(0, len(x), batch_size))


@torch.no_grad()
def recompute_batch_norm(model: nn.Module, x: torch.Tensor, batch_size: int) -> None:
    """Reset every batch-norm layer's running statistics and recompute them over ``x`` in batches
    of ``batch_size`` with :func:`torch.optim.swa_utils.update_bn` (an equal-weight average over
    the batches); the model's train/eval mode is restored afterwards."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch-norm batch size {batch_size!r} is invalid; allowed: an integer ≥ 1")
    if not has_batch_norm(model):
        return
    torch.optim.swa_utils.update_bn(training_batches(x, batch_size), model)


def swap_key(phase2_run_ids: Sequence[str], bn_batch_size: int) -> str:
    """The ``swap`` record's key: the phase-2 runs (sorted, so their order does not matter) and
    the batch size of the batch-norm recomputation."""
    return f"{','.join(sorted(phase2_run_ids))}|bn_batch={bn_batch_size}"


def swap_weights_id(key: str) -> str:
    """Name of the averaged weights beside the store: ``swap-`` and 16 hex digits of the key."""
    return "swap-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass
class SwapAverage:
    """Phase 3's outcome: the averaged network's numbers, where its weights are, and whether
    it was read back from the store."""

    key: str
    weights_id: str
    phase2_run_ids: tuple[str, ...]
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    seconds: float
    from_store: bool

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("key", "weights_id", "phase2_run_ids", "train_loss", "train_acc",
                                              "test_loss", "test_acc", "seconds")}


def average_runs(
    store: RunStore, phase2_run_ids: Sequence[str], *, bn_batch_size: int, device: str | torch.device = "cpu",
    reuse: bool = True, tasks: Iterable[Task] = (),
) -> tuple[SwapAverage, RestoredRun]:
    """Phase 3: average the stored final weights of the phase-2 runs, recompute batch norm on
    their training split, evaluate, and store the record and the weights (module docstring).

    Returns the outcome and the averaged network as a :class:`RestoredRun` (id: the weights id;
    config and data: the first phase-2 run's) so it can be measured like any stored minimum.
    ``tasks``: the user's task the runs trained (:func:`batchlab.training.restore.restore_run`).
    """
    from batchlab.training.loop import evaluate

    if not phase2_run_ids:
        raise ConfigError("SWAP needs at least one phase-2 run to average; allowed: W ≥ 1")
    key = swap_key(phase2_run_ids, bn_batch_size)
    weights_id = swap_weights_id(key)
    first = restore_run(store, phase2_run_ids[0], device=device, tasks=tasks)
    stored = store.get_record(RECORD_KIND, key) if reuse else None
    if stored is not None and "result" in stored and store.has_weights(weights_id):
        first.model.load_state_dict(store.load_weights(weights_id))
        first.model.eval()
        average = SwapAverage(**{**stored["result"], "phase2_run_ids": tuple(stored["result"]["phase2_run_ids"]),
                                 "from_store": True})
        return average, RestoredRun(weights_id, first.config, first.model, first.splits, first.record,
                                    first.objective, first.task)

    started = time.perf_counter()
    states = [first.model.state_dict()] + [restore_run(store, run_id, device=device, tasks=tasks).model.state_dict()
                                           for run_id in phase2_run_ids[1:]]
    model = first.model
    model.load_state_dict(average_state_dicts(states))
    recompute_batch_norm(model, first.splits.train.x, bn_batch_size)
    model.eval()
    train_loss, train_acc = evaluate(model, first.splits.train, objective=first.objective)
    test_loss, test_acc = evaluate(model, first.splits.test, objective=first.objective)
    average = SwapAverage(key, weights_id, tuple(phase2_run_ids), train_loss, train_acc, test_loss, test_acc,
                          time.perf_counter() - started, from_store=False)
    # Weights first, record last: a record always has its weights beside it.
    store.save_weights(weights_id, {k: v.detach().cpu() for k, v in model.state_dict().items()})
    store.put_record(RECORD_KIND, key, {"result": average.to_dict(), "config": first.config.to_dict(),
                                        "bn_batch_size": bn_batch_size})
    return average, RestoredRun(weights_id, first.config, model, first.splits, first.record, first.objective,
                                first.task)



def phase2_configs(phase1: RunConfig, phase1_run_id: str, *, batch_size: int, epochs: int,
                   workers: int) -> list[RunConfig]:
    """Phase 2's W runs: phase 1's configuration with the small batch at the unscaled rate (no
    scaling, no warm-up: the small batch's own setting), ``epochs`` epochs, no accuracy target,
    weights from ``phase1_run_id``, and worker w's own data order from its own seed
    ``phase1.seed · W + w`` (distinct for every worker of every SWAP seed)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"SWAP workers {workers!r} is invalid; allowed: an integer ≥ 1")
    return [phase1.replace(batch_size=batch_size, epochs=epochs, target_train_acc=None, init_from=phase1_run_id,
                           lr_scaling="none", base_batch=None, warmup_epochs=0.0, seed=phase1.seed * workers + w)
            for w in range(workers)]


@dataclass
class SwapOutcome:
    """The three phases of one SWAP: phase 1's run, phase 2's runs, and phase 3 (None when a
    phase-1 or phase-2 run did not finish, so there is nothing sound to average)."""

    phase1: RunResult
    phase2: list[RunResult]
    average: SwapAverage | None
    averaged: RestoredRun | None

    @property
    def seconds(self) -> float:
        """Training and averaging time, one phase-2 worker after another (as trained here)."""
        return (_train_time(self.phase1) + sum(_train_time(r) for r in self.phase2)
                + (self.average.seconds if self.average else 0.0))

    @property
    def parallel_seconds(self) -> float:
        """The time with the W phase-2 copies on W workers at once, as in the paper."""
        return (_train_time(self.phase1) + max((_train_time(r) for r in self.phase2), default=0.0)
                + (self.average.seconds if self.average else 0.0))


def _train_time(result: RunResult) -> float:
    return float(result.summary.get("train_time_s") or 0.0)


def run_swap(
    phase1: RunConfig,
    store: RunStore,
    *,
    small_batch: int,
    epochs: int,
    workers: int,
    splits: Splits | None = None,
    progress: bool | None = False,
    task: Task | None = None,
) -> SwapOutcome:
    """All three phases (module docstring); each phase already in ``store`` is reused.

    ``phase1`` is the large-batch run with its ``target_train_acc``; phase 2 trains
    :func:`phase2_configs` with :func:`batchlab.training.packed.train_pack`. ``task``: a user's
    model and data in place of the configuration's registry ones.
    """
    from batchlab.runtime.device import resolve_device
    from batchlab.training import FINISHED, train
    from batchlab.training.packed import train_pack

    first = train(phase1, store=store, splits=splits, progress=progress, task=task)
    if first.status != FINISHED:
        return SwapOutcome(first, [], None, None)
    configs = phase2_configs(phase1, first.run_id, batch_size=small_batch, epochs=epochs, workers=workers)
    refined = list(train_pack(configs, store=store, splits=splits, progress=progress, task=task))
    if any(r.status != FINISHED for r in refined):
        return SwapOutcome(first, refined, None, None)
    device = resolve_device(phase1.device)
    average, averaged = average_runs(store, [r.run_id for r in refined], bn_batch_size=small_batch, device=device,
                                     tasks=() if task is None else (task,))
    return SwapOutcome(first, refined, average, averaged)
