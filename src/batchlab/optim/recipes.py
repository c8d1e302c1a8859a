"""Named training recipes: several methods from one paper switched on together by one name.

A recipe only chooses among methods that are each usable alone; it adds no rule of its own.

* ``akiba`` (Akiba, Suzuki & Fukuda 2017, "Extremely Large Minibatch SGD: Training ResNet-50 on
  ImageNet in 15 Minutes"): the RMSprop warm-up that hands over to momentum SGD (optimizer
  ``rmsprop-warmup``, :class:`batchlab.optim.rmsprop_warmup.RMSpropWarmup`), the slow-start
  learning-rate schedule (``lr_decay="slow-start"``,
  :func:`batchlab.optim.schedules.akiba_slow_start_factor`) and batch normalization without
  moving averages (evaluation normalizes with each evaluated batch's own statistics,
  :func:`batchlab.models.ghost_bn.use_ghost_batch_norm` with ``eval_statistics="batch"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Recipe:
    """What a recipe switches on: an optimizer, a learning-rate decay and the statistics batch
    norm uses at evaluation (``running`` or ``batch``)."""

    name: str
    optimizer: str
    lr_decay: str
    bn_eval_statistics: str


RECIPES: dict[str, Recipe] = {
    "akiba": Recipe("akiba", optimizer="rmsprop-warmup", lr_decay="slow-start", bn_eval_statistics="batch"),
}


def _recipe(config: Any) -> Recipe | None:
    return None if config.recipe is None else RECIPES[config.recipe]


def optimizer_of(config: Any) -> str:
    """The optimizer a run uses: its recipe's, else ``config.optimizer``."""
    recipe = _recipe(config)
    return config.optimizer if recipe is None else recipe.optimizer


def lr_decay_of(config: Any) -> str:
    """The learning-rate decay a run uses: its recipe's, else ``config.lr_decay``."""
    recipe = _recipe(config)
    return config.lr_decay if recipe is None else recipe.lr_decay


def bn_eval_statistics_of(config: Any) -> str:
    """``batch`` when the run's batch norm keeps no moving averages for evaluation, else ``running``."""
    recipe = _recipe(config)
    return "running" if recipe is None else recipe.bn_eval_statistics
