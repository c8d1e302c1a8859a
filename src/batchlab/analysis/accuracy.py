"""Accuracy against batch size, from the runs of a store: the lecture's MNIST / CIFAR-10 figure.

Runs are grouped so that one *curve* holds runs that differ only in batch size and seed, and one
*panel* holds the curves of one dataset, architecture and budget:

* budget: a run without ``max_updates`` is compared at a fixed **epoch** budget (its
  ``epochs``); a run with ``max_updates`` at a fixed **update** budget (its ``max_updates``; the
  epoch count is then only a cap and is left out of the grouping). Runs with ``stop_patience``
  form their own budget, "given enough updates" (until the loss stops improving, at most
  ``max_updates`` updates: runs with different update caps are different curves).
* curve: every other config field equal (optimizer, λ, η, Nesterov, weight decay, shuffle, …),
  and the same model and data fingerprints (a user's model or data edited under the same name
  trained something else: :mod:`batchlab.store.identity`); the label names the fields that
  differ between the curves of a panel.
* point: one batch size of a curve; ``"full"`` is placed at its resolved size N (the summary's
  ``batch_size``). Each accuracy is the mean over seeds with the sample standard deviation
  (``ddof = 1``; 0 for a single seed), and the per-seed values are kept (``seed_values``) so that
  two batch sizes can be compared seed by seed (a seed's runs start from the same weights). Only
  runs with status ``finished`` enter the means and the figures; failed runs (status ``diverged``
  or ``failed to train``, whether or not they produced NaN) are left out and counted per point,
  in all (``n_diverged``) and by status (``failures``), so that a figure, a table and the summary
  say how many were left out and why (:func:`left_out_note`).

The accuracies are the run summary's final ``train_acc``, ``val_acc`` (on the validation split
carved from the training set) and ``test_acc``, all measured after the last epoch.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from batchlab.analysis.grid import DIVERGENCE, EXTENSION_CAP, INTERIOR, PENDING, GridState
from batchlab.analysis.grid import outcome as grid_outcome
from batchlab.analysis.verdicts import FAILED_STATUSES, last_epoch_drop
from batchlab.store import RunRecord
from batchlab.store.identity import fingerprints
from batchlab.store.status import FINISHED, is_result

METRICS = ("train_acc", "val_acc", "test_acc")
EPOCH_BUDGET = "epochs"
UPDATE_BUDGET = "updates"
PATIENCE_BUDGET = "patience"

# Fields that never separate curves: the x axis, the seed averaged over, where data lives, and
# the device (a run id already distinguishes CPU and GPU runs; both answer the same question).
_NOT_CURVE_FIELDS = ("batch_size", "seed", "data_dir", "device")
# Fields that define a panel rather than a curve.
_PANEL_FIELDS = ("dataset", "model", "hidden")
_FIELD_LABELS = {
    "optimizer": "", "momentum": "λ", "lr": "η", "nesterov": "Nesterov", "weight_decay": "wd",
    "shuffle": "shuffle", "drop_last": "drop last", "val_fraction": "val", "split_seed": "split",
    "model_fingerprint": "model", "data_fingerprint": "data", "max_updates": "update cap",
}


@dataclass
class AccuracyPoint:
    """One batch size of a curve: mean ± std over seeds of each final accuracy."""

    batch_size: int
    full_batch: bool
    seeds: list[int]
    n_diverged: int
    updates: float | None
    means: dict[str, float | None]
    stds: dict[str, float | None]
    # Mean over seeds of how much the training loss fell over the second half of the logged epochs,
    # loss[(n − 1) // 2] − loss[n − 1] (absolute); None when no history was given or it has one epoch.
    final_loss_drop: float | None = None
    # Set by :func:`best_learning_rates`: the η chosen for this batch size, the grid it came from,
    # and whether it lies on the grid's edge (the best η may lie outside the grid).
    lr: float | None = None
    lr_grid: list[float] | None = None
    lr_at_edge: bool = False
    # Why the choice stopped there (batchlab.analysis.grid.outcome): "interior", "bounded by
    # divergence at η = …", "on the high edge of the grid, not extended", …
    lr_reason: str | None = None
    # metric → seed → final value, over the finished runs (the means' inputs, for paired comparisons).
    seed_values: dict[str, dict[int, float]] = field(default_factory=dict)
    # Failed runs left out of the means, by status ("diverged", "failed to train"); n_diverged is their sum.
    failures: dict[str, int] = field(default_factory=dict)
    # Mean over seeds of the training loss's relative fall over the last logged epoch,
    # (loss[n − 2] − loss[n − 1]) / loss[n − 2] (see batchlab.analysis.verdicts.still_falling).
    last_epoch_drop: float | None = None

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    def mean(self, metric: str) -> float | None:
        return self.means.get(metric)

    def std(self, metric: str) -> float | None:
        return self.stds.get(metric)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"n_seeds": self.n_seeds}


@dataclass
class AccuracyCurve:
    """Runs equal in every config field but batch size and seed."""

    settings: dict[str, Any]
    label: str
    points: list[AccuracyPoint]

    def point(self, batch_size: int) -> AccuracyPoint | None:
        return next((p for p in self.points if p.batch_size == batch_size), None)

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "label": self.label, "points": [p.to_dict() for p in self.points]}


@dataclass
class AccuracyPanel:
    """The curves of one dataset, architecture and budget (one axes of the figure)."""

    dataset: str
    model: str
    hidden: list[int] | None
    budget_kind: str
    budget: int | None
    curves: list[AccuracyCurve] = field(default_factory=list)

    @property
    def title(self) -> str:
        widths = f" {'-'.join(str(w) for w in self.hidden)}" if self.hidden else ""
        return f"{self.dataset}, {self.model}{widths}, {budget_text(self.budget_kind, self.budget)}"

    @property
    def batch_sizes(self) -> list[int]:
        return sorted({p.batch_size for c in self.curves for p in c.points})

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "model": self.model, "hidden": self.hidden,
                "budget_kind": self.budget_kind, "budget": self.budget, "title": self.title,
                "curves": [c.to_dict() for c in self.curves]}


def budget_text(kind: str, budget: int | None) -> str:
    if kind == EPOCH_BUDGET:
        return f"fixed budget of {budget} epoch{'s' if budget != 1 else ''}"
    if kind == UPDATE_BUDGET:
        return f"fixed budget of {budget} updates"
    return f"given enough updates: until the training loss stopped improving (patience {budget}, with an update cap)"


def budget_of(config: dict[str, Any]) -> tuple[str, int | None]:
    """``(kind, value)`` of a run's training budget (see the module docstring)."""
    if config.get("stop_patience"):
        return PATIENCE_BUDGET, int(config["stop_patience"])
    if config.get("max_updates") is not None:
        return UPDATE_BUDGET, int(config["max_updates"])
    return EPOCH_BUDGET, int(config.get("epochs") or 0)


def _curve_settings(config: dict[str, Any], budget_kind: str) -> dict[str, Any]:
    skipped = set(_NOT_CURVE_FIELDS) | set(_PANEL_FIELDS) | {"stop_patience"}
    if budget_kind != EPOCH_BUDGET:
        skipped.add("epochs")
    if budget_kind != PATIENCE_BUDGET:  # the update cap of runs given enough updates tells them apart
        skipped.add("max_updates")
    return {k: v for k, v in sorted(config.items()) if k not in skipped}


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def accuracy_vs_batch_size(
    records: Iterable[RunRecord], histories: Mapping[str, list[dict[str, float]]] | None = None
) -> list[AccuracyPanel]:
    """Group finished (and failed) runs into panels of curves of mean ± std accuracy per batch size.

    ``histories`` (run id → the run's per-epoch metrics, as :meth:`RunStore.metrics` returns them)
    fills each point's ``final_loss_drop`` (see :func:`_final_loss_drop`).

    Panels are ordered by dataset, model and budget; curves by their settings (so λ = 0 comes
    before λ = 0.9); points by batch size. Runs that end at a training-accuracy target are left
    out: each stopped at its own epoch, so they share no budget (the flat-vs-sharp comparison
    that trains them reads them itself).
    """
    panels: dict[str, dict[str, Any]] = {}
    for record in records:
        if not is_result(record.status):
            continue
        config = record.config
        if config.get("target_train_acc") is not None:
            continue
        kind, budget = budget_of(config)
        hidden = list(config["hidden"]) if config.get("hidden") else None
        panel_key = _key([config.get("dataset"), config.get("model"), hidden, kind, budget])
        panel = panels.setdefault(panel_key, {
            "panel": AccuracyPanel(str(config.get("dataset")), str(config.get("model")), hidden, kind, budget),
            "curves": {},
        })
        settings = _curve_settings(config, kind) | fingerprints(record.environment)
        curve = panel["curves"].setdefault(_key(settings), {"settings": settings, "runs": {}})
        full = config.get("batch_size") == "full"
        batch = record.batch_size_value
        curve["runs"].setdefault(batch, {"full": full, "records": []})["records"].append(record)

    result = []
    for entry in sorted(panels.values(), key=lambda e: (e["panel"].dataset, e["panel"].model,
                                                         e["panel"].budget_kind, e["panel"].budget or 0)):
        panel: AccuracyPanel = entry["panel"]
        curves = sorted(entry["curves"].values(), key=lambda c: _key(c["settings"]))
        labels = curve_labels([c["settings"] for c in curves])
        for curve, label in zip(curves, labels):
            points = [_point(batch, data["full"], data["records"], histories) for batch, data in sorted(curve["runs"].items())]
            panel.curves.append(AccuracyCurve(curve["settings"], label, points))
        result.append(panel)
    return result


def _point(batch_size: int, full: bool, records: list[RunRecord],
           histories: Mapping[str, list[dict[str, float]]] | None = None) -> AccuracyPoint:
    finished = [r for r in records if r.status == FINISHED]
    histories = histories or {}
    drops = [d for d in (_final_loss_drop(histories.get(r.run_id)) for r in finished) if d is not None]
    last_drops = [d for d in (last_epoch_drop(_losses(histories.get(r.run_id))) for r in finished) if d is not None]
    means, stds, seed_values = {}, {}, {}
    for metric in METRICS:
        by_seed: dict[int, list[float]] = {}
        for r in finished:
            if r.summary.get(metric) is not None:
                by_seed.setdefault(int(r.config.get("seed", 0)), []).append(float(r.summary[metric]))
        means[metric], stds[metric] = _mean_std([v for values in by_seed.values() for v in values])
        if by_seed:  # a seed run twice (e.g. on two devices) counts once here, at its mean
            seed_values[metric] = {seed: statistics.fmean(values) for seed, values in sorted(by_seed.items())}
    updates = [float(r.summary["updates"]) for r in finished if r.summary.get("updates") is not None]
    return AccuracyPoint(
        batch_size=batch_size,
        full_batch=full,
        seeds=sorted(int(r.config.get("seed", 0)) for r in finished),
        n_diverged=sum(r.status in FAILED_STATUSES for r in records),
        failures={str(status): n for status in FAILED_STATUSES if (n := sum(r.status == status for r in records))},
        updates=statistics.fmean(updates) if updates else None,
        means=means,
        stds=stds,
        final_loss_drop=statistics.fmean(drops) if drops else None,
        seed_values=seed_values,
        last_epoch_drop=statistics.fmean(last_drops) if last_drops else None,
    )


def left_out_counts(points: Iterable[AccuracyPoint]) -> dict[str, int]:
    """The failed runs left out of ``points``' means, by status, summed over the points (a point
    from before ``failures`` was kept counts its ``n_diverged`` as failed runs of unknown status)."""
    counts: dict[str, int] = {}
    for point in points:
        known = 0
        for status, n in point.failures.items():
            counts[status] = counts.get(status, 0) + n
            known += n
        if point.n_diverged > known:
            counts["failed"] = counts.get("failed", 0) + point.n_diverged - known
    return counts


def left_out_note(counts: Mapping[str, int]) -> str:
    """``{status: runs}`` as the note a figure or table carries: "2 runs left out: 1 diverged, 1
    failed to train"; empty when none was left out."""
    shown = [(status, n) for status in (*FAILED_STATUSES, "failed") if (n := counts.get(status, 0))]
    total = sum(n for _, n in shown)
    if not total:
        return ""
    return f"{total} run{'s' if total != 1 else ''} left out: " + ", ".join(f"{n} {status}" for status, n in shown)


def _losses(history: list[dict[str, float]] | None) -> list[float]:
    return [row["train_loss"] for row in history or () if row.get("train_loss") is not None]


def _final_loss_drop(history: list[dict[str, float]] | None) -> float | None:
    """``loss[(n − 1) // 2] − loss[n − 1]``: the training loss's fall over the second half of the
    ``n`` logged epochs (a full-batch run logs one update per epoch, so a single epoch says little)."""
    losses = _losses(history)
    if len(losses) < 2:
        return None
    return losses[(len(losses) - 1) // 2] - losses[-1]


def best_learning_rates(panel: AccuracyPanel, initial_grid: Sequence[float] | None = None,
                        cap: int = EXTENSION_CAP) -> AccuracyPanel:
    """``panel`` with the curves that differ only in η merged into one curve per remaining setting,
    whose point at each batch size is the η with the highest mean validation accuracy over seeds
    (ties: the smaller η) — each batch size gets its own tuned η, chosen on the validation split,
    never on the test set. The chosen point records ``lr``, the ``lr_grid`` tried at that batch size,
    ``lr_reason`` and ``lr_at_edge`` from the grid planner (:mod:`batchlab.analysis.grid`): the best
    η is interior, bounded by an η that failed, or on an edge (``lr_at_edge``), where a better η
    may lie beyond. An η with a failed run (diverged or failed to train, at any seed) or without a
    validation accuracy is never chosen: a step size that fails from one seed's initial weights is
    not a safe choice, and its mean over the other seeds would hide that. ``initial_grid``: the grid
    the runs started from, when known, so that values beyond it count as added by an extension with
    ``cap`` values a side ("cap of 3 added values reached"); without it the tried values are the
    grid, not extended. Curves that come in one η only are kept as they are (``lr`` set, the grid of
    one, no edge flag)."""
    groups: dict[str, list[AccuracyCurve]] = {}
    for curve in panel.curves:
        rest = {k: v for k, v in curve.settings.items() if k != "lr"}
        groups.setdefault(_key(rest), []).append(curve)
    tuned = AccuracyPanel(panel.dataset, panel.model, panel.hidden, panel.budget_kind, panel.budget)
    rests = [{k: v for k, v in group[0].settings.items() if k != "lr"} for group in groups.values()]
    labels = curve_labels(rests)
    for (group, rest, label) in zip(groups.values(), rests, labels):
        sizes = sorted({p.batch_size for c in group for p in c.points})
        points = []
        for batch in sizes:
            candidates = {float(c.settings.get("lr", 0.0)): p for c in group if (p := c.point(batch)) is not None}
            grid = sorted(candidates)
            chosen = _search_outcome(candidates, initial_grid, cap)
            if chosen.best is None:
                continue
            best = candidates[min(candidates, key=lambda lr: abs(lr - chosen.best))]
            several = len(grid) > 1
            edge = several and chosen.kind not in (INTERIOR, DIVERGENCE)
            points.append(AccuracyPoint(**{**asdict(best), "lr": chosen.best, "lr_grid": grid, "lr_at_edge": edge,
                                           "lr_reason": chosen.reason if several else None}))
        tuned.curves.append(AccuracyCurve(rest, (label + ", " if label else "") + "best η per B", points))
    return tuned


def tuned_panels(panels: Sequence[AccuracyPanel], searches: Sequence[Mapping[str, Any]] = ()) -> list[AccuracyPanel]:
    """Each panel at its best η per batch size (:func:`best_learning_rates`), with the initial grid
    and extension cap of its protocol taken from ``searches`` — the η searches a sweep recorded
    (dictionaries with ``dataset``, ``model``, ``protocol``, ``grid``, ``cap``; the lecture
    record's ``lr_search``) — so that η values the search added are told from the grid and a best η
    the cap stopped at is said to be so. A panel without a recorded search is tuned over the values
    it holds, not extended."""
    grids = {(s["dataset"], s["model"], s["protocol"]): (list(s["grid"]), int(s["cap"])) for s in searches
             if len(s.get("grid") or ()) > 1}
    tuned = []
    for panel in panels:
        grid, cap = grids.get((panel.dataset, panel.model, panel.budget_kind), (None, EXTENSION_CAP))
        tuned.append(best_learning_rates(panel, grid, cap))
    return tuned


def _search_outcome(candidates: Mapping[float, AccuracyPoint], initial_grid: Sequence[float] | None, cap: int):
    """The grid planner's outcome over the η values run at one batch size: from ``initial_grid``
    extended by up to ``cap`` values a side when given; over the values run, not extended, when
    not, or when the search has values left to train (a store whose sweep did not finish)."""
    def decide(grid: Sequence[float], added: int):
        state = GridState.learning_rate(grid, cap=added)
        for lr, point in candidates.items():
            state.record(lr, point.mean("val_acc"), diverged=_failed_value(point))
        return grid_outcome(state)

    if initial_grid:
        chosen = decide(initial_grid, cap)
        if chosen.kind != PENDING:
            return chosen
    return decide(sorted(candidates), 0)


def validation_score(runs: Iterable[Any]) -> tuple[float | None, bool]:
    """The score a grid search records for one η from its runs (objects with ``status`` and
    ``summary``, one per seed): the mean validation accuracy over the finished runs, and whether
    the η failed — a run diverged or failed to train, or none has a validation accuracy."""
    runs = list(runs)
    values = [float(r.summary["val_acc"]) for r in runs
              if r.status == FINISHED and r.summary.get("val_acc") is not None]
    score = statistics.fmean(values) if values else None
    return score, score is None or any(r.status in FAILED_STATUSES for r in runs)


def _failed_value(point: AccuracyPoint) -> bool:
    """Whether an η counts as failed at one batch size: a run of it failed, or none has a
    validation accuracy."""
    return point.n_diverged > 0 or point.mean("val_acc") is None


def curve_labels(settings: list[dict[str, Any]]) -> list[str]:
    """Short labels naming only the fields that differ between curves (optimizer and λ always)."""
    keys = sorted({k for s in settings for k in s})
    varying = [k for k in keys if len({_key(s.get(k)) for s in settings}) > 1]
    shown = ["optimizer", "momentum"] + [k for k in varying if k not in ("optimizer", "momentum")]
    labels = []
    for setting in settings:
        parts = []
        for key in shown:
            if key not in setting:
                continue
            value = setting[key]
            name = _FIELD_LABELS.get(key, key)
            parts.append(f"{value}" if name == "" else f"{name} = {value:g}" if isinstance(value, float)
                         else f"{name} = {value}")
        labels.append(", ".join(parts))
    return labels
