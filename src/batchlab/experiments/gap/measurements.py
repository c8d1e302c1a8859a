"""Measurements of stored minima, kept in the store and reused when asked for again.

The generalization-gap experiment and ``batchlab landscape`` look at minima that training left in
the run store (:func:`batchlab.training.restore.restore_run`). Each measurement here is saved as a
record and, asked for again with the same options, read back instead of computed:

* Keskar's sharpness: kind ``sharpness``, under the same key and with the same fields as
  ``batchlab sharpness`` writes, so the command and the experiment share their results;
* the 1-D parametric line and the 2-D contour: kind ``landscape``, keys from
  :func:`batchlab.geometry.landscape.parametric_record_key` / ``contour_record_key``.

Subsets of examples are chosen with :func:`batchlab.geometry.select_examples` (the first n of a
permutation seeded with ``seed``, in index order), the rule ``batchlab sharpness --examples``
uses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from batchlab.data import TensorSplit
from batchlab.runtime.environment import describe_environment
from batchlab.errors import ConfigError
from batchlab.geometry import curvature_measures, keskar_sharpness, select_examples, stability_bound
from batchlab.geometry.sharpness import SEARCH_RULE
from batchlab.geometry.landscape import (
    ContourGrid,
    ParametricLine,
    check_bn_mode,
    check_same_architecture,
    contour_record_key,
    loss_contour,
    parametric_line,
    parametric_record_key,
)
from batchlab.models.registry import MODELS
from batchlab.training.restore import RestoredRun

if TYPE_CHECKING:
    from batchlab.store import RunStore

LANDSCAPE = "landscape"
SHARPNESS = "sharpness"
CURVATURE = "curvature"

# Config fields two runs must share to be compared on one landscape: same network, same data.
_SAME_FIELDS = ("model", "hidden", "dataset", "val_fraction", "split_seed")


def check_comparable(a: RestoredRun, b: RestoredRun) -> None:
    """ConfigError unless the two runs have the same architecture and the same data split."""
    for name in _SAME_FIELDS:
        value_a, value_b = _resolved(a, name), _resolved(b, name)
        if value_a != value_b:
            raise ConfigError(
                f"runs {a.run_id} and {b.run_id} differ in {name} ({_show(value_a)} vs {_show(value_b)}); "
                "allowed: two runs of the same model, hidden widths, dataset and split"
            )
    check_same_architecture(a.model, b.model)


def subset(split: TensorSplit, examples: int | None, seed: int, what: str) -> TensorSplit:
    """``split`` itself, or ``examples`` of its examples chosen by :func:`select_examples`."""
    if examples is not None and (
        isinstance(examples, bool) or not isinstance(examples, int) or not 1 <= examples <= len(split)
    ):
        raise ConfigError(f"{what} examples {examples!r} is invalid; allowed: 1 … {len(split)} (the {what} split's size)")
    x, y = select_examples(split.x, split.y, examples, seed)
    return TensorSplit(x, y)


def measure_parametric(
    store: RunStore,
    a: RestoredRun,
    b: RestoredRun,
    *,
    alphas: Sequence[float],
    bn: str,
    examples: int | None,
    test_examples: int | None,
    seed: int = 0,
    reuse: bool = True,
) -> tuple[ParametricLine, str, bool]:
    """Keskar's parametric line from run ``a`` (α = 0) to run ``b`` (α = 1).

    Returns the line, its record key and whether it was read from the store.
    """
    check_bn_mode(bn)
    check_comparable(a, b)
    key = parametric_record_key(a.run_id, b.run_id, alphas, bn, examples, test_examples, seed)
    if reuse:
        stored = store.get_record(LANDSCAPE, key)
        if stored is not None:
            return ParametricLine.from_dict(stored["line"]), key, True
    train = subset(a.splits.train, examples, seed, "training")
    test = subset(a.splits.test, test_examples, seed, "test")
    started = time.perf_counter()
    line = parametric_line(a.model, b.model, train, test, alphas=alphas, bn=bn, seed=seed, objective=a.objective)
    store.put_record(LANDSCAPE, key, {
        "kind": "parametric",
        "run_a": a.run_id,
        "run_b": b.run_id,
        "config_a": a.config.to_dict(),
        "config_b": b.config.to_dict(),
        "line": line.to_dict(),
        "seconds": time.perf_counter() - started,
        "environment": _environment(a),
    })
    return line, key, False


def measure_contour(
    store: RunStore,
    restored: RestoredRun,
    *,
    steps: int,
    span: float,
    examples: int | None,
    seed: int = 0,
    reuse: bool = True,
) -> tuple[ContourGrid, str, bool]:
    """Li et al.'s filter-normalized contour around ``restored``'s minimum (training loss)."""
    key = contour_record_key(restored.run_id, steps, span, examples, seed)
    if reuse:
        stored = store.get_record(LANDSCAPE, key)
        if stored is not None:
            return ContourGrid.from_dict(stored["grid"]), key, True
    train = subset(restored.splits.train, examples, seed, "training")
    started = time.perf_counter()
    grid = loss_contour(restored.model, train, steps=steps, span=span, seed=seed, objective=restored.objective)
    store.put_record(LANDSCAPE, key, {
        "kind": "contour",
        "run_id": restored.run_id,
        "config": restored.config.to_dict(),
        "grid": grid.to_dict(),
        "seconds": time.perf_counter() - started,
        "environment": _environment(restored),
    })
    return grid, key, False


def sharpness_key(
    run_id: str, *, epsilon: float, subspace_dim: int | None, iterations: int, seed: int, examples: int | None
) -> str:
    """The key ``batchlab sharpness`` stores a row under (its ``record_key``), built from options;
    ``search`` names the maximization rule, so rows from an earlier rule are never reused."""
    space = "full" if subspace_dim is None else f"random{subspace_dim}"
    count = "all" if examples is None else examples
    return (f"{run_id}|eps={epsilon:g}|space={space}|iterations={iterations}|seed={seed}|examples={count}"
            f"|mode=eval|search={SEARCH_RULE}")


def measure_sharpness(
    store: RunStore,
    restored: RestoredRun,
    *,
    epsilon: float,
    subspace_dim: int | None,
    iterations: int = 10,
    seed: int = 0,
    examples: int | None = None,
    reuse: bool = True,
) -> tuple[dict[str, Any], bool]:
    """Keskar's φ at ``restored``'s minimum, f the run's mean training loss (the cross-entropy, or a
    user task's own loss) on ``examples`` training examples (all when None), as a ``batchlab
    sharpness`` row; and whether it was stored."""
    key = sharpness_key(restored.run_id, epsilon=epsilon, subspace_dim=subspace_dim, iterations=iterations,
                        seed=seed, examples=examples)
    if reuse:
        stored = store.get_record(SHARPNESS, key)
        if stored is not None:
            return stored, True
    train = subset(restored.splits.train, examples, seed, "training")
    started = time.perf_counter()
    result = keskar_sharpness(restored.model, train.x, train.y, epsilon=epsilon, subspace_dim=subspace_dim,
                              iterations=iterations, seed=seed, loss=restored.objective.loss)
    row = {
        "run_id": restored.run_id,
        "config": restored.config.to_dict(),
        **result.to_dict(),
        "examples": len(train),
        "mode": "eval",
        "seconds": time.perf_counter() - started,
        "environment": _environment(restored),
    }
    store.put_record(SHARPNESS, key, row)
    return row, False


def measure_curvature(
    store: RunStore,
    restored: RestoredRun,
    *,
    examples: int | None,
    seed: int = 0,
    trace_samples: int | None = 20,
    reuse: bool = True,
) -> tuple[dict[str, Any], bool]:
    """The measures set beside Keskar's φ at ``restored``'s minimum
    (:func:`batchlab.geometry.curvature_measures`: λ_max, the Hessian trace, the adaptive
    sharpness of Kwon et al. 2021) on ``examples`` seeded training examples, with the stability
    bound of the optimizer that trained the run (:func:`batchlab.geometry.stability_bound`:
    2(1 + λ)/η for heavy-ball momentum, none for Adam); and whether it was read from the store
    (kind ``curvature``)."""
    count = "all" if examples is None else examples
    key = f"{restored.run_id}|examples={count}|seed={seed}|trace={trace_samples}"
    if reuse:
        stored = store.get_record(CURVATURE, key)
        if stored is not None:
            return stored, True
    train = subset(restored.splits.train, examples, seed, "training")
    config = restored.config
    measures = curvature_measures(restored.model, train.x, train.y, trace_samples=trace_samples, seed=seed,
                                  loss=restored.objective.loss)
    bound = stability_bound(config.optimizer, config.lr, config.momentum, nesterov=config.nesterov,
                            weight_decay=config.weight_decay)
    row = {"run_id": restored.run_id, **measures, "examples": len(train), "stability_bound": bound.value,
           "stability_rule": bound.rule, "environment": _environment(restored)}
    store.put_record(CURVATURE, key, row)
    return row, False


def _resolved(restored: RestoredRun, name: str) -> Any:
    """A config field, hidden widths with the model's default filled in (None and the default
    widths build the same network)."""
    value = getattr(restored.config, name)
    if name == "hidden" and value is None:
        spec = MODELS.get(restored.config.model)
        return spec.default_hidden if spec is not None else None
    return value


def _environment(restored: RestoredRun) -> dict[str, Any]:
    return describe_environment(next(restored.model.parameters()).device)


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(str(v) for v in value) + ")"
    return "default" if value is None else str(value)
