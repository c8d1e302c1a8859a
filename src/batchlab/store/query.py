"""Which stored runs to show, and in what order: ``--where`` conditions and ``--sort`` keys.

A condition is ``KEY OP VALUE`` with OP one of ``= != < <= > >=``. KEY is a config field
(``batch_size``, ``lr``, ``hidden``, …), a summary metric (``val_acc``, ``test_loss``, …),
``status`` or ``tag``. Values compare by what they mean, not how they are written:

* numbers as numbers: ``lr=.1`` matches a stored ``0.1`` (equal to 1e-9 relative);
* lists as lists: ``hidden=64`` matches ``[64]`` and ``hidden=64,64`` matches ``[64, 64]``; a run
  stored with the model's default widths (``hidden`` null) matches its widths spelled out;
* elsewhere a comma separates alternatives: ``batch_size=64,full`` keeps either;
* ``<``, ``<=``, ``>``, ``>=`` need numbers; a ``batch_size`` of ``full`` compares as the number of
  training examples it resolved to;
* a run lacking the key (no ``val_acc`` while it runs), or holding NaN there, matches no
  condition on it; ``tag=a,b`` keeps runs with tag a or b.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchlab.models.architecture import default_widths
from batchlab.config import RunConfig
from batchlab.errors import StoreError
from batchlab.store.status import STATUSES
from batchlab.store.record import RunRecord

CONFIG_KEYS = tuple(field.name for field in dataclasses.fields(RunConfig))
# The numbers a run's summary holds (train/session.py's build_summary, and the test set's).
METRIC_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "updates",
               "epochs_completed", "time_per_update_s", "time_per_epoch_s", "train_time_s", "diverged_epoch",
               "stopped_early_at")
OTHER_KEYS = ("status", "tag")
WHERE_KEYS = CONFIG_KEYS + METRIC_KEYS + OTHER_KEYS
SORT_KEYS = ("run_id", "created") + CONFIG_KEYS + METRIC_KEYS + ("status",)
# Two-character operators first, so ``<=`` is not read as ``<`` followed by ``=0.5``.
OPERATORS = ("!=", "<=", ">=", "=", "<", ">")
_ORDERING = ("<", "<=", ">", ">=")
# Config fields whose value is a list: a comma inside their value builds the list.
_LIST_KEYS = ("hidden",)
_EQUAL_RELATIVE = 1e-9


@dataclass(frozen=True)
class Condition:
    """One ``--where`` condition: ``key``, ``op`` and the allowed ``values`` (alternatives)."""

    key: str
    op: str
    values: tuple[Any, ...]

    def matches(self, record: RunRecord, tags: Sequence[str] = ()) -> bool:
        if self.key == "tag":
            found = any(value in tags for value in self.values)
            return found if self.op == "=" else not found
        present, stored = _value_of(record, self.key, numeric=self.op in _ORDERING)
        if not present or _is_nan(stored):
            return False
        if self.op == "=":
            return any(_same(stored, value) for value in self.values)
        if self.op == "!=":
            return not any(_same(stored, value) for value in self.values)
        if not _is_number(stored):
            return False
        (limit,) = self.values
        return {"<": stored < limit, "<=": stored <= limit, ">": stored > limit, ">=": stored >= limit}[self.op]


def parse_condition(text: str) -> Condition:
    """``"val_acc>0.9"`` → ``Condition("val_acc", ">", (0.9,))``; a one-line :class:`StoreError`
    names what is wrong and what is allowed."""
    position, op = _find_operator(text)
    if op is None:
        raise StoreError(f"--where {text!r} has no comparison; allowed: KEY OP VALUE with OP one of "
                         f"{' '.join(OPERATORS)}, e.g. --where batch_size=64 --where 'val_acc>0.9'")
    key = text[:position].strip().replace("-", "_")
    raw = text[position + len(op):].strip()
    if key not in WHERE_KEYS:
        raise StoreError(f"--where key {key!r} is unknown; allowed: {', '.join(WHERE_KEYS)}")
    if not raw:
        raise StoreError(f"--where {text!r} has no value; allowed: e.g. --where {key}{op}…")
    if key in ("status", "tag") and op not in ("=", "!="):
        raise StoreError(f"--where {key} takes = or !=; allowed: e.g. --where {key}=…")
    if op in _ORDERING:
        value = _parse_scalar(raw)
        if not _is_number(value):
            raise StoreError(f"--where {text!r} compares {key} with {raw!r}, not a number; "
                             f"allowed: a number after {op}, or = / != for text")
        return Condition(key, op, (value,))
    values = _parse_alternatives(key, raw)
    if key == "status":
        unknown = [v for v in values if v not in STATUSES]
        if unknown:
            raise StoreError(f"--where status {unknown[0]!r} is unknown; allowed: {', '.join(STATUSES)}")
    return Condition(key, op, values)


def parse_conditions(items: Iterable[str]) -> list[Condition]:
    return [parse_condition(item) for item in items]


def conditions_from_mapping(where: Mapping[str, Any]) -> list[Condition]:
    """The conditions of :meth:`RunStore.runs`'s ``where`` mapping (config key → value or list of
    alternatives) — equality only."""
    conditions = []
    for key, wanted in where.items():
        if isinstance(wanted, (set, frozenset)) or (isinstance(wanted, (list, tuple)) and key not in _LIST_KEYS):
            conditions.append(Condition(key, "=", tuple(wanted)))
        else:
            conditions.append(Condition(key, "=", (wanted,)))
    return conditions


def filter_runs(records: Iterable[RunRecord], conditions: Sequence[Condition],
                tags: Mapping[str, Sequence[str]] | None = None) -> list[RunRecord]:
    """The runs meeting every condition (several conditions are ANDed)."""
    tags = tags or {}
    return [r for r in records if all(c.matches(r, tags.get(r.run_id, ())) for c in conditions)]


def parse_sort(text: str, descending: bool = False) -> tuple[str, bool]:
    """``"-val_acc"`` → ``("val_acc", True)``; a leading minus (or ``descending``) sorts largest first."""
    key = text.strip()
    if key.startswith("-"):
        key, descending = key[1:], True
    key = key.replace("-", "_")
    if key not in SORT_KEYS:
        raise StoreError(f"--sort key {key!r} is unknown; allowed: {', '.join(SORT_KEYS)} "
                         "(a leading - or --desc sorts largest first)")
    return key, descending


def sort_runs(records: Iterable[RunRecord], key: str, descending: bool = False) -> list[RunRecord]:
    """Runs ordered by ``key``: numbers by value, text alphabetically after the numbers; runs
    without a value (or NaN) come last in either direction. Ties keep the store's order."""
    with_value, without = [], []
    for record in records:
        present, value = _value_of(record, key, numeric=True)
        (with_value if present and value is not None and not _is_nan(value) else without).append((record, value))

    def order(item: tuple[RunRecord, Any]) -> tuple[int, Any]:
        value = item[1]
        if _is_number(value):
            return (0, float(value))
        return (1, json.dumps(value, sort_keys=True) if not isinstance(value, str) else value)

    numbers = sorted((item for item in with_value if _is_number(item[1])), key=order, reverse=descending)
    texts = sorted((item for item in with_value if not _is_number(item[1])), key=order, reverse=descending)
    return [record for record, _ in numbers + texts + without]


# ----------------------------------------------------------------------------- helpers


def _find_operator(text: str) -> tuple[int, str | None]:
    """The first operator in ``text`` (the earliest position; at one position the longest)."""
    best: tuple[int, str | None] = (len(text), None)
    for op in OPERATORS:
        position = text.find(op)
        if position > 0 and (position < best[0] or (position == best[0] and len(op) > len(best[1] or ""))):
            best = (position, op)
    return best


def _value_of(record: RunRecord, key: str, *, numeric: bool) -> tuple[bool, Any]:
    """``(present, value)`` of ``key`` for ``record``; for a numeric comparison a config value
    that is not a number (``batch_size`` ``full``) is replaced by the summary's number."""
    if key == "run_id":
        return True, record.run_id
    if key in ("status", "created"):
        return True, getattr(record, key)
    if key in CONFIG_KEYS:
        if key == "hidden" and record.config.get("hidden") is None:
            widths = default_widths(record.config.get("model"))
            return widths is not None, list(widths or ())
        if key not in record.config:
            return False, None
        value = record.config[key]
        if numeric and not _is_number(value) and _is_number(record.summary.get(key)):
            value = record.summary[key]
        return True, value
    if key in record.summary and record.summary[key] is not None:
        return True, record.summary[key]
    if key in record.config:  # a field a caller stored beside RunConfig's own (the API allows any)
        return True, record.config[key]
    return False, None


def _parse_alternatives(key: str, raw: str) -> tuple[Any, ...]:
    if key in _LIST_KEYS:
        if raw.startswith("["):
            return (_parse_scalar(raw),)
        if raw.lower() in ("none", "null"):
            return (None,)
        return ([_parse_scalar(part.strip()) for part in raw.split(",") if part.strip()],)
    if raw.startswith("["):
        return (_parse_scalar(raw),)
    return tuple(_parse_scalar(part.strip()) for part in raw.split(",") if part.strip())


def _parse_scalar(text: str) -> Any:
    """A number (``.1``, ``1e-3``, ``64``), true/false/null, a JSON list, or else the text itself."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return number
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise StoreError(f"--where value {text!r} is not a list; allowed: e.g. [512,512] or 512,512") from None
    return text


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _same(stored: Any, wanted: Any) -> bool:
    if _is_number(stored) and _is_number(wanted):
        return math.isclose(float(stored), float(wanted), rel_tol=_EQUAL_RELATIVE, abs_tol=0.0)
    if isinstance(stored, (list, tuple)) and isinstance(wanted, (list, tuple)):
        return len(stored) == len(wanted) and all(_same(a, b) for a, b in zip(stored, wanted))
    if isinstance(stored, str) and isinstance(wanted, str):
        return stored.lower() == wanted.lower()
    return stored == wanted
