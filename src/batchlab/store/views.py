"""One stored run in full (``batchlab runs show``) and runs side by side (``batchlab runs compare``).

Compared runs of a user's model or data also show their short model and data fingerprints
(:mod:`batchlab.store.identity`), marked like any other difference: runs under the same names
that trained another model or other data. A run whose metric is not accuracy (a user's regression
model) shows its own metric (``train_mse`` …) in the summary rows and the curves.

Text only, except :func:`compare_figure` (matplotlib, imported when called). Differences between
compared runs carry a marker (``*``) in every output; on a terminal they are also bold and
coloured (ANSI escapes, left out when the ``NO_COLOR`` environment variable is set, see
no-color.org).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from batchlab.models.architecture import architecture
from batchlab.config import RunConfig
from batchlab.files import json_default
from batchlab.store.export import align_columns
from batchlab.store.identity import ACCURACY_KEY, fingerprints, metric_key
from batchlab.store.record import RunRecord

# Per-epoch columns in the order a reader looks for them; any other logged metric follows.
EPOCH_COLUMNS = ("epoch", "updates", "train_loss", "train_acc", "val_loss", "val_acc", "batch_loss_mean",
                 "epoch_time_s")
# Summary values worth comparing side by side.
SUMMARY_ROWS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "updates",
                "epochs_completed", "time_per_update_s", "time_per_epoch_s", "diverged_epoch")
CONFIG_ORDER = tuple(field.name for field in dataclasses.fields(RunConfig))
DIFFERENT = "*"
_BOLD_YELLOW, _RESET = "\x1b[1;33m", "\x1b[0m"
# Scalar fields of an attached record shown on its line (the rest: --format json).
RECORD_FIELDS_SHOWN = 6


@dataclasses.dataclass
class RunDetails:
    """Everything ``runs show`` prints about one run."""

    record: RunRecord
    epochs: list[dict[str, float]]
    records: list[dict[str, Any]]
    tags: list[str]
    note: str | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.record.to_dict(), "architecture": architecture(self.record.config), "tags": self.tags,
                "note": self.note, "per_epoch": self.epochs, "records": self.records}


def use_colour(stream: Any) -> bool:
    """ANSI colour on a terminal, unless ``NO_COLOR`` is set."""
    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ


def show_text(details: RunDetails) -> str:
    """The run's identity, config, environment, summary, per-epoch table and attached records."""
    record = details.record
    lines = [f"run {record.run_id}  {record.status}  {architecture(record.config)}"]
    if details.tags:
        lines.append(f"tags: {', '.join(details.tags)}")
    if details.note:
        lines.append(f"note: {details.note}")
    lines.append(f"created {record.created}; started {record.started or '-'}; finished {record.finished or '-'}; "
                 f"host {record.host or '-'}, pid {record.pid or '-'}")
    lines += ["", "config:"] + _key_values(_ordered(record.config, CONFIG_ORDER))
    lines += ["", "environment:"] + _key_values(record.environment)
    lines += ["", "summary:"] + (_key_values(_ordered(record.summary, SUMMARY_ROWS)) if record.summary else ["  -"])
    lines += ["", f"per-epoch metrics ({len(details.epochs)} epochs):"]
    lines += _indent(epoch_table(details.epochs)) if details.epochs else ["  -"]
    lines += ["", f"attached records ({len(details.records)}):"]
    lines += [_record_line(item) for item in details.records] or ["  -"]
    return "\n".join(lines)


def epoch_table(epochs: Sequence[Mapping[str, float]]) -> str:
    columns = [c for c in EPOCH_COLUMNS if any(c in row for row in epochs)]
    columns += sorted({key for row in epochs for key in row} - set(columns))
    cells = [columns] + [[_number_text(row.get(column)) for column in columns] for row in epochs]
    return align_columns(cells, [False] * len(columns))


def compare_text(records: Sequence[RunRecord], epochs: Sequence[Sequence[Mapping[str, float]]], *,
                 colour: bool = False) -> str:
    """Configs and summaries side by side (differences marked), then the metric curves per epoch."""
    heads = ["", ""] + [f"run {i + 1}" for i in range(len(records))]
    config_keys = _ordered_keys([r.config for r in records], CONFIG_ORDER)
    rows = [("", "run id", [r.run_id for r in records]), ("", "status", [r.status for r in records]),
            ("", "arch", [architecture(r.config) for r in records])]
    rows += [("", key, [r.config.get(key) for r in records]) for key in config_keys]
    # What the runs trained beyond their names: a user's model and data (store/identity.py).
    identities = [fingerprints(r.environment) for r in records]
    rows += [("", key, [identity.get(key) for identity in identities])
             for key in ("model_fingerprint", "data_fingerprint") if any(key in i for i in identities)]
    summary_keys = [k for k in _summary_rows(records) if any(k in r.summary for r in records)]
    rows += [("", key, [r.summary.get(key) for r in records]) for key in summary_keys]
    cells, differs = [heads], [False]
    for _, key, values in rows:
        different = any(not _same(values[0], value) for value in values[1:])
        cells.append([DIFFERENT if different and key != "run id" else "", key] + [_cell(v) for v in values])
        differs.append(different and key != "run id")
    table = align_columns(cells, [True] * len(heads)).splitlines()
    if colour:
        table = [f"{_BOLD_YELLOW}{line}{_RESET}" if different else line for line, different in zip(table, differs)]
    n_different = sum(differs)
    lines = [f"{DIFFERENT} marks the {n_different} row(s) that differ", *table, ""]
    metrics = [metric_key(r.environment) for r in records]
    lines += ["per-epoch metrics (run 1, run 2, …):", *_indent(curves_table(epochs, metrics))]
    return "\n".join(lines)


def curves_table(epochs: Sequence[Sequence[Mapping[str, float]]], metrics: Sequence[str] | None = None) -> str:
    """Training loss and the metric (validation when logged, else training) of each run per
    epoch; ``metrics``: each run's metric key (default: accuracy for all)."""
    keys = _curve_keys(epochs, metrics)
    n = len(epochs)
    heads = ["epoch"] + [f"train loss {i + 1}" for i in range(n)] + [f"{key.replace('_', ' ')} {i + 1}"
                                                                     for i, key in enumerate(keys)]
    by_epoch = [{int(row["epoch"]): row for row in run} for run in epochs]
    cells = [heads]
    for epoch in sorted({e for run in by_epoch for e in run}):
        cells.append([str(epoch)]
                     + [_number_text(run.get(epoch, {}).get("train_loss")) for run in by_epoch]
                     + [_number_text(run.get(epoch, {}).get(key)) for run, key in zip(by_epoch, keys)])
    return align_columns(cells, [False] * len(heads))


def compare_figure(records: Sequence[RunRecord], epochs: Sequence[Sequence[Mapping[str, float]]], target: Path) -> Path:
    """Training loss (log scale) and the metric (accuracy, or a user model's own) per epoch of
    each run, written to ``target`` (its suffix names the format: png, svg or pdf)."""
    from matplotlib.figure import Figure

    from batchlab.files import save_figure

    keys = _curve_keys(epochs, [metric_key(r.environment) for r in records])
    metric = keys[0].replace("_", " ") if len(set(keys)) == 1 else "metric (each run's own)"
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for record, run, key in zip(records, epochs, keys):
        config = record.config
        label = (f"{record.run_id[:8]}: B={config.get('batch_size')}, λ={config.get('momentum')}, "
                 f"η={config.get('lr')}")
        xs = [row["epoch"] for row in run]
        loss_axes.plot(xs, [row.get("train_loss", math.nan) for row in run], marker="o", label=label)
        accuracy_axes.plot(xs, [row.get(key, math.nan) for row in run], marker="o", label=label)
    loss_axes.set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
    accuracy_axes.set(xlabel="epoch", ylabel=metric, title=metric)
    accuracy_axes.legend(fontsize="small")
    (written,) = save_figure(figure, target.with_suffix(""), formats=(target.suffix.lstrip(".").lower(),))
    return written


# ----------------------------------------------------------------------------- helpers


def _curve_keys(epochs: Sequence[Sequence[Mapping[str, float]]], metrics: Sequence[str] | None) -> list[str]:
    """Each run's curve: ``val_<metric>`` when any compared run logged its validation metric,
    else ``train_<metric>`` (the metric: the run's own key, accuracy by default)."""
    metrics = list(metrics) if metrics is not None else [ACCURACY_KEY] * len(epochs)
    val = any(f"val_{metric}" in row for run, metric in zip(epochs, metrics) for row in run)
    return [f"{'val' if val else 'train'}_{metric}" for metric in metrics]


def _summary_rows(records: Sequence[RunRecord]) -> list[str]:
    """:data:`SUMMARY_ROWS`, each run's own metric beside accuracy's rows when it is another."""
    extra = [metric for metric in dict.fromkeys(metric_key(r.environment) for r in records) if metric != ACCURACY_KEY]
    rows: list[str] = []
    for key in SUMMARY_ROWS:
        rows.append(key)
        split = key.removesuffix(f"_{ACCURACY_KEY}")
        if split != key:
            rows += [f"{split}_{metric}" for metric in extra]
    return rows


def _ordered(values: Mapping[str, Any], first: Sequence[str]) -> dict[str, Any]:
    return {key: values[key] for key in _ordered_keys([values], first)}


def _ordered_keys(dicts: Sequence[Mapping[str, Any]], first: Sequence[str]) -> list[str]:
    present = {key for d in dicts for key in d}
    return [k for k in first if k in present] + sorted(present - set(first))


def _key_values(values: Mapping[str, Any]) -> list[str]:
    if not values:
        return ["  -"]
    width = max(len(key) for key in values)
    return [f"  {key.ljust(width)}  {_cell(value)}" for key, value in values.items()]


def _record_line(item: Mapping[str, Any]) -> str:
    value = item["value"]
    scalars = [f"{k}={_cell(v)}" for k, v in value.items()
               if k not in ("run_id", "config") and (isinstance(v, (int, float, str, bool)) or v is None)]
    shown = ", ".join(scalars[:RECORD_FIELDS_SHOWN]) + (", …" if len(scalars) > RECORD_FIELDS_SHOWN else "")
    return f"  {item['kind']}  {item['key']}  ({item['created'][:19]})" + (f"\n      {shown}" if shown else "")


def _indent(text: str) -> list[str]:
    return ["  " + line for line in text.splitlines()]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return _number_text(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=json_default)
    return str(value)


def _number_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.6g}"
    return str(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b
