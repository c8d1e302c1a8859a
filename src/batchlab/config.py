"""Run configuration: one frozen dataclass, its validation, and the run id that hashes it.

A run is identified by the SHA-256 of its *resolved* configuration (every field that changes the
numbers, with defaults filled in and the device reduced to its type), so the same experiment asked
for twice, by ``batchlab train`` alone or inside a packed sweep, gets the same id and is found in
the store instead of being trained again. Fields that only say *where* things live (data
directory) are not part of the identity.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from batchlab.errors import ConfigError, DataError
from batchlab.optim.recipes import RECIPES
from batchlab.optim.registry import OPTIMIZERS, get_optimizer_spec
from batchlab.optim.schedules import DECAYS as LR_DECAYS
from batchlab.optim.schedules import SCALINGS as LR_SCALINGS

SHUFFLE_MODES = ("epoch", "once", "none")
RUN_ID_LENGTH = 16
FULL_BATCH = "full"
# Seeds feed torch.manual_seed and torch.Generator.manual_seed, which take a signed 64-bit value
# (larger integers raise OverflowError there, or wrap around silently in NumPy).
MAX_SEED = 2**63 - 1

# Fields that do not change what a run computes, so they are left out of its id.
_NOT_IN_IDENTITY = ("data_dir",)
# Fields added after the first release, with the value that reproduces what runs did before
# them. At that value they are left out of the id, so the runs of an older store keep their ids.
_ADDED_LATER = {
    "train_subset": None,
    "lr_scaling": "none",
    "base_batch": None,
    "warmup_epochs": 0.0,
    "lr_decay": "none",
    "decay_epochs": None,
    "decay_factor": 0.1,
    "ghost_batch": None,
    "recipe": None,
    "trust_coefficient": None,
    "target_train_acc": None,
    "init_from": None,
    "momentum_correction": False,
    "continue_from": None,
}


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run.

    ``batch_size`` is an integer 1 … N or ``"full"`` (one update per epoch). ``momentum`` is the
    lecture's λ in m ← λm − ηg, θ ← θ + m (0 gives plain gradient descent). ``shuffle`` is
    ``epoch`` (a new permutation before every epoch, the lecture's), ``once`` (one permutation kept
    for all epochs) or ``none`` (dataset order). ``stop_patience`` > 0 ends training once the
    training loss has not improved for that many epochs (Keskar et al.'s "until the loss stops
    improving"); ``max_updates`` caps the number of updates (a fixed update budget).
    ``train_subset`` trains on n examples of the training split only (a seeded subset, see
    :func:`batchlab.data.identity.load_splits`), so a quick experiment can use a large dataset
    honestly: the subset is part of the run id.

    Large-batch methods (all off by default, and then left out of the run id):

    * ``lr_scaling`` ``none``/``linear``/``sqrt`` scales ``lr`` (tuned for ``base_batch``) to B:
      η = lr·B/base_batch or lr·√(B/base_batch) (Goyal et al. 2017; Hoffer et al. 2017);
    * ``warmup_epochs``: Goyal et al.'s gradual warm-up, a linear ramp over that many epochs from
      ``lr`` to the scaled rate (from 0 when ``lr_scaling`` is ``none``);
    * ``lr_decay`` ``none``/``step``/``cosine``/``slow-start``: step decay by ``decay_factor``
      at each of ``decay_epochs``, cosine decay to 0, or Akiba et al.'s slow start;
      :func:`batchlab.training.methods.schedule_for` turns all of these into the rate of every
      update;
    * ``ghost_batch`` G: ghost batch norm over G examples at a time (Hoffer et al. 2017);
    * ``recipe="akiba"``: Akiba et al. 2017's RMSprop warm-up, slow start and batch norm without
      moving averages (:mod:`batchlab.training.methods`);
    * ``trust_coefficient``: LARS's η (None: the optimizer's default);
    * ``momentum_correction``: Goyal et al.'s momentum correction, m ← m·η_new/η_old whenever
      the rate changes (warm-up, decay). The lecture's m ← λm − ηg carries η inside m, so without
      it a warm-up's first steps after a rise move with the old, smaller rate (Goyal et al. 2017,
      §2.1); optimizer ``momentum`` (or ``sgd``) with λ > 0 only;
    * ``target_train_acc``: the run ends at the first epoch whose training accuracy reaches it;
    * ``init_from``: the id of a finished run in the same store whose final weights start this
      run (SWAP's second phase starts from its first), with a fresh optimizer;
    * ``continue_from``: the id of a finished run in the same store that this run trains on, with
      the same optimizer and settings: it starts from that run's final training state — weights,
      optimizer state (momentum buffer, Adam's moments and step count), update count, epoch
      count, data order, metrics history and initial loss — and ends at ``epochs`` epochs *in
      all*, so it is the run that would have gone on uninterrupted
      (:mod:`batchlab.training.continuation` states the rule and what must match).
    """

    dataset: str = "mnist-5k"
    model: str = "mlp"
    optimizer: str = "momentum"
    batch_size: int | str = 64
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    epochs: int = 5
    seed: int = 0
    val_fraction: float = 0.1
    split_seed: int = 0
    shuffle: str = "epoch"
    drop_last: bool = False
    hidden: tuple[int, ...] | None = None
    max_updates: int | None = None
    stop_patience: int = 0
    train_subset: int | None = None
    lr_scaling: str = "none"
    base_batch: int | None = None
    warmup_epochs: float = 0.0
    lr_decay: str = "none"
    decay_epochs: tuple[int, ...] | None = None
    decay_factor: float = 0.1
    ghost_batch: int | None = None
    recipe: str | None = None
    trust_coefficient: float | None = None
    target_train_acc: float | None = None
    init_from: str | None = None
    momentum_correction: bool = False
    continue_from: str | None = None
    device: str = "auto"
    data_dir: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("hidden", "decay_epochs"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        validate_config(self)

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in ("hidden", "decay_epochs"):
            if data[name] is not None:
                data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown config field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}"
            )
        return cls(**data)


def parse_batch_size(value: Any, *, allowed: str = "allowed: an integer 1 … N (training-set size) or 'full'") -> int | str:
    """Accept an integer ≥ 1 (also as text, or a float with an integer value) or ``"full"``;
    anything else is a one-line error ending in ``allowed``."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == FULL_BATCH:
            return FULL_BATCH
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"batch size {value!r} is not an integer; {allowed}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(f"batch size {value!r} is not an integer; {allowed}")
    if value < 1:
        raise ConfigError(f"batch size {value} is too small; {allowed}")
    return value


def resolve_batch_size(batch_size: Any, n_train: int, *, larger: str = "refuse") -> int:
    """The number of examples per batch on a training set of ``n_train`` examples.

    ``"full"`` means ``n_train`` (one update per epoch); an integer (or its text, see
    :func:`parse_batch_size`) is itself and must lie in 1 … n_train, unless ``larger="keep"``
    (a timing on synthetic data of any size takes B > n_train as it is). Anything else is a
    :class:`ConfigError` that names the allowed range for this training set.
    """
    if n_train < 1:
        raise DataError(f"the training set is empty ({n_train} examples); nothing to make batches of")
    allowed = f"allowed: 1 … {n_train} or '{FULL_BATCH}'"
    parsed = parse_batch_size(batch_size, allowed=allowed)
    if parsed == FULL_BATCH:
        return n_train
    if parsed > n_train and larger != "keep":  # type: ignore[operator]
        raise ConfigError(f"batch size {parsed} is larger than the training set ({n_train} examples); {allowed}")
    return parsed  # type: ignore[return-value]


def validate_config(config: RunConfig) -> None:
    """Check every field that can be checked without loading data; raise :class:`ConfigError`."""
    object.__setattr__(config, "batch_size", parse_batch_size(config.batch_size))
    _finite_number("learning rate", config.lr)
    if config.lr < 0:
        raise ConfigError(f"learning rate {config.lr} is negative; allowed: lr ≥ 0")
    _finite_number("momentum", config.momentum)
    if not 0.0 <= config.momentum < 1.0:
        raise ConfigError(f"momentum {config.momentum} is outside [0, 1); allowed: 0 ≤ momentum < 1")
    _finite_number("weight decay", config.weight_decay)
    if config.weight_decay < 0:
        raise ConfigError(f"weight decay {config.weight_decay} is negative; allowed: weight_decay ≥ 0")
    if config.nesterov and config.momentum == 0:
        raise ConfigError("Nesterov momentum needs momentum > 0; allowed: --nesterov with 0 < momentum < 1")
    if not isinstance(config.momentum_correction, bool):
        raise ConfigError(f"momentum correction {config.momentum_correction!r} is not true or false; allowed: a boolean")
    spec = get_optimizer_spec(config.optimizer)
    if config.momentum_correction and (not spec.has_momentum_correction or config.momentum == 0):
        raise ConfigError(
            f"momentum correction needs the lecture's momentum rule with λ > 0 (got optimizer {config.optimizer!r}, "
            f"momentum {config.momentum}); allowed: --optimizer momentum with 0 < momentum < 1 (torch-sgd keeps η "
            "outside its buffer and needs no correction)"
        )
    _positive_int("epochs", config.epochs)
    check_seed(config.seed)
    check_seed(config.split_seed, "split seed")
    _finite_number("validation fraction", config.val_fraction)
    if not 0.0 <= config.val_fraction < 1.0:
        raise ConfigError(
            f"validation fraction {config.val_fraction} is outside [0, 1); allowed: 0 ≤ val_fraction < 1"
        )
    if config.shuffle not in SHUFFLE_MODES:
        raise ConfigError(f"unknown shuffle mode {config.shuffle!r}; allowed: {', '.join(SHUFFLE_MODES)}")
    if config.max_updates is not None:
        _positive_int("max updates", config.max_updates)
    if config.train_subset is not None:
        _positive_int("training subset", config.train_subset)
    if isinstance(config.stop_patience, bool) or not isinstance(config.stop_patience, int) or config.stop_patience < 0:
        raise ConfigError(f"stop patience {config.stop_patience!r} is invalid; allowed: an integer ≥ 0 (0 = off)")
    check_widths(config.hidden)
    _validate_schedule(config)
    _validate_large_batch_methods(config)


def _validate_schedule(config: RunConfig) -> None:
    """The learning-rate fields: scaling, warm-up and decay (what needs the number of updates per
    epoch is checked by :func:`batchlab.training.methods.schedule_for`)."""
    if config.lr_scaling not in LR_SCALINGS:
        raise ConfigError(f"unknown lr_scaling {config.lr_scaling!r}; allowed: {', '.join(LR_SCALINGS)}")
    if config.base_batch is not None:
        _positive_int("base batch", config.base_batch)
    if config.lr_scaling != "none" and config.base_batch is None:
        raise ConfigError(
            f"lr_scaling {config.lr_scaling!r} needs base_batch, the batch size lr was tuned for; "
            "allowed: --base-batch N with N ≥ 1"
        )
    if config.lr_scaling == "none" and config.base_batch is not None:
        raise ConfigError(
            f"base_batch {config.base_batch} is given but lr_scaling is 'none'; allowed: base_batch "
            "only with lr_scaling linear or sqrt"
        )
    _finite_number("warm-up epochs", config.warmup_epochs)
    object.__setattr__(config, "warmup_epochs", float(config.warmup_epochs))
    if not 0.0 <= config.warmup_epochs <= config.epochs:
        raise ConfigError(
            f"warm-up of {config.warmup_epochs:g} epochs does not fit the run of {config.epochs} epochs; "
            f"allowed: 0 ≤ warmup_epochs ≤ {config.epochs}"
        )
    if config.lr_decay not in LR_DECAYS:
        raise ConfigError(f"unknown lr_decay {config.lr_decay!r}; allowed: {', '.join(LR_DECAYS)}")
    if config.lr_decay == "step":
        milestones = config.decay_epochs
        if not milestones:
            raise ConfigError(f"step decay needs decay_epochs; allowed: increasing epochs in 1 … {config.epochs - 1}")
        if any(isinstance(m, bool) or not isinstance(m, int) for m in milestones) or list(milestones) != sorted(
            set(milestones)
        ) or not all(0 < m < config.epochs for m in milestones):
            raise ConfigError(
                f"decay epochs {list(milestones)} are invalid; allowed: strictly increasing whole epochs in "
                f"1 … {config.epochs - 1}"
            )
    elif config.decay_epochs is not None:
        raise ConfigError(f"decay_epochs are given but lr_decay is {config.lr_decay!r}; allowed with: lr_decay 'step'")
    _finite_number("decay factor", config.decay_factor)
    object.__setattr__(config, "decay_factor", float(config.decay_factor))
    if not 0.0 < config.decay_factor <= 1.0:
        raise ConfigError(f"decay factor {config.decay_factor} is outside (0, 1]; allowed: 0 < decay_factor ≤ 1")
    if config.decay_factor != 0.1 and config.lr_decay != "step":
        raise ConfigError(
            f"decay factor {config.decay_factor} is given but lr_decay is {config.lr_decay!r}; allowed with: lr_decay 'step'"
        )


def _validate_large_batch_methods(config: RunConfig) -> None:
    """Ghost batch norm, the recipe, LARS's trust coefficient, the accuracy target, init_from and
    continue_from."""
    if config.ghost_batch is not None:
        _positive_int("ghost batch", config.ghost_batch)
        if not _has_batch_norm(config.model):
            raise ConfigError(
                f"ghost batch norm needs a model with batch norm, and {config.model} has none; "
                f"allowed: {_models_with_batch_norm()}"
            )
        if isinstance(config.batch_size, int) and config.batch_size % config.ghost_batch:
            raise ConfigError(
                f"ghost batch {config.ghost_batch} does not divide the batch size {config.batch_size}; "
                f"allowed: a divisor of {config.batch_size}"
            )
    if config.recipe is not None:
        if config.recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {config.recipe!r}; allowed: {', '.join(RECIPES)}")
        if config.optimizer != "momentum" or config.nesterov:
            raise ConfigError(
                f"recipe {config.recipe!r} brings its own optimizer (RMSprop warm-up handing over to the "
                "lecture's momentum); allowed: optimizer 'momentum' without Nesterov"
            )
        if config.lr_decay != "none":
            raise ConfigError(
                f"recipe {config.recipe!r} brings its own learning-rate decay (slow start); allowed: lr_decay 'none'"
            )
        if config.momentum_correction:
            raise ConfigError(f"recipe {config.recipe!r} brings its own optimizer, without momentum correction; "
                              "allowed: momentum_correction false")
        if not _has_batch_norm(config.model):
            raise ConfigError(
                f"recipe {config.recipe!r} includes batch norm without moving averages, and {config.model} has no "
                f"batch norm; allowed: {_models_with_batch_norm()}"
            )
    if config.trust_coefficient is not None:
        _finite_number("trust coefficient", config.trust_coefficient)
        object.__setattr__(config, "trust_coefficient", float(config.trust_coefficient))
        if "trust_coefficient" not in get_optimizer_spec(config.optimizer).options:
            takers = ", ".join(repr(name) for name, spec in OPTIMIZERS.items() if "trust_coefficient" in spec.options)
            raise ConfigError(
                f"optimizer {config.optimizer!r} has no trust coefficient; allowed with: optimizer {takers} "
                "(LAMB's layer-wise ratio ‖x‖/‖r + λx‖ has none)"
            )
        if config.trust_coefficient <= 0:
            raise ConfigError(f"trust coefficient {config.trust_coefficient} is not positive; allowed: > 0")
    if config.target_train_acc is not None:
        _finite_number("target training accuracy", config.target_train_acc)
        object.__setattr__(config, "target_train_acc", float(config.target_train_acc))
        if not 0.0 < config.target_train_acc <= 1.0:
            raise ConfigError(
                f"target training accuracy {config.target_train_acc} is outside (0, 1]; allowed: 0 < target_train_acc ≤ 1"
            )
    for name in ("init_from", "continue_from"):
        text = getattr(config, name)
        if text is not None and not (isinstance(text, str) and len(text) == RUN_ID_LENGTH
                                     and all(c in "0123456789abcdef" for c in text)):
            raise ConfigError(
                f"{name} {text!r} is not a run id; allowed: the {RUN_ID_LENGTH} hex digits of a run in the same "
                "store (`batchlab runs`)"
            )


def _has_batch_norm(model: str) -> bool:
    """Whether the registered ``model`` has batch norm (an unknown name passes here: it is
    reported, with the known names, where the model is built)."""
    from batchlab.models.registry import MODELS  # imported only when needed: the registry imports torch

    spec = MODELS.get(model)
    return spec is None or spec.has_batch_norm


def _models_with_batch_norm() -> str:
    from batchlab.models.registry import MODELS

    return ", ".join(name for name, spec in MODELS.items() if spec.has_batch_norm)


def _finite_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} {value!r} is not a finite number")


def _int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} {value!r} is not an integer")


def check_seed(value: Any, name: str = "seed") -> int:
    """``value`` if it is an integer in 0 … 2⁶³ − 1 (:data:`MAX_SEED`), else :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} {value!r} is not an integer; allowed: an integer 0 … 2**63-1")
    if not 0 <= value <= MAX_SEED:
        shown = str(value) if len(str(value)) <= 24 else f"{str(value)[:12]}…({len(str(value))} digits)"
        raise ConfigError(f"{name} {shown} is out of range; allowed: an integer 0 … 2**63-1 ({MAX_SEED})")
    return value


def check_widths(hidden: Any) -> tuple[int, ...] | None:
    """Hidden widths as a tuple, each an integer ≥ 1, or ``None`` (the model's default); anything
    else is a :class:`ConfigError` (``nn.Linear`` only warns about a width of 0)."""
    if hidden is None:
        return None
    widths = tuple(hidden)
    if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ConfigError(f"hidden widths {widths!r} are invalid; allowed: one or more integers ≥ 1")
    return widths


def _positive_int(name: str, value: Any) -> None:
    _int(name, value)
    if value < 1:
        raise ConfigError(f"{name} {value} is too small; allowed: an integer ≥ 1")


def resolved_identity(
    config: RunConfig,
    device_type: str,
    data_fingerprint: dict[str, Any] | None = None,
    execution: dict[str, Any] | None = None,
    model_fingerprint: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields that define what a run computes, with the device reduced to its type.

    ``device_type`` is ``cpu``/``cuda``/``mps``: numbers differ between device types, not between
    two GPUs of one machine, so ``cuda:0`` and ``cuda:1`` share an id. ``data_fingerprint``
    identifies data that the configuration's registry fields do not describe (see
    :func:`batchlab.data.identity.data_fingerprint`); None for registry data. ``execution``
    names a way of training that computes other numbers than one process would (see
    :func:`batchlab.distributed.plan.plan_data_parallel`); None when it computes the same.
    ``model_fingerprint`` identifies a user's model, loss and metric
    (:class:`batchlab.Task`); None for registry models, whose name and ``hidden`` say it all.
    Each enters the identity only when given, so registry runs keep their ids.
    """
    data = config.to_dict()
    for key in _NOT_IN_IDENTITY:
        data.pop(key, None)
    for key, default in _ADDED_LATER.items():
        if data.get(key) == default:
            data.pop(key, None)
    if data_fingerprint is not None:
        data["data"] = data_fingerprint
    if execution is not None:
        data["execution"] = execution
    if model_fingerprint is not None:
        data["user_model"] = model_fingerprint
    data["device"] = device_type
    data["lr"] = float(data["lr"])
    data["momentum"] = float(data["momentum"])
    data["weight_decay"] = float(data["weight_decay"])
    data["val_fraction"] = float(data["val_fraction"])
    return data


def run_id(
    config: RunConfig,
    device_type: str,
    data_fingerprint: dict[str, Any] | None = None,
    execution: dict[str, Any] | None = None,
    model_fingerprint: dict[str, Any] | None = None,
) -> str:
    """16 hex digits of the SHA-256 of the resolved identity in canonical JSON."""
    identity = resolved_identity(config, device_type, data_fingerprint, execution, model_fingerprint)
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:RUN_ID_LENGTH]
