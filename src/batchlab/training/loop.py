"""One training run, top to bottom: ``train(RunConfig) -> RunResult``.

The loop is the lecture's mini-batch training made literal:

* the whole dataset sits on the training device; each epoch draws a permutation from a generator
  seeded by (seed, epoch) and walks it in slices of B indices — one epoch is every batch once, and
  with ``shuffle="epoch"`` which examples share a batch changes every epoch;
* every slice is one update (the last partial batch too, unless ``drop_last``), at the learning
  rate the run's schedule gives that update (:func:`batchlab.training.methods.schedule_for`: set
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

A user's own model and data (``task=``, :class:`batchlab.Task`) go through the same loop: the
task's factory replaces the registry builder, its loss and metric replace cross-entropy and
accuracy (:mod:`batchlab.training.objective`), and data too large for the device is read batch by
batch in the same order (:mod:`batchlab.data.streamed`; then the read and the copy to the device
count in the update's time, as the gather does for data on the device).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from batchlab import data as datasets
from batchlab.config import RunConfig
from batchlab.data.identity import data_fingerprint, load_splits
from batchlab.data.streamed import StreamedSplit, split_batches, split_chunks
from batchlab.runtime.device import resolve_device, synchronize
from batchlab.runtime.environment import describe_environment
from batchlab.errors import ConfigError
from batchlab.models.registry import build_model
from batchlab.optim.momentum import Momentum
from batchlab.runtime.threads import intra_op_threads, threads_for
from batchlab.training.methods import (
    RunShape,
    build_run_optimizer,
    initial_weights,
    load_initial_weights,
    run_shape,
    use_batch_norm_settings,
)
from batchlab.training.continuation import check_continue_source
from batchlab.training.objective import CLASSIFICATION, Objective
from batchlab.training.driver import EpochWork, checkpoint_payload, drive, restore
from batchlab.training.fused_mlp import fused_update
from batchlab.training.progress import EpochProgress
from batchlab.training.result import RunResult
from batchlab.training.session import RunSession, open_store
from batchlab.training.update_timer import UpdateTimer

if TYPE_CHECKING:
    from batchlab.store import RunStore
    from batchlab.task import Task

# Examples per forward pass when evaluating; large enough to be fast, small enough for any GPU.
EVAL_CHUNK = 2048
SPLITS_AND_TASK = "both splits and a task were given; allowed: one of them (a task brings its own data)"


def train(
    config: RunConfig,
    *,
    store: "RunStore | str | Path | None" = None,
    force: bool = False,
    progress: bool | None = None,
    splits: "datasets.Splits | None" = None,
    keep_weights: bool = True,
    keep_state: bool = False,
    task: "Task | None" = None,
) -> RunResult:
    """Train one configuration; with a ``store``, record it there and reuse a finished result.

    Args:
        config: what to train.
        store: a :class:`batchlab.store.RunStore` or a path to one. A run already finished in it
            is returned as stored (``from_store=True``) unless ``force``; an unfinished one resumes
            from its last epoch checkpoint. Its life in the store (claim, resume, end rules,
            summary) is :class:`~batchlab.training.session.RunSession`'s.
        force: train again even if the store holds a finished result; the old one is replaced
            only once this run's data and model are ready.
        progress: a progress bar (True), plain log lines (False) or decide by terminal (None).
        splits: data already on the right device. Splits prepared by
            :func:`batchlab.data.identity.load_splits` for this config are the registry data; any
            other splits are identified by their content, which becomes part of the run id.
        keep_weights: save the final weights beside the store, for later analyses of the minimum.
        keep_state: also keep the final training state of a finished run (its last epoch's
            checkpoint: optimizer state, counts, history), so that a run with ``continue_from``
            can train it on (:mod:`batchlab.training.continuation`).
        task: a user's own model, data, loss and metric (:class:`batchlab.Task`) instead of the
            configuration's registry model and dataset; its checks ran when it was made, so bad
            input has failed before the store is opened.
    """
    device = resolve_device(config.device)
    config, splits = task_config_and_splits(config, splits, task, device)
    objective = task.objective if task is not None else CLASSIFICATION
    session = new_session(config, open_store(store), device, splits, task, force=force, keep_weights=keep_weights,
                          keep_state=keep_state)
    stored = session.stored_result()
    if stored is not None:
        return stored

    if splits is None:
        splits = load_splits(config, device)
    n_train = len(splits.train)
    shape = run_shape(config, n_train)
    batch_size, slices, schedule = shape.batch_size, shape.slices, shape.schedule
    model, optimizer = initial_model_and_optimizer(config, splits, device, task, store=session.store, shape=shape)

    # Small CPU batches update on one intra-op thread (batchlab.runtime.threads), recorded with the run.
    threads = threads_for(batch_size, device)
    stored = session.claim(describe_environment(device, update_threads=threads))
    if stored is not None:
        return stored
    restore(model, optimizer, session.checkpoint)
    step = SingleStep(model, optimizer, splits.train, objective, shape, config, threads)
    reporter = EpochProgress(config.epochs, enabled=progress, label=f"{config.model} B={batch_size}")
    (result,) = drive(step, [session], splits, objective, reporter,
                      shape={"batch_size": batch_size, "n_train": n_train, "updates_per_epoch": len(slices)})
    return result


class SingleStep:
    """One model's updates for the epoch driver (:mod:`batchlab.training.driver`): the lecture's
    mini-batch loop of the module docstring.

    The update is kept free of per-update Python work that does not change its numbers: the
    learning rate is set only when the schedule changes it, the batch losses are kept on the
    device and summed once per epoch (no host synchronization per update; a NaN anywhere in the
    epoch survives the sum), the update budget is turned into a count before the epoch, the
    lecture's momentum rule updates all tensors with a few ``torch._foreach_*`` kernels (bitwise
    the same numbers as one kernel per tensor), gradients are dropped by setting them to None
    (what ``zero_grad(set_to_none=True)`` does, without its profiler range), and the optimizer's
    step runs without torch's per-step profiler range when no step hook is registered
    (:func:`unprofiled_step`). A plain Linear/ReLU MLP on cross-entropy with the lecture's
    momentum skips autograd and the gradient tensors altogether: the backward pass writes the
    momentum buffer directly (:mod:`batchlab.training.fused_mlp`, the same rule to the last
    rounding of m).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, train: Any, objective: Objective,
                 shape: RunShape, config: RunConfig, threads: int) -> None:
        self.model, self.optimizer, self.train, self.objective = model, optimizer, train, objective
        self.shape, self.config, self.threads = shape, config, threads
        self.device = next((p.device for p in model.parameters()), train.device)
        self.timer = UpdateTimer(self.device)
        self.constant_lr = shape.schedule.is_constant
        if isinstance(optimizer, Momentum):
            for group in optimizer.param_groups:
                group["foreach"] = True
        self.params = [param for group in optimizer.param_groups for param in group["params"]]
        self.optimizer_step = unprofiled_step(optimizer)
        # A plain MLP with the lecture's momentum writes the buffer straight from the backward
        # pass (batchlab.training.fused_mlp); every other run takes autograd and optimizer.step.
        self.update = fused_update(model, optimizer, objective.loss) or self._autograd_update
        self._epoch_order: tuple[int, torch.Tensor] | None = None

    def train_epoch(self, epoch: int, updates: int, limit: int | None, *, first_batch: int = 0) -> EpochWork:
        """The epoch's batches from ``first_batch`` on (the earlier ones were made elsewhere: a
        pack that handed the run over mid-epoch, :mod:`batchlab.training.packed_auto`), at most
        ``limit`` of them, the first being update ``updates``."""
        model, optimizer, update_on = self.model, self.optimizer, self.update
        slices, schedule, timer = self.shape.slices[first_batch:], self.shape.schedule, self.timer
        count = len(slices) if limit is None else max(0, min(len(slices), limit))
        model.train()
        batches = self._batches(self._order(epoch), slices[:count])
        losses: list[torch.Tensor] = []
        if self.constant_lr:
            set_learning_rate(optimizer, schedule.lr_at(updates))
        synchronize(self.device)
        epoch_start = time.perf_counter()
        with intra_op_threads(self.threads):
            for update in range(updates, updates + count):
                timer.start()
                x, y = next(batches)
                if not self.constant_lr:
                    set_learning_rate(optimizer, schedule.lr_at(update))
                losses.append(update_on(x, y))
                timer.stop()
        synchronize(self.device)
        seconds = time.perf_counter() - epoch_start
        timer.flush()
        loss_sum = torch.stack(losses).sum().item() if losses else 0.0
        first = [losses[0].item()] if updates == 0 and losses else None
        return EpochWork(len(losses), seconds, [loss_sum], first)

    def _autograd_update(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One update by autograd and the optimizer's step; the batch's loss, detached."""
        loss = self.objective.loss(self.model(x), y)
        for param in self.params:
            param.grad = None
        loss.backward()
        self.optimizer_step()
        return loss.detach()

    def _order(self, epoch: int) -> torch.Tensor:
        """The run's order of the training examples in epoch ``epoch`` (1-based), kept for the
        epoch last asked for: an epoch trained in parts (a probe's turns,
        :mod:`batchlab.training.packed_auto`) draws it once."""
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            config = self.config
            self._epoch_order = (epoch, datasets.epoch_permutation(len(self.train), epoch - 1, config.seed,
                                                                   config.shuffle))
        return self._epoch_order[1]

    def _batches(self, order: torch.Tensor, slices: Sequence[tuple[int, int]]):
        """The epoch's batches: gathered on the device with ``index_select`` (one kernel each, no
        advanced-indexing dispatch) for data on the device, read and copied for streamed data."""
        train = self.train
        if not isinstance(train, datasets.TensorSplit):
            return split_batches(train, order.to(train.device), slices, self.device)
        order = order.to(train.device)
        x, y = train.x, train.y
        return ((x.index_select(0, order[start:end]), y.index_select(0, order[start:end])) for start, end in slices)

    def evaluate(self, split: Any, rows: Sequence[int] | None = None) -> list[tuple[float, float]]:
        return [evaluate(self.model, split, objective=self.objective)]

    def checkpoint(self, row: int, epoch: int, updates: int) -> dict[str, Any]:
        return checkpoint_payload(epoch, updates, self.model.state_dict(), self.optimizer.state_dict())

    def weights(self, row: int) -> Mapping[str, torch.Tensor]:
        return self.model.state_dict()

    def keep(self, rows: list[int]) -> None:
        """One run: it never goes on without itself."""

    def agree(self, ending: list[bool]) -> list[bool]:
        return ending

    def timing(self) -> dict[str, Any]:
        return self.timer.summary()


def task_config_and_splits(
    config: RunConfig, splits: "datasets.Splits | None", task: "Task | None", device: torch.device
) -> tuple[RunConfig, "datasets.Splits | None"]:
    """The configuration and data of a run: as given, or a task's (:meth:`Task.configure`, its
    data for ``device``)."""
    if task is None:
        return config, splits
    if splits is not None:
        raise ConfigError(SPLITS_AND_TASK)
    return task.configure(config), task.splits(device)


def new_session(
    config: RunConfig, store: "RunStore | None", device: torch.device, splits: "datasets.Splits | None",
    task: "Task | None", *, force: bool, keep_weights: bool, keep_state: bool = False,
    execution: dict[str, Any] | None = None,
) -> RunSession:
    """The run's :class:`RunSession`, with the identity of a task's model and data when it has one
    (``execution``: how the run is spread over processes, part of its id; None for one process)."""
    spread = {} if execution is None else {"execution": execution}
    if task is None:
        return RunSession(config, store, device.type, data_fingerprint=data_fingerprint(config, splits),
                          force=force, keep_weights=keep_weights, keep_state=keep_state, **spread)
    return RunSession(config, store, device.type, data_fingerprint=task.data_fingerprint,
                      model_fingerprint=task.model_fingerprint, metric_name=task.objective.metric_name,
                      origin=task.origin,
                      force=force, keep_weights=keep_weights, keep_state=keep_state, **spread)


def initial_model_and_optimizer(
    config: RunConfig,
    splits: "datasets.Splits",
    device: torch.device,
    task: "Task | None" = None,
    *,
    store: "RunStore | None" = None,
    shape: RunShape | None = None,
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The run's starting point: ``torch.manual_seed(seed)``, the model built on the CPU (so a
    seed gives the same weights on every device) — the registry model, or the task's factory —
    its batch norm made ghost / free of moving averages as the config says, the final weights of
    run ``init_from`` (read from ``store``) if given, moved to ``device``, and its optimizer
    (:mod:`batchlab.training.methods`). A run with ``continue_from`` is checked against its
    source here; it resumes from the source's state when the session claims it
    (:mod:`batchlab.training.continuation`).

    Single and packed training both start here, so their runs begin identically.
    """
    shape = shape or run_shape(config, len(splits.train))
    weights = initial_weights(config, store)
    check_continue_source(config, store)
    torch.manual_seed(config.seed)
    if task is not None:
        model = task.build_model()
    else:
        model = build_model(config.model, splits.input_shape, splits.num_classes, config.hidden)
    use_batch_norm_settings(model, config)
    if weights is not None:
        load_initial_weights(model, config, weights)
    model = model.to(device)
    return model, build_run_optimizer(config, model.parameters(), shape)


def unprofiled_step(optimizer: torch.optim.Optimizer) -> Callable[[], Any]:
    """``optimizer.step`` without the wrapper torch puts around every optimizer's ``step`` (a
    profiler range and the step hooks, :meth:`torch.optim.Optimizer.profile_hook_step`) — the
    same update, two fewer dispatcher calls each time. The wrapped step is kept when a step hook
    is registered, or when the wrapper is not there to look through."""
    from torch.optim import optimizer as optimizer_module

    step = type(optimizer).step
    plain = getattr(step, "__wrapped__", None)
    hooks = (getattr(optimizer, "_optimizer_step_pre_hooks", None), getattr(optimizer, "_optimizer_step_post_hooks", None),
             getattr(optimizer_module, "_global_optimizer_pre_hooks", None),
             getattr(optimizer_module, "_global_optimizer_post_hooks", None))
    if plain is None or any(hook is None or len(hook) for hook in hooks):
        return optimizer.step
    return functools.partial(plain, optimizer)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Use ``lr`` for the next update in every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: "datasets.TensorSplit | StreamedSplit",
    chunk: int = EVAL_CHUNK,
    *,
    objective: Objective = CLASSIFICATION,
) -> tuple[float, float]:
    """Mean loss and metric of ``model`` over a whole split, in eval mode: cross-entropy and
    accuracy unless ``objective`` says otherwise (example-weighted over chunks, see
    :mod:`batchlab.training.objective`). A streamed split is read to the model's device.

    The caller's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), split.device)
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    total_metric = torch.zeros((), dtype=torch.float64, device=device)
    for x, y in split_chunks(split, chunk, device):
        loss_sum, metric_sum = objective.sums(model(x), y)
        total_loss += loss_sum
        total_metric += metric_sum
    model.train(was_training)
    n = len(split)
    return total_loss.item() / n, total_metric.item() / n
