"""A user's own model and data as a :class:`Task`, trained, stored and resumed like any run.

::

    task = batchlab.Task(make_model, (x_train, y_train, x_val, y_val), name="my-mlp")
    result = batchlab.train(batchlab.RunConfig(batch_size=32, lr=0.05, epochs=5), task=task,
                            store="runs.db")

The rules:

* **Model**: ``model`` is a function of no arguments that returns a new ``nn.Module``. Each run
  calls it after ``torch.manual_seed(config.seed)``, on the CPU, and moves the module to the
  training device, so a seed gives the same initial weights everywhere (as for registry models).
* **Data**: tensors or Datasets, see :mod:`batchlab.task.data`; kept on the device when it fits,
  streamed in the same batch order otherwise.
* **Loss and metric**: cross-entropy and accuracy by default; any ``loss(outputs, targets)``
  returning the batch mean as a scalar tensor and any ``metric(outputs, targets)`` returning a
  batch mean, or their names (``"mse"``, ``"mae"``, …: :mod:`batchlab.training.objective`). The
  metric's name keys the metrics (``val_<metric_name>``); accuracy keeps ``val_acc``.
* **Checks, before anything is stored** (one-line :class:`~batchlab.errors.UserError`): the
  factory returns a new module each call; the data's forms, lengths and shapes; the model runs
  on a first batch of two training examples; with cross-entropy, targets are int64 class indices
  in [0, C) for the model's C outputs, in every split; loss and metric run on that batch.
* **Origin**: a task built from files (:func:`batchlab.task.files.task_from_files`) knows them
  (:attr:`Task.origin`); each run keeps that in its environment, so that later measurements
  (``batchlab hessian RUN``) can build the task again (:mod:`batchlab.training.restore`).
* **Identity**: a run's configuration gets ``model = "user:<name>"`` and
  ``dataset = "user:<data_name>"``; ``val_fraction`` and ``split_seed`` are set to 0 (the
  validation data is the one given), and ``hidden`` and ``train_subset`` do not apply. The run id
  also holds the model's fingerprint (with the loss's and the metric's) and the data's
  (:mod:`batchlab.task.model`, :mod:`batchlab.task.data`): change either and it is a new run;
  a finished run is returned from the store only for the same model, data, loss and metric.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from batchlab.config import RunConfig, resolve_batch_size
from batchlab.data.splits import Splits
from batchlab.errors import ConfigError, DataError
from batchlab.task.data import UserData
from batchlab.task.model import (
    build_module,
    callable_fingerprint,
    has_batch_norm,
    has_dropout,
    model_fingerprint,
    one_line,
    packability,
)
from batchlab.training.objective import (
    ACCURACY,
    CLASSIFICATION,
    LOSSES,
    METRIC_KEYS,
    METRICS,
    Objective,
    accuracy,
    is_named,
)

USER_PREFIX = "user:"
PROBE_EXAMPLES = 2
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+\-]{0,79}")
_METRIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")


class Task:
    """A user's model factory, data, loss and metric (see the module docstring).

    Args:
        model: a function of no arguments returning a new ``nn.Module``.
        data: the splits (:mod:`batchlab.task.data` lists the forms).
        name: the model's name in run ids and tables (default: the factory's ``__name__``).
        data_name: the data's name (default ``data``).
        loss: ``loss(outputs, targets)`` → batch-mean scalar tensor, or a name: ``"cross_entropy"``
            (the default), ``"mse"``.
        metric: ``metric(outputs, targets)`` → batch mean, or a name: ``"accuracy"`` (the
            default), ``"mse"``, ``"mae"``; with ``loss="mse"`` and no metric, ``"mse"``.
        loss_name, metric_name: their names (default: the callables' ``__name__``).
        keep_on_device: True keeps the data on the device, False always streams it, None
            decides by size.
        workers: DataLoader worker processes when a Dataset is streamed (0: this process).
    """

    def __init__(
        self,
        model: Callable[[], nn.Module],
        data: Any,
        *,
        name: str | None = None,
        data_name: str | None = None,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | str | None = None,
        metric: Callable[[torch.Tensor, torch.Tensor], Any] | str | None = None,
        loss_name: str | None = None,
        metric_name: str | None = None,
        keep_on_device: bool | None = None,
        workers: int = 0,
    ) -> None:
        if not callable(model):
            raise ConfigError(f"model is a {type(model).__name__}; allowed: a function returning a torch.nn.Module")
        self.factory = model
        self.name = _checked_name(name or getattr(model, "__name__", ""), "model name", "name")
        self.data_name = _checked_name(data_name or "data", "data name", "data_name")
        self.objective = _objective(loss, metric, loss_name, metric_name)
        if keep_on_device not in (None, True, False):
            raise ConfigError(f"keep_on_device {keep_on_device!r} is invalid; allowed: True, False or None (by size)")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ConfigError(f"workers {workers!r} is invalid; allowed: an integer ≥ 0")
        self.data = UserData(data, keep_on_device=keep_on_device, workers=workers)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            probe = build_module(model, self.name)
            if build_module(model, self.name) is probe:
                raise ConfigError(f"model factory {self.name}() returned the same module twice; allowed: a "
                                  "function that builds a new nn.Module on every call")
        self._probe = probe
        self.output_width = self._check_first_batch(probe)
        self.model_fingerprint = {
            "name": self.name,
            **model_fingerprint(probe, model),
            "loss": _callable_identity(self.objective.loss, self.objective.loss_name),
            "metric": _callable_identity(self.objective.metric, self.objective.metric_name),
        }
        self.data_fingerprint = self.data.fingerprint(self.data_name)
        # Where the model and data came from, when files gave them ({"model_file": "PATH.py:FUNCTION",
        # "data_file": …}, absolute paths; set by task_from_files); None for a Task built in Python.
        self.origin: dict[str, str] | None = None
        self._splits: dict[str, Splits] = {}
        self._packability: tuple[bool, str] | None = None

    def __repr__(self) -> str:
        return (f"Task({self.model_id}, {self.dataset_id}, n_train={self.n_train}, "
                f"loss={self.objective.loss_name}, metric={self.objective.metric_name})")

    # ------------------------------------------------------------------ identity

    @property
    def model_id(self) -> str:
        return USER_PREFIX + self.name

    @property
    def dataset_id(self) -> str:
        return USER_PREFIX + self.data_name

    @property
    def n_train(self) -> int:
        return self.data.n_train

    def configure(self, config: RunConfig) -> RunConfig:
        """``config`` for this task (see the module docstring, Identity); idempotent."""
        if config.hidden is not None:
            raise ConfigError(f"hidden widths {list(config.hidden)} do not apply to the user model "
                              f"{self.name}; allowed: leave hidden unset")
        if config.train_subset is not None:
            raise ConfigError(f"train_subset does not apply to the user data {self.data_name}; allowed: give "
                              "the subset as the data")
        return config.replace(model=self.model_id, dataset=self.dataset_id, val_fraction=0.0, split_seed=0)

    def check_runnable(self, config: RunConfig) -> None:
        """What a sweep checks for every grid point before training: the optimizer's own rules
        and the batch size against the training-set size."""
        from batchlab.optim import build_optimizer

        build_optimizer(config.optimizer, [torch.zeros(1, requires_grad=True)], lr=config.lr,
                        momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay)
        resolve_batch_size(config.batch_size, self.n_train)

    # ------------------------------------------------------------------ what the trainers use

    def build_model(self) -> nn.Module:
        """A new module from the factory; the caller seeds the global RNG first."""
        return build_module(self.factory, self.name)

    def splits(self, device: torch.device) -> Splits:
        """The data for ``device``: tensors on it when it fits, streamed otherwise (cached)."""
        key = str(device)
        if key not in self._splits:
            on_device = self.data.fits_on(device)
            parts = {part: self.data.split_on(part, device, on_device) for part in ("train", "val", "test")}
            self._splits[key] = Splits(
                parts["train"], parts["val"], parts["test"],  # type: ignore[arg-type]
                input_shape=self.data.input_shape,  # type: ignore[arg-type]
                num_classes=self.output_width or 0,
                name=self.dataset_id,
                origin=("task", self.dataset_id),
            )
        return self._splits[key]

    @property
    def has_batch_norm(self) -> bool:
        """Whether the model has batch-norm running statistics (what a data-parallel plan asks)."""
        return has_batch_norm(self._probe)

    @property
    def has_dropout(self) -> bool:
        """Whether the model has dropout with p > 0."""
        return has_dropout(self._probe)

    def why_not_packable(self, device: torch.device) -> str | None:
        """None when runs of this task can train packed on ``device``; else the reason."""
        if not self.data.fits_on(device):
            return f"user model {self.name}: its data is streamed (too large for the {device.type}), trained one at a time"
        if self._packability is None:
            x, y = self.data.splits["train"].first(PROBE_EXAMPLES)
            self._packability = packability(self._probe, self.objective.loss, x, y)
        packable, reason = self._packability
        return None if packable else f"user model {self.name}: {reason}, trained one at a time"

    # ------------------------------------------------------------------ checks

    def _check_first_batch(self, model: nn.Module) -> int | None:
        """Run the model, loss and metric on the first training examples; check the targets of
        every split against the model's outputs. Returns the output width C (None for outputs
        of one dimension)."""
        x, y = self.data.splits["train"].first(PROBE_EXAMPLES)
        model.eval()
        try:
            with torch.no_grad():
                outputs = model(x)
        except Exception as error:
            raise ConfigError(f"the model {self.name} failed on a first batch of training inputs "
                              f"{list(x.shape)} {str(x.dtype).removeprefix('torch.')}: {one_line(error)}") from None
        finally:
            model.train()
        if not isinstance(outputs, torch.Tensor) or outputs.ndim == 0 or len(outputs) != len(x):
            shape = list(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__
            raise ConfigError(f"the model {self.name} returned {shape} for a batch of {len(x)}; allowed: a tensor "
                              "with one row per example")
        width = int(outputs.shape[1]) if outputs.ndim >= 2 else None
        if self.objective.loss is F.cross_entropy:
            self._check_class_targets(width)
        with torch.no_grad():
            try:
                value = self.objective.loss(outputs, y)
            except Exception as error:
                raise ConfigError(f"loss {self.objective.loss_name} failed on a first batch (outputs "
                                  f"{list(outputs.shape)}, targets {list(y.shape)}): {one_line(error)}") from None
            if not isinstance(value, torch.Tensor) or value.numel() != 1 or not value.is_floating_point():
                raise ConfigError(f"loss {self.objective.loss_name} returned {value!r:.60}; allowed: the batch mean "
                                  "as a floating-point scalar tensor")
            try:
                float(self.objective.metric(outputs, y))
            except Exception as error:
                raise ConfigError(f"metric {self.objective.metric_name} failed on a first batch (outputs "
                                  f"{list(outputs.shape)}, targets {list(y.shape)}): {one_line(error)}; allowed: "
                                  "metric(outputs, targets) returning a number") from None
        return width

    def _check_class_targets(self, width: int | None) -> None:
        if width is None:
            raise ConfigError(f"the model {self.name} returns one number per example, but cross-entropy needs "
                              "(n, C) class scores; allowed: C outputs, or a loss= for other targets")
        for part, split in self.data.splits.items():
            if split.y_dtype != torch.int64:
                raise DataError(f"{part} targets are {str(split.y_dtype).removeprefix('torch.')}; allowed: int64 "
                                f"class indices in [0, {width}) for cross-entropy (y.long())")
            if split.y_min < 0 or split.y_max >= width:
                raise DataError(f"{part} targets lie in [{split.y_min:g}, {split.y_max:g}] but the model has {width} "
                                f"outputs; allowed: class indices in [0, {width})")


def _objective(loss, metric, loss_name: str | None, metric_name: str | None) -> Objective:
    """The task's :class:`Objective`: ``loss`` and ``metric`` are callables or names of
    :data:`~batchlab.training.objective.LOSSES` / :data:`~batchlab.training.objective.METRICS`.
    Without a metric: accuracy, or for a named regression loss the metric of the same name
    (``loss="mse"`` reports ``val_mse``)."""
    loss, named_loss = _named(loss, LOSSES, "loss", "loss(outputs, targets)")
    metric, named_metric = _named(metric, METRICS, "metric", "metric(outputs, targets)")
    if loss is None and metric is None and loss_name is None and metric_name is None:
        return CLASSIFICATION
    if metric is None and named_loss is not None and named_loss in METRICS and named_loss != "cross_entropy":
        metric, named_metric = METRICS[named_loss], named_loss
    loss = loss if loss is not None else F.cross_entropy
    metric = metric if metric is not None else accuracy
    if loss_name is None:
        loss_name = named_loss or (CLASSIFICATION.loss_name if loss is F.cross_entropy else _callable_name(loss))
    if metric_name is None:
        metric_name = METRIC_KEYS[named_metric] if named_metric else (
            ACCURACY if metric is accuracy else _callable_name(metric))
    loss_name = _checked_name(loss_name, "loss name", "loss_name")
    if not _METRIC_NAME.fullmatch(metric_name) or metric_name == "loss":
        raise ConfigError(f"metric name {metric_name!r} cannot name a column; allowed: a letter, then letters, "
                          "digits or _ (metric_name=...), not 'loss'")
    return Objective(loss, metric, loss_name, metric_name)


def _named(value: Any, known: dict[str, Callable], what: str, form: str) -> tuple[Callable | None, str | None]:
    """``(function, its name when given by name)`` of a loss or metric given as a callable, a
    name of ``known``, or None."""
    if isinstance(value, str):
        if value not in known:
            raise ConfigError(f"{what} {value!r} is unknown; allowed: {', '.join(known)} or a function {form}")
        return known[value], value
    if value is not None and not callable(value):
        raise ConfigError(f"{what} is a {type(value).__name__}; allowed: {', '.join(known)} or a function {form}")
    return value, None


def _callable_name(function: Any) -> str:
    return getattr(function, "__name__", type(function).__name__)


def _callable_identity(function: Any, name: str) -> dict[str, Any]:
    """A user's callable by name and code; ours (cross-entropy, accuracy) by name only, so that a
    new PyTorch release does not change every run id."""
    if is_named(function):
        return {"name": name}
    return callable_fingerprint(function, name)


def _checked_name(name: str, what: str, argument: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{what} {name!r} is invalid; allowed: 1–80 letters, digits or . _ : + - "
                          f"({argument}=...)")
    return name
