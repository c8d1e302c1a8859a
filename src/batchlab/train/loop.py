"""One training run, top to bottom: ``train(RunConfig) -> RunResult``.

The loop is the lecture's mini-batch training made literal:

* the whole dataset sits on the training device; each epoch draws a permutation from a generator
  seeded by (seed, epoch) and walks it in slices of B indices — one epoch is every batch once, and
  with ``shuffle="epoch"`` which examples share a batch changes every epoch;
* every slice is one update (the last partial batch too, unless ``drop_last``);
* after each epoch the model is evaluated on the full training and validation splits (so "training
  accuracy" means the accuracy of the parameters at the end of the epoch, as in Keskar et al.),
  metrics are logged to the store and a checkpoint is written, so a killed run resumes at its
  last finished epoch;
* a non-finite loss is a result: the run ends with status ``diverged`` and the epoch it happened.

Same config and seed on the CPU give identical numbers: the model is initialized on the CPU from
``torch.manual_seed(seed)``, the data order depends only on (seed, epoch), and no step draws other
random numbers (models with dropout draw from the global RNG, which is seeded too).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from batchlab import data as datasets
from batchlab.config import RunConfig, run_id
from batchlab.device import resolve_device, synchronize
from batchlab.environment import describe_environment
from batchlab.models import build_model
from batchlab.optim import build_optimizer
from batchlab.train.progress import EpochProgress
from batchlab.train.result import DIVERGED, ENDED_STATUSES, FINISHED, RunResult
from batchlab.train.update_timer import UpdateTimer

# Examples per forward pass when evaluating; large enough to be fast, small enough for any GPU.
EVAL_CHUNK = 2048
# Relative improvement of the training loss that counts as "still improving" for stop_patience.
IMPROVEMENT_TOLERANCE = 1e-4


def train(
    config: RunConfig,
    *,
    store: "Any | str | Path | None" = None,
    force: bool = False,
    progress: bool | None = None,
    splits: "datasets.Splits | None" = None,
    keep_weights: bool = True,
) -> RunResult:
    """Train one configuration; with a ``store``, record it there and reuse a finished result.

    Args:
        config: what to train.
        store: a :class:`batchlab.store.RunStore` or a path to one. A run already finished in it
            is returned as stored (``from_store=True``) unless ``force``; an unfinished one resumes
            from its last epoch checkpoint.
        force: train again even if the store holds a finished result (the old one is replaced).
        progress: a progress bar (True), plain log lines (False) or decide by terminal (None).
        splits: data already prepared on the right device (used by sweeps to load data once).
        keep_weights: save the final weights beside the store, for later analyses of the minimum.
    """
    device = resolve_device(config.device)
    identity = run_id(config, device.type)
    run_store = open_store(store)

    if run_store is not None:
        existing = run_store.get(identity)
        if existing is not None and existing.status in ENDED_STATUSES and not force:
            return result_from_record(existing, run_store)
        if existing is not None and force:
            run_store.delete_run(identity)

    if splits is None:
        splits = datasets.prepare_splits(
            config.dataset,
            data_dir=config.data_dir,
            val_fraction=config.val_fraction,
            split_seed=config.split_seed,
            device=device,
        )
    n_train = len(splits.train)
    batch_size = datasets.resolve_batch_size(config.batch_size, n_train)
    slices = datasets.batch_index_slices(n_train, batch_size, drop_last=config.drop_last)

    model, optimizer = initial_model_and_optimizer(config, splits, device)

    environment = describe_environment(device)
    history: list[dict[str, float]] = []
    start_epoch = 1
    updates = 0
    if run_store is not None:
        checkpoint = run_store.load_checkpoint(identity)
        if checkpoint is not None:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            torch.set_rng_state(checkpoint["rng_state"])
            history = [dict(row) for row in checkpoint["history"]]
            start_epoch = int(checkpoint["epoch"]) + 1
            updates = int(checkpoint["updates"])
        run_store.start_run(identity, config.to_dict() | {"device": device.type}, environment)

    timer = UpdateTimer(device)
    reporter = EpochProgress(config.epochs, enabled=progress, label=f"{config.model} B={batch_size}")
    reporter.skip_to(start_epoch - 1)
    status = FINISHED
    diverged_epoch: int | None = None
    stopped_early_at: int | None = None
    epoch_times = [row["epoch_time_s"] for row in history]

    for epoch in range(start_epoch, config.epochs + 1):
        model.train()
        order = datasets.epoch_permutation(n_train, epoch - 1, config.seed, config.shuffle).to(device)
        loss_sum = torch.zeros((), device=device)
        epoch_updates = 0
        synchronize(device)
        epoch_start = time.perf_counter()
        for start, end in slices:
            if config.max_updates is not None and updates >= config.max_updates:
                break
            timer.start()
            index = order[start:end]
            loss = F.cross_entropy(model(splits.train.x[index]), splits.train.y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            timer.stop()
            # Accumulated on the device: a NaN anywhere in the epoch survives the sum, and no
            # per-step host synchronization is needed to notice it.
            loss_sum += loss.detach()
            epoch_updates += 1
            updates += 1
        synchronize(device)
        epoch_time = time.perf_counter() - epoch_start
        timer.flush()

        batch_loss_mean = loss_sum.item() / max(epoch_updates, 1)
        train_loss, train_acc = evaluate(model, splits.train)
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "batch_loss_mean": batch_loss_mean,
            "updates": updates,
            "epoch_updates": epoch_updates,
            "epoch_time_s": epoch_time,
        }
        if splits.val is not None:
            row["val_loss"], row["val_acc"] = evaluate(model, splits.val)
        history.append(row)
        epoch_times.append(epoch_time)
        if not (math.isfinite(batch_loss_mean) and math.isfinite(train_loss)):
            status, diverged_epoch = DIVERGED, epoch
        if run_store is not None:
            run_store.log_epoch(identity, epoch, {k: v for k, v in row.items() if k != "epoch"})
        reporter.update(epoch, row)
        if status == DIVERGED:
            break
        if config.max_updates is not None and updates >= config.max_updates:
            break
        if config.stop_patience and stopped_improving(history, config.stop_patience):
            stopped_early_at = epoch
            break
        if run_store is not None and epoch < config.epochs:
            run_store.save_checkpoint(
                identity,
                {
                    "epoch": epoch,
                    "updates": updates,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rng_state": torch.get_rng_state(),
                    "history": history,
                },
            )
    reporter.close()

    summary: dict[str, Any] = {
        "epochs_completed": len(history),
        "updates": updates,
        "batch_size": batch_size,
        "n_train": n_train,
        "updates_per_epoch": len(slices),
        **timer.summary(),
        "time_per_epoch_s": statistics.median(epoch_times) if epoch_times else None,
        "train_time_s": sum(epoch_times),
        "diverged_epoch": diverged_epoch,
        "stopped_early_at": stopped_early_at,
    }
    if history:
        last = history[-1]
        summary.update({k: last[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc") if k in last})
    if status == FINISHED:
        summary["test_loss"], summary["test_acc"] = evaluate(model, splits.test)
    if run_store is not None:
        if keep_weights:
            run_store.save_weights(identity, {k: v.detach().cpu() for k, v in model.state_dict().items()})
        run_store.finish_run(identity, status, summary)
        run_store.delete_checkpoint(identity)
    if reporter.plain:
        log_summary(identity, status, summary)
    return RunResult(identity, config, status, history, summary, environment, from_store=False)


def initial_model_and_optimizer(
    config: RunConfig, splits: "datasets.Splits", device: torch.device
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The run's starting point: ``torch.manual_seed(seed)``, the model built on the CPU (so a
    seed gives the same weights on every device), moved to ``device``, and its optimizer.

    Single and packed training both start here, so their runs begin identically.
    """
    torch.manual_seed(config.seed)
    model = build_model(config.model, splits.input_shape, splits.num_classes, config.hidden).to(device)
    optimizer = build_optimizer(
        config.optimizer,
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )
    return model, optimizer


@torch.no_grad()
def evaluate(model: nn.Module, split: "datasets.TensorSplit", chunk: int = EVAL_CHUNK) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` over a whole split, in eval mode.

    The caller's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), dtype=torch.float64, device=split.x.device)
    correct = torch.zeros((), dtype=torch.int64, device=split.x.device)
    n = len(split)
    for start in range(0, n, chunk):
        logits = model(split.x[start : start + chunk])
        targets = split.y[start : start + chunk]
        total_loss += F.cross_entropy(logits, targets, reduction="sum").double()
        correct += (logits.argmax(dim=1) == targets).sum()
    model.train(was_training)
    return total_loss.item() / n, correct.item() / n


def stopped_improving(history: list[dict[str, float]], patience: int) -> bool:
    """True when the training loss has not improved by IMPROVEMENT_TOLERANCE (relative) for
    ``patience`` epochs in a row — Keskar et al.'s "until the loss stops improving"."""
    losses = [row["train_loss"] for row in history]
    if len(losses) <= patience:
        return False
    best_before = min(losses[:-patience])
    recent_best = min(losses[-patience:])
    return recent_best > best_before * (1.0 - IMPROVEMENT_TOLERANCE)


def open_store(store: Any) -> Any:
    if store is None:
        return None
    if isinstance(store, (str, Path)):
        from batchlab.store import RunStore

        return RunStore(store)
    return store


def result_from_record(record: Any, run_store: Any) -> RunResult:
    """Rebuild a :class:`RunResult` from a stored run (no training)."""
    return RunResult(
        record.run_id,
        RunConfig.from_dict(record.config),
        record.status,
        run_store.metrics(record.run_id),
        dict(record.summary),
        dict(record.environment),
        from_store=True,
    )


def log_summary(identity: str, status: str, summary: dict[str, Any]) -> None:
    parts = [f"run {identity} {status}"]
    for key in ("train_acc", "val_acc", "test_acc"):
        if summary.get(key) is not None:
            parts.append(f"{key}={summary[key]:.4f}")
    if summary.get("time_per_update_s") is not None:
        parts.append(f"update={summary['time_per_update_s'] * 1e3:.3f}ms")
    if summary.get("diverged_epoch") is not None:
        parts.append(f"diverged at epoch {summary['diverged_epoch']}")
    print(" ".join(parts), file=sys.stderr, flush=True)
