"""One training run, top to bottom: ``train(RunConfig) -> RunResult``.

The loop is the lecture's mini-batch training made literal:

* the whole dataset sits on the training device; each epoch draws a permutation from a generator
  seeded by (seed, epoch) and walks it in slices of B indices — one epoch is every batch once, and
  with ``shuffle="epoch"`` which examples share a batch changes every epoch;
* every slice is one update (the last partial batch too, unless ``drop_last``), at the learning
  rate the run's schedule gives that update (:func:`batchlab.optim.schedules.schedule_for`: set
  in every parameter group just before the update, so a resumed run continues the schedule at
  the update it stopped at);
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

import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from batchlab import data as datasets
from batchlab.config import RunConfig
from batchlab.data.identity import data_fingerprint, load_splits
from batchlab.device import resolve_device, synchronize
from batchlab.environment import describe_environment
from batchlab.models import build_model
from batchlab.threads import intra_op_threads, threads_for
from batchlab.train.methods import (
    RunShape,
    build_run_optimizer,
    initial_weights,
    load_initial_weights,
    run_shape,
    use_batch_norm_settings,
)
from batchlab.train.progress import EpochProgress
from batchlab.train.result import FINISHED, RunResult
from batchlab.train.session import RunSession, epoch_row, open_store
from batchlab.train.update_timer import UpdateTimer

if TYPE_CHECKING:
    from batchlab.store import RunStore

# Examples per forward pass when evaluating; large enough to be fast, small enough for any GPU.
EVAL_CHUNK = 2048


def train(
    config: RunConfig,
    *,
    store: "RunStore | str | Path | None" = None,
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
            from its last epoch checkpoint. Its life in the store (claim, resume, end rules,
            summary) is :class:`~batchlab.train.session.RunSession`'s.
        force: train again even if the store holds a finished result; the old one is replaced
            only once this run's data and model are ready.
        progress: a progress bar (True), plain log lines (False) or decide by terminal (None).
        splits: data already on the right device. Splits prepared by
            :func:`batchlab.data.identity.load_splits` for this config are the registry data; any
            other splits are identified by their content, which becomes part of the run id.
        keep_weights: save the final weights beside the store, for later analyses of the minimum.
    """
    device = resolve_device(config.device)
    session = RunSession(
        config,
        open_store(store),
        device.type,
        data_fingerprint=data_fingerprint(config, splits),
        force=force,
        keep_weights=keep_weights,
    )
    stored = session.stored_result()
    if stored is not None:
        return stored

    if splits is None:
        splits = load_splits(config, device)
    n_train = len(splits.train)
    shape = run_shape(config, n_train)
    batch_size, slices, schedule = shape.batch_size, shape.slices, shape.schedule
    model, optimizer = initial_model_and_optimizer(config, splits, device, store=session.store, shape=shape)

    # Small CPU batches update on one intra-op thread (batchlab.threads), recorded with the run.
    threads = threads_for(batch_size, device)
    stored = session.claim(describe_environment(device, update_threads=threads))
    if stored is not None:
        return stored
    if session.checkpoint is not None:
        model.load_state_dict(session.checkpoint["model"])
        optimizer.load_state_dict(session.checkpoint["optimizer"])
        torch.set_rng_state(session.checkpoint["rng_state"])

    timer = UpdateTimer(device)
    reporter = EpochProgress(config.epochs, enabled=progress, label=f"{config.model} B={batch_size}")
    session.log_plain = reporter.plain
    reporter.skip_to(session.start_epoch - 1)
    updates = session.updates
    try:
        for epoch in range(session.start_epoch, config.epochs + 1):
            model.train()
            order = datasets.epoch_permutation(n_train, epoch - 1, config.seed, config.shuffle).to(device)
            loss_sum = torch.zeros((), device=device)
            epoch_updates = 0
            synchronize(device)
            epoch_start = time.perf_counter()
            with intra_op_threads(threads):
                for start, end in slices:
                    if config.max_updates is not None and updates >= config.max_updates:
                        break
                    timer.start()
                    index = order[start:end]
                    set_learning_rate(optimizer, schedule.lr_at(updates))
                    loss = F.cross_entropy(model(splits.train.x[index]), splits.train.y[index])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    timer.stop()
                    # Accumulated on the device: a NaN anywhere in the epoch survives the sum, and
                    # no per-step host synchronization is needed to notice it.
                    loss_sum += loss.detach()
                    epoch_updates += 1
                    updates += 1
            synchronize(device)
            epoch_time = time.perf_counter() - epoch_start
            timer.flush()

            row = epoch_row(
                epoch,
                train=evaluate(model, splits.train),
                val=None if splits.val is None else evaluate(model, splits.val),
                batch_loss_sum=loss_sum.item(),
                updates=updates,
                epoch_updates=epoch_updates,
                epoch_time_s=epoch_time,
            )
            ended = session.end_of_epoch(row)
            reporter.update(epoch, row)
            if ended:
                break
            session.save_checkpoint(checkpoint_payload(epoch, updates, model, optimizer, session.history))
    except KeyboardInterrupt:
        session.interrupted()
        raise
    finally:
        reporter.close()

    return session.finish(
        batch_size=batch_size,
        n_train=n_train,
        updates_per_epoch=len(slices),
        timing=timer.summary(),
        test=evaluate(model, splits.test) if session.status == FINISHED else None,
        weights=model.state_dict(),
    )


def checkpoint_payload(
    epoch: int, updates: int, model: nn.Module, optimizer: torch.optim.Optimizer, history: list[dict[str, float]]
) -> dict:
    """What a run resumes from after ``epoch``: weights, optimizer state, the CPU RNG, history."""
    return {
        "epoch": epoch,
        "updates": updates,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng_state": torch.get_rng_state(),
        "history": history,
    }


def initial_model_and_optimizer(
    config: RunConfig,
    splits: "datasets.Splits",
    device: torch.device,
    *,
    store: "RunStore | None" = None,
    shape: RunShape | None = None,
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The run's starting point: ``torch.manual_seed(seed)``, the model built on the CPU (so a
    seed gives the same weights on every device), its batch norm made ghost / free of moving
    averages as the config says, the final weights of run ``init_from`` (read from ``store``)
    if given, moved to ``device``, and its optimizer (:mod:`batchlab.train.methods`).

    Single and packed training both start here, so their runs begin identically.
    """
    shape = shape or run_shape(config, len(splits.train))
    weights = initial_weights(config, store)
    torch.manual_seed(config.seed)
    model = build_model(config.model, splits.input_shape, splits.num_classes, config.hidden)
    use_batch_norm_settings(model, config)
    if weights is not None:
        load_initial_weights(model, config, weights)
    model = model.to(device)
    return model, build_run_optimizer(config, model.parameters(), shape)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Use ``lr`` for the next update in every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


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
