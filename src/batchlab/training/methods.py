"""The large-batch methods of a run, set up from its config: the same for every trainer.

* :func:`run_shape`: the resolved batch size, the epoch's batches and the learning-rate
  :class:`~batchlab.optim.schedules.Schedule` of the run (:func:`schedule_for`) — with the
  checks that need the training-set size (a warm-up or milestone past the run's end, a ghost
  batch that does not divide every batch of the epoch), so they fail before anything is trained
  or stored;
* :func:`build_run_optimizer`: the run's optimizer (its recipe's, if any) with LARS's trust
  coefficient and the RMSprop warm-up's epoch length;
* :func:`use_batch_norm_settings`: ghost batch norm (Hoffer et al. 2017) and batch norm without
  moving averages (Akiba et al. 2017) on the built model;
* :func:`initial_weights`: the stored final weights of run ``init_from`` (checked alone by
  :func:`check_init_source`, which a sweep runs on all its runs before training any).

The RMSprop warm-up's hand-over (β_center = 10, β_period = 5 epochs in the 90-epoch runs its
defaults come from) is placed at the same fractions of the run, β_center = 10/90 and
β_period = 5/90 of the run's length in epochs, as the slow-start boundaries are
(:func:`batchlab.optim.schedules.akiba_slow_start_factor`): a short run keeps the recipe's shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from batchlab import data as datasets
from batchlab.config import RunConfig, resolve_batch_size
from batchlab.errors import ConfigError, StoreError
from batchlab.models.ghost_bn import use_ghost_batch_norm
from batchlab.optim import build_optimizer
from batchlab.optim.recipes import bn_eval_statistics_of, lr_decay_of, optimizer_of
from batchlab.optim.schedules import AKIBA_BETA_CENTER, AKIBA_BETA_PERIOD, AKIBA_EPOCHS, Schedule, epochs_to_updates
from batchlab.store.status import FINISHED

if TYPE_CHECKING:
    from batchlab.store import RunStore
    from batchlab.store.record import RunRecord

@dataclass(frozen=True)
class RunShape:
    """How a run walks its data: B resolved, the (start, end) slices of an epoch, its schedule."""

    batch_size: int
    slices: tuple[tuple[int, int], ...]
    schedule: Schedule

    @property
    def updates_per_epoch(self) -> int:
        return len(self.slices)


def run_shape(config: RunConfig, n_train: int) -> RunShape:
    """The run's batches and schedule on a training set of ``n_train`` examples (checked)."""
    batch_size = resolve_batch_size(config.batch_size, n_train)
    slices = datasets.batch_index_slices(n_train, batch_size, drop_last=config.drop_last)
    if config.ghost_batch is not None:
        lengths = sorted({end - start for start, end in slices}, reverse=True)
        misfit = [length for length in lengths if length % config.ghost_batch]
        if misfit:
            last = " (the epoch's last batch; --drop-last drops it)" if misfit[0] != batch_size else ""
            raise ConfigError(
                f"ghost batch {config.ghost_batch} does not divide the batch of {misfit[0]} examples{last}; "
                f"allowed: a divisor of every batch ({', '.join(map(str, lengths))})"
            )
    return RunShape(batch_size, slices, schedule_for(config, len(slices), batch_size=batch_size))


def schedule_for(config: RunConfig, updates_per_epoch: int, *, batch_size: int) -> Schedule:
    """The :class:`Schedule` of a run: its learning rate at every update.

    From the config's ``lr`` (the base rate), ``lr_scaling`` and ``base_batch``, ``warmup_epochs``
    (× ``updates_per_epoch``, rounded), ``lr_decay`` (or its recipe's) with ``decay_epochs`` (×
    ``updates_per_epoch``) and ``decay_factor``; the run has ``epochs × updates_per_epoch``
    updates, or ``max_updates`` if fewer. The warm-up starts from ``lr`` (Goyal et al. 2017: from
    the small-batch rate to the scaled one) when the rate is scaled, and from 0 when it is not
    (from ``lr`` to ``lr`` would be no warm-up). Cosine decay ends at 0.

    ``batch_size`` is the resolved batch size (``config.batch_size`` may be ``"full"``).
    A warm-up or a milestone that does not fit the run is a one-line :class:`ConfigError`.
    """
    total = config.epochs * updates_per_epoch
    if config.max_updates is not None:
        total = min(total, config.max_updates)
    warmup = epochs_to_updates(config.warmup_epochs, updates_per_epoch)
    if warmup > total:
        raise ConfigError(
            f"warm-up of {config.warmup_epochs:g} epochs ({warmup} updates) is longer than the run of {total} "
            f"updates; allowed: warmup_epochs ≤ {total / updates_per_epoch:g}"
        )
    decay = lr_decay_of(config)
    milestones: tuple[int, ...] = ()
    if decay == "step":
        milestones = tuple(epoch * updates_per_epoch for epoch in config.decay_epochs)
        late = [epoch for epoch, update in zip(config.decay_epochs, milestones) if update >= total]
        if late:
            raise ConfigError(
                f"decay epoch {late[0]} falls after the run's last update ({total} updates, max_updates "
                f"{config.max_updates}); allowed: decay epochs before {total / updates_per_epoch:g}"
            )
    if decay == "cosine" and warmup >= total:
        raise ConfigError(
            f"cosine decay needs updates after the warm-up of {config.warmup_epochs:g} epochs; allowed: "
            f"warmup_epochs < {total / updates_per_epoch:g}"
        )
    return Schedule(
        base_lr=float(config.lr),
        batch_size=batch_size,
        total_updates=total,
        base_batch=config.base_batch,
        scaling=config.lr_scaling,
        warmup_updates=warmup,
        warmup_start="base" if config.lr_scaling != "none" else "zero",
        decay=decay,
        milestones=milestones,
        gamma=config.decay_factor,
    )


def optimizer_options(config: RunConfig, shape: RunShape) -> dict[str, Any]:
    """The optimizer's options beyond lr / momentum / weight decay that the config sets."""
    name = optimizer_of(config)
    if name == "lars" and config.trust_coefficient is not None:
        return {"trust_coefficient": config.trust_coefficient}
    if name == "rmsprop-warmup":
        run_epochs = shape.schedule.total_updates / shape.updates_per_epoch
        return {
            "updates_per_epoch": shape.updates_per_epoch,
            "beta_center": AKIBA_BETA_CENTER / AKIBA_EPOCHS * run_epochs,
            "beta_period": AKIBA_BETA_PERIOD / AKIBA_EPOCHS * run_epochs,
        }
    return {}


def build_run_optimizer(config: RunConfig, params: Iterable[torch.Tensor], shape: RunShape) -> torch.optim.Optimizer:
    """The run's optimizer, at the schedule's first rate (the loop sets it before every update)."""
    return build_optimizer(
        optimizer_of(config),
        params,
        lr=shape.schedule.lr_at(0),
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
        momentum_correction=config.momentum_correction,
        **optimizer_options(config, shape),
    )


def use_batch_norm_settings(model: nn.Module, config: RunConfig) -> None:
    """Ghost batch norm over ``ghost_batch`` examples and/or no moving averages (the recipe's)."""
    eval_statistics = bn_eval_statistics_of(config)
    if config.ghost_batch is not None or eval_statistics != "running":
        use_ghost_batch_norm(model, config.ghost_batch, eval_statistics)


def initial_weights(config: RunConfig, store: "RunStore | None") -> dict[str, torch.Tensor] | None:
    """The final weights of run ``config.init_from`` (None without it); see :func:`check_init_source`."""
    if config.init_from is None:
        return None
    check_init_source(config, store)
    return store.load_weights(config.init_from)  # type: ignore[union-attr]


def check_init_source(config: RunConfig, store: "RunStore | None") -> None:
    """A missing, unfinished or weightless ``init_from`` run is a one-line :class:`StoreError`
    (without ``init_from``: nothing to check)."""
    source = config.init_from
    if source is None:
        return
    finished_source("init_from", source, store)
    if not store.has_weights(source):  # type: ignore[union-attr]
        raise StoreError(f"init_from run {source} kept no weights; allowed: a run trained without --no-weights")


def finished_source(field: str, source: str, store: "RunStore | None") -> "RunRecord":
    """The stored record of run ``source`` that the config's ``field`` (``init_from``,
    ``continue_from``) names; no store (a :class:`ConfigError`), a missing or an unfinished run
    (a :class:`StoreError`) is a one-line error."""
    if store is None:
        raise ConfigError(f"{field} {source} needs the store that holds that run; allowed: train with a store")
    record = store.get(source)
    if record is None:
        raise StoreError(f"{field} run {source} is not in {store.path}; allowed: a finished run of this store "
                         "(`batchlab runs`)")
    if record.status != FINISHED:
        raise StoreError(f"{field} run {source} is {record.status}; allowed: a finished run")
    return record


def load_initial_weights(model: nn.Module, config: RunConfig, weights: dict[str, torch.Tensor]) -> None:
    """Load ``init_from``'s weights into ``model``; weights of another architecture are a StoreError."""
    try:
        model.load_state_dict(weights)
    except RuntimeError:
        raise StoreError(
            f"the weights of init_from run {config.init_from} do not fit model {config.model} "
            f"(hidden {config.hidden}); allowed: a run of the same model and widths"
        ) from None
