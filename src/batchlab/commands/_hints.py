"""Hints, not only errors: a learning rate that is likely too large, before training; the next
learning rate to try, after a run diverged.

What matters for stability is the effective step η/(1 − λ): with the lecture's momentum
m ← λm − ηg, θ ← θ + m, a steady gradient g moves θ by −η/(1 − λ)·g per update once the
momentum has built up (the geometric series 1 + λ + λ² + …; Goh, "Why Momentum Really Works",
Distill 2017). η = 0.1 with λ = 0.9 is therefore a step of 1, ten times that of η = 0.1 alone.
The hint only concerns the optimizers whose λ means that: ``momentum``, ``sgd`` and ``torch-sgd``.

**Before training**, a run is compared with the store's runs of the same dataset, model, hidden
widths, batch size and optimizer family — for a user's model or data (``--model-file``,
``--data-file``, ``batchlab.Task``), runs with the same model and data fingerprints
(:mod:`batchlab.store.identity`), so an edited model or data file starts a history of its own:

* a run with the same or a smaller effective step diverged there, and none with a larger one
  trained: warn;
* else, when runs trained there (finished, not diverged): warn when the step is more than
  :data:`FAR_ABOVE_TRAINED` times the largest of them;
* the store has no such run: warn above the rule of thumb η/(1 − λ) ≤ B/:data:`RULE_BATCH`,
  capped at :data:`RULE_CAP` (see :func:`rule_of_thumb`).

**After a divergence** the suggested step lies between the largest step that trained at that
batch size and the smallest that diverged, at their geometric mean (learning rates are searched
on a log scale), or a tenth of the diverged step (one decade down) when nothing trained there.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchlab.optim.registry import registered_with
from batchlab.store.identity import data_digest, fingerprints, model_digest
from batchlab.store.status import DIVERGED, FINISHED

# Optimizers for which η/(1 − λ) is the step (``sgd`` is Momentum with λ = 0).
HINTED_OPTIMIZERS = registered_with("has_effective_step")
# The keys of a config dict that say which user's model and data it trains (store/identity.py).
IDENTITY_KEYS = ("model_fingerprint", "data_fingerprint")
# How far above the largest step that trained counts as "far above".
FAR_ABOVE_TRAINED = 2.0
# The rule of thumb η/(1 − λ) ≤ B / RULE_BATCH, at most RULE_CAP. Goyal et al. (2017, "Accurate,
# Large Minibatch SGD") train with η = 0.1·B/256 and λ = 0.9, an effective step of B/256, scaled
# linearly with B; beyond B = 256 that rule needs a warm-up, so the cap stops growing there.
# Their ResNet on ImageNet is harder to keep stable than the small networks here, so the rule
# allows four times their step: B/64. Measured with the default MLP (784-512-512-10) on mnist-5k,
# 3 epochs, seed 0, CPU: η = 0.1 with λ = 0.9 (a step of 1) reaches 91 % test accuracy at B = 64
# (not flagged), 81 % at B = 32 and diverges in the first epoch at B = 16 (both flagged); plain
# η = 0.1 is flagged below B = 7.
RULE_BATCH = 64
RULE_CAP = 256 / RULE_BATCH
# The step after a divergence when nothing trained at that batch size: one decade down.
DECADE = 10.0


def effective_step(lr: float, momentum: float) -> float:
    """η/(1 − λ): the distance a steady gradient moves θ per update under momentum λ."""
    return lr / (1.0 - momentum)


def rule_of_thumb(batch_size: int | str) -> float:
    """The largest effective step the rule of thumb allows at ``batch_size`` (module docstring)."""
    if isinstance(batch_size, int):
        return min(batch_size / RULE_BATCH, RULE_CAP)
    return RULE_CAP  # "full": the largest batch there is


@dataclass(frozen=True)
class StepHistory:
    """The effective steps the store holds for one (dataset, model, widths, B, optimizer family)."""

    trained: tuple[float, ...]
    diverged: tuple[float, ...]

    @property
    def largest_trained(self) -> float | None:
        return max(self.trained, default=None)

    @property
    def smallest_diverged(self) -> float | None:
        return min(self.diverged, default=None)


def step_history(config: Mapping[str, Any], records: Iterable[Any]) -> StepHistory:
    """The effective steps of the stored runs (``records``, RunRecord-like) comparable with
    ``config`` (a config dict, with the ``model_fingerprint`` and ``data_fingerprint`` of a user's
    model or data): same dataset, model, hidden widths, batch size and fingerprints, an optimizer
    of :data:`HINTED_OPTIMIZERS`; finished runs count as trained, diverged ones as diverged."""
    identity = {key: config[key] for key in IDENTITY_KEYS if config.get(key) is not None}
    trained, diverged = [], []
    for record in records:
        other = record.config
        if not _comparable(config, other) or fingerprints(getattr(record, "environment", None)) != identity:
            continue
        step = effective_step(float(other["lr"]), float(other["momentum"]))
        if record.status == FINISHED:
            trained.append(step)
        elif record.status == DIVERGED:
            diverged.append(step)
    return StepHistory(tuple(trained), tuple(diverged))


def warning_before(config: Mapping[str, Any], records: Iterable[Any]) -> str | None:
    """One line warning that ``config``'s effective step is far above what has trained this
    model (module docstring), or None."""
    if config.get("optimizer") not in HINTED_OPTIMIZERS:
        return None
    lr, momentum, batch = float(config["lr"]), float(config["momentum"]), config["batch_size"]
    step = effective_step(lr, momentum)
    history = step_history(config, records)
    where = f"{config.get('model')} on {config.get('dataset')} at B = {batch}"
    said = f"η/(1 − λ) = {_g(step)} (η = {_g(lr)}, λ = {_g(momentum)})"
    trained, diverged = history.largest_trained, history.smallest_diverged
    if diverged is not None and not _above(diverged, step) and (trained is None or _above(step, trained)):
        return (f"{said} is at or above {_g(diverged)}, where a run of {where} diverged in the store"
                + (f"; the largest that trained is {_g(trained)}" if trained is not None else "")
                + f"; try --lr {_g(suggested_step(step, history) * (1 - momentum))}")
    if trained is not None:
        if _above(step, FAR_ABOVE_TRAINED * trained):
            return (f"{said} is over {_g(FAR_ABOVE_TRAINED)}× the largest that trained {where} in the store "
                    f"({_g(trained)}); consider --lr {_g(trained * (1 - momentum))}")
        return None
    if history.diverged:
        return None  # only larger steps diverged here: nothing to say against this one
    limit = rule_of_thumb(batch)
    if _above(step, limit):
        return (f"{said} is above {_g(limit)}, the rule of thumb η/(1 − λ) ≤ B/{RULE_BATCH} (at most "
                f"{_g(RULE_CAP)}) for B = {batch}, and the store has no run of {where} to go by; "
                f"consider --lr {_g(limit * (1 - momentum))}")
    return None


def suggested_step(diverged_step: float, history: StepHistory) -> float:
    """The next effective step after ``diverged_step`` diverged (module docstring)."""
    below = [s for s in history.trained if s < diverged_step]
    if below:
        return math.sqrt(max(below) * diverged_step)
    return diverged_step / DECADE


def hint_after_divergence(config: Mapping[str, Any], records: Iterable[Any]) -> str | None:
    """One line suggesting the next η after ``config`` diverged, or None (another optimizer)."""
    if config.get("optimizer") not in HINTED_OPTIMIZERS:
        return None
    lr, momentum = float(config["lr"]), float(config["momentum"])
    step = effective_step(lr, momentum)
    history = step_history(config, records)
    next_lr = suggested_step(step, history) * (1 - momentum)
    trained = max((s for s in history.trained if s < step), default=None)
    basis = (f"between the largest step that trained at B = {config['batch_size']} ({_g(trained)}) and this one"
             if trained is not None else "a tenth of this step")
    return (f"the run diverged at η/(1 − λ) = {_g(step)} (η = {_g(lr)}, λ = {_g(momentum)}); "
            f"try --lr {_g(next_lr)} ({basis})")


def warning_for_runs(configs: Sequence[Mapping[str, Any]], records: Sequence[Any]) -> str | None:
    """One line for the runs about to train: :func:`warning_before` for one run; for several,
    how many it flags and the first of them."""
    flagged = [(config, line) for config in configs if (line := warning_before(config, records))]
    if not flagged:
        return None
    config, line = flagged[0]
    if len(configs) == 1:
        return line
    return (f"{len(flagged)} of {len(configs)} run(s) may take too large a step; e.g. B = {config['batch_size']}: "
            + line)


def hints_after(results: Iterable[Any], records: Sequence[Any]) -> list[str]:
    """After training: one line per batch size where runs diverged (``results``: RunResults),
    for the smallest diverged effective step there."""
    smallest: dict[str, Any] = {}
    for result in results:
        if getattr(result, "status", None) != DIVERGED:
            continue
        config = result.config.to_dict() | fingerprints(getattr(result, "environment", None))
        key = str(config["batch_size"])
        best = smallest.get(key)
        if best is None or effective_step(config["lr"], config["momentum"]) < effective_step(best["lr"], best["momentum"]):
            smallest[key] = config
    lines = []
    for batch, config in smallest.items():
        line = hint_after_divergence(config, records)
        if line:
            lines.append(f"B = {batch}: {line}")
    return lines


def _comparable(config: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    if other.get("optimizer") not in HINTED_OPTIMIZERS:
        return False
    if any(other.get(key) != config.get(key) for key in ("dataset", "model", "batch_size", "train_subset")):
        return False
    return _widths(other.get("hidden")) == _widths(config.get("hidden"))


def _widths(hidden: Sequence[int] | None) -> list[int] | None:
    return list(hidden) if hidden else None


def _above(value: float, limit: float) -> bool:
    """``value > limit`` beyond rounding: 0.1/(1 − 0.9) is 1.0000000000000002, and is 1."""
    return value > limit * (1.0 + 1e-9)


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


# ----------------------------------------------------------------------------- for the commands


def stored_runs(store_path: Any) -> list[Any]:
    """The runs of the store at ``store_path``; none when it does not exist yet, or is an empty
    file that another process is creating at this moment (several trainings started at once on a
    new store), or cannot be read as a store: hints are advice, and the training that follows
    opens the store itself and reports what is wrong with it."""
    from pathlib import Path

    from batchlab.errors import StoreError
    from batchlab.store import RunStore

    if store_path is None or not Path(store_path).is_file() or Path(store_path).stat().st_size == 0:
        return []
    try:
        with RunStore(store_path, create=False) as store:
            return store.runs()
    except StoreError:
        return []


def print_hint(line: str | None) -> None:
    """``batchlab: hint: <line>`` on stderr (nothing for None)."""
    if line:
        print(f"batchlab: hint: {line}", file=sys.stderr, flush=True)


def warn_before_training(configs: Sequence[Any], store_path: Any, task: Any = None) -> None:
    """Print :func:`warning_for_runs` for ``configs`` (RunConfigs) against the store, if any;
    ``task`` is the user's model and data they train (a :class:`batchlab.Task`), if any."""
    if task is None:
        dicts = [config.to_dict() for config in configs]
    else:
        identity = {"model_fingerprint": model_digest(task.model_fingerprint),
                    "data_fingerprint": data_digest(task.data_fingerprint)}
        dicts = [task.configure(config).to_dict() | identity for config in configs]
    print_hint(warning_for_runs(dicts, stored_runs(store_path)))


def hint_after_training(results: Sequence[Any], store_path: Any) -> None:
    """Print :func:`hints_after` for the runs just trained (those read from the store are left out)."""
    trained = [result for result in results if not getattr(result, "from_store", False)]
    if any(result.status == DIVERGED for result in trained):
        for line in hints_after(trained, stored_runs(store_path)):
            print_hint(line)
