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

from batchlab.errors import ConfigError

SHUFFLE_MODES = ("epoch", "once", "none")
FULL_BATCH = "full"
# Seeds feed torch.manual_seed and torch.Generator.manual_seed, which take a signed 64-bit value.
MAX_SEED = 2**63 - 1

# Fields that do not change what a run computes, so they are left out of its id.
_NOT_IN_IDENTITY = ("data_dir",)
# Fields added after the first release, with the value that reproduces what runs did before
# them. At that value they are left out of the id, so the runs of an older store keep their ids.
_ADDED_LATER = {"train_subset": None}


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
    device: str = "auto"
    data_dir: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.hidden, list):
            object.__setattr__(self, "hidden", tuple(self.hidden))
        validate_config(self)

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["hidden"] is not None:
            data["hidden"] = list(data["hidden"])
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


def parse_batch_size(value: Any) -> int | str:
    """Accept an integer ≥ 1 (also as text) or ``"full"``; anything else is a one-line error."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == FULL_BATCH:
            return FULL_BATCH
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(
                f"batch size {value!r} is not an integer; allowed: an integer 1 … N (training-set size) or 'full'"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(
                f"batch size {value!r} is not an integer; allowed: an integer 1 … N (training-set size) or 'full'"
            )
    if value < 1:
        raise ConfigError(f"batch size {value} is too small; allowed: an integer 1 … N (training-set size) or 'full'")
    return value


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
    _positive_int("epochs", config.epochs)
    _seed("seed", config.seed)
    _seed("split seed", config.split_seed)
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
    if config.hidden is not None:
        if len(config.hidden) == 0 or any(
            isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in config.hidden
        ):
            raise ConfigError(f"hidden widths {config.hidden!r} are invalid; allowed: one or more integers ≥ 1")


def _finite_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} {value!r} is not a finite number")


def _int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} {value!r} is not an integer")


def _seed(name: str, value: Any) -> None:
    _int(name, value)
    if not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{name} {value} is out of range; allowed: an integer 0 … 2**63 − 1")


def _positive_int(name: str, value: Any) -> None:
    _int(name, value)
    if value < 1:
        raise ConfigError(f"{name} {value} is too small; allowed: an integer ≥ 1")


def resolved_identity(
    config: RunConfig,
    device_type: str,
    data_fingerprint: dict[str, Any] | None = None,
    model_fingerprint: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields that define what a run computes, with the device reduced to its type.

    ``device_type`` is ``cpu``/``cuda``/``mps``: numbers differ between device types, not between
    two GPUs of one machine, so ``cuda:0`` and ``cuda:1`` share an id. ``data_fingerprint``
    identifies data that the configuration's registry fields do not describe (see
    :func:`batchlab.data.identity.data_fingerprint`); None for registry data.
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
    model_fingerprint: dict[str, Any] | None = None,
) -> str:
    """16 hex digits of the SHA-256 of the resolved identity in canonical JSON."""
    identity = resolved_identity(config, device_type, data_fingerprint, model_fingerprint)
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
