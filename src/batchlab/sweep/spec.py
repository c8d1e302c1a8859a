"""A sweep: a grid of run configurations, from Python, CLI flags or a TOML file.

A :class:`SweepSpec` holds ``fixed`` values (RunConfig fields shared by every run) and a ``grid``
(RunConfig fields, each with a list of values). :meth:`SweepSpec.configs` expands the grid as a
Cartesian product. The order is fixed: axes vary in :class:`~batchlab.config.RunConfig` field
order (dataset, model, optimizer, batch_size, lr, momentum, …, seed, …) with the last axis varying
fastest, so for the usual grid the seeds of one (optimizer, B, η, λ) point come one after another.

Every expanded configuration is checked before anything runs (RunConfig's validation, the
dataset, model and optimizer registries, the batch size against the training-set size the
dataset registry gives for its split), so one bad value fails the whole sweep upfront with one
line that names the grid point.

Learning-rate scaling (optional): ``lr_scaling = "linear"`` at the top level of a sweep file
applies Goyal et al. 2017's linear scaling rule before the runs are made, η = lr · B / base_batch
(B = the resolved batch size; ``"full"`` counts as the training-set size), so the grid's ``lr``
values are base learning rates at batch ``base_batch``. The scaled η is the run's ``lr`` and
therefore part of its run id. The run's own ``lr_scaling`` and ``base_batch`` fields (in
``[fixed]`` or ``[grid]``, or ``--lr-scaling``/``--base-batch`` on the command line) scale at
training time instead, ``linear`` or ``sqrt``, together with the rest of the learning-rate
schedule (``warmup_epochs``, ``lr_decay``, ``decay_epochs``, ``decay_factor``); a sweep uses one
of the two forms.

Every RunConfig field can be fixed or swept, the large-batch ones too (``ghost_batch``,
``recipe``, ``trust_coefficient``, ``target_train_acc``, ``init_from``, ``momentum_correction``,
``continue_from``); list-valued fields
(``hidden``, ``decay_epochs``) take a list per grid value.

TOML layout (stdlib :mod:`tomllib`)::

    lr_scaling = "linear"        # optional, top level: "none" (default) or "linear"
    base_batch = 256             # optional, the batch size the grid's lr values are meant for

    [fixed]                      # RunConfig fields shared by every run
    dataset = "mnist-5k"
    model = "mlp"
    epochs = 3
    hidden = [16]

    [grid]                       # RunConfig fields swept, each a list
    batch_size = [16, 256, "full"]
    momentum = [0.0, 0.9]
    lr = [0.1]
    seed = [0, 1, 2]
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchlab.config import RunConfig, resolve_batch_size
from batchlab.errors import ConfigError, UserError

# RunConfig fields in declaration order: the order grid axes vary in (last fastest).
CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig))
# Where things live, not what is computed: fixed for the whole sweep, never an axis.
FIXED_ONLY_FIELDS = ("device", "data_dir")
GRID_FIELDS = tuple(name for name in CONFIG_FIELDS if name not in FIXED_ONLY_FIELDS)

LR_SCALING_RULES = ("none", "linear")
# Goyal et al. 2017 state the rule as η = 0.1 · B / 256.
DEFAULT_BASE_BATCH = 256

TOML_TOP_LEVEL_KEYS = ("fixed", "grid", "lr_scaling", "base_batch")


@dataclass(frozen=True)
class SweepSpec:
    """A grid of runs: ``grid`` maps RunConfig fields to lists of values, ``fixed`` maps RunConfig
    fields to one value; fields in neither take RunConfig's defaults.

    Example::

        spec = SweepSpec(grid={"batch_size": [16, 256, "full"], "momentum": [0.0, 0.9],
                               "seed": [0, 1, 2]},
                         fixed={"dataset": "mnist-5k", "epochs": 3})
        len(spec)            # 18
        spec.configs()[0]    # RunConfig(batch_size=16, momentum=0.0, seed=0, …)

    Both mappings are stored as tuples of ``(field, value)`` pairs in RunConfig field order, so a
    spec is immutable and hashable; :attr:`grid_axes` and :attr:`fixed_values` give them back as
    dicts.
    """

    grid: Any = field(default_factory=dict)
    fixed: Any = field(default_factory=dict)
    lr_scaling: str = "none"
    base_batch: int = DEFAULT_BASE_BATCH

    def __post_init__(self) -> None:
        grid = _as_mapping("grid", self.grid)
        fixed = _as_mapping("fixed", self.fixed)
        _check_keys("grid", grid, GRID_FIELDS)
        _check_keys("fixed", fixed, CONFIG_FIELDS)
        both = sorted(set(grid) & set(fixed))
        if both:
            raise ConfigError(
                f"{', '.join(both)} given both as a grid axis and as a fixed value; allowed: one of the two"
            )
        axes = tuple((name, _axis_values(name, grid[name])) for name in CONFIG_FIELDS if name in grid)
        values = tuple((name, _hashable(fixed[name])) for name in CONFIG_FIELDS if name in fixed)
        object.__setattr__(self, "grid", axes)
        object.__setattr__(self, "fixed", values)
        if self.lr_scaling not in LR_SCALING_RULES:
            raise ConfigError(
                f"unknown lr_scaling {self.lr_scaling!r}; allowed: {', '.join(repr(r) for r in LR_SCALING_RULES)}"
            )
        if isinstance(self.base_batch, bool) or not isinstance(self.base_batch, int) or self.base_batch < 1:
            raise ConfigError(f"base_batch {self.base_batch!r} is invalid; allowed: an integer ≥ 1")

    @property
    def grid_axes(self) -> dict[str, tuple]:
        """The swept fields and their values, in the order they vary (last fastest)."""
        return dict(self.grid)

    @property
    def fixed_values(self) -> dict[str, Any]:
        return dict(self.fixed)

    def __len__(self) -> int:
        return math.prod(len(values) for _, values in self.grid)

    def points(self) -> list[dict[str, Any]]:
        """Each grid point as ``{field: value}`` (swept fields only), in expansion order."""
        names = [name for name, _ in self.grid]
        return [dict(zip(names, combo)) for combo in itertools.product(*(values for _, values in self.grid))]

    def configs(self, task: Any = None) -> list[RunConfig]:
        """Every run of the sweep, validated; raises :class:`ConfigError` naming the first bad point.

        With a ``task`` (:class:`batchlab.Task`), every run is configured for the user's model
        and data (:meth:`Task.configure`) and checked against them instead of the registries.
        """
        fixed = self.fixed_values
        configs = []
        for point in self.points():
            try:
                config = RunConfig(**(fixed | point))
                if task is not None:
                    config = task.configure(config)
                config = self._scaled(config, task)
                (check_runnable if task is None else task.check_runnable)(config)
            except UserError as error:
                where = f"grid point {describe_point(point)}" if point else "the sweep's run"
                raise type(error)(f"{where}: {error}") from None
            except TypeError as error:  # a value of the wrong kind for its field (e.g. hidden = 3)
                raise ConfigError(f"grid point {describe_point(point)}: {error}") from None
            configs.append(config)
        return configs

    def _scaled(self, config: RunConfig, task: Any = None) -> RunConfig:
        if self.lr_scaling == "none":
            return config
        if config.lr_scaling != "none":
            raise ConfigError(
                f"the sweep's top-level lr_scaling {self.lr_scaling!r} and the run's lr_scaling "
                f"{config.lr_scaling!r} would scale lr twice; allowed: one of the two"
            )
        n_train = task.n_train if task is not None else None
        batch = resolve_batch_size(config.batch_size, n_train or training_set_size(config))
        return config.replace(lr=config.lr * batch / self.base_batch)

    # ----------------------------------------------------------------------------- reading

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "the sweep file") -> "SweepSpec":
        """A spec from the TOML layout (see the module docstring) already parsed into a dict."""
        unknown = sorted(set(data) - set(TOML_TOP_LEVEL_KEYS))
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(unknown)}; allowed at the top level: "
                f"{', '.join(TOML_TOP_LEVEL_KEYS)}"
            )
        for section in ("fixed", "grid"):
            if section in data and not isinstance(data[section], Mapping):
                raise ConfigError(f"{source}: [{section}] must be a table of RunConfig fields; got {data[section]!r}")
        try:
            return cls(
                grid=dict(data.get("grid", {})),
                fixed=dict(data.get("fixed", {})),
                lr_scaling=data.get("lr_scaling", "none"),
                base_batch=data.get("base_batch", DEFAULT_BASE_BATCH),
            )
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None

    @classmethod
    def from_toml(cls, path: str | Path) -> "SweepSpec":
        """Read a sweep file (TOML, see the module docstring)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"cannot read sweep file {path} ({error.strerror}); allowed: a readable TOML file") from None
        except UnicodeDecodeError:
            raise ConfigError(f"sweep file {path} is not UTF-8 text; allowed: a TOML file") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"sweep file {path} is not valid TOML ({error}); allowed: [fixed] and [grid] tables") from None
        return cls.from_mapping(data, source=str(path))

    def with_overrides(self, *, grid: Mapping[str, Any] | None = None, fixed: Mapping[str, Any] | None = None) -> "SweepSpec":
        """A copy where each field named in ``grid`` or ``fixed`` is replaced (moving between the
        two if needed) — how command-line flags override a sweep file."""
        grid, fixed = dict(grid or {}), dict(fixed or {})
        new_grid = {k: v for k, v in self.grid if k not in fixed} | grid
        new_fixed = {k: v for k, v in self.fixed if k not in grid} | fixed
        return dataclasses.replace(self, grid=new_grid, fixed=new_fixed)


# ----------------------------------------------------------------------------- checks


def check_runnable(config: RunConfig) -> None:
    """What RunConfig cannot check alone: registry names, B against the training-set size, the
    learning-rate schedule and ghost batches against the run's updates and batches, and the
    optimizer's own rules (built on a dummy parameter, so exactly the trainer's checks)."""
    import torch

    from batchlab.data import get_spec
    from batchlab.models.registry import get_model_spec
    from batchlab.training.methods import build_run_optimizer, run_shape

    get_spec(config.dataset)
    get_model_spec(config.model)
    shape = run_shape(config, training_set_size(config))
    build_run_optimizer(config, [torch.zeros(1, requires_grad=True)], shape)


def training_set_size(config: RunConfig) -> int:
    """Training examples left after the validation split, from the dataset registry (the same
    rule as :func:`batchlab.data.prepare_splits`: N − round(val_fraction · N))."""
    from batchlab.data import get_spec
    from batchlab.data.splits import validation_size

    n = get_spec(config.dataset).n_train
    return n - validation_size(config.val_fraction, n)


def describe_point(point: Mapping[str, Any]) -> str:
    return " ".join(f"{name}={_show(value)}" for name, value in point.items())


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _as_mapping(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        return dict(value)  # the stored form, e.g. from dataclasses.replace
    raise ConfigError(f"sweep {name} must map RunConfig fields to values; got {value!r}")


def _check_keys(section: str, data: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise ConfigError(f"unknown {section} key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def _axis_values(name: str, values: Any) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ConfigError(f"grid axis {name} must be a list of values; got {values!r}")
    values = tuple(_hashable(v) for v in values)
    if not values:
        raise ConfigError(f"grid axis {name} is empty; allowed: a list of one or more values")
    seen: list[Any] = []
    for value in values:
        if any(_same(value, other) for other in seen):
            raise ConfigError(f"grid axis {name} lists {value!r} twice; allowed: distinct values")
        seen.append(value)
    return values


def _same(a: Any, b: Any) -> bool:
    # 0 and 0.0 are the same momentum; True and 1 are not the same value of a flag.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    return a == b


def _hashable(value: Any) -> Any:
    # TOML and JSON give lists (hidden = [512, 512]); RunConfig keeps tuples.
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value
