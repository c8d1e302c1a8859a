"""Stored runs as a readable table, CSV or JSON (for ``batchlab runs`` and sweep results)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable
from typing import Any

from batchlab.errors import StoreError
from batchlab.files import json_default, strict_json
from batchlab.store.runs import RunRecord, RunStore

# The flat columns of an exported run, in order: config first, then the summary.
CONFIG_COLUMNS = ("dataset", "model", "optimizer", "batch_size", "lr", "momentum", "seed", "epochs")
SUMMARY_COLUMNS = ("train_acc", "val_acc", "test_acc", "updates", "time_per_update_s",
                   "time_per_epoch_s", "diverged_epoch")
EXPORT_COLUMNS = ("run_id", "status") + CONFIG_COLUMNS + SUMMARY_COLUMNS
EXPORT_FORMATS = ("table", "csv", "json")

# Headers of the readable table: (column, header).
_TABLE_HEADERS = (
    ("run_id", "run id"), ("status", "status"), ("dataset", "dataset"), ("model", "model"),
    ("optimizer", "opt"), ("batch_size", "B"), ("lr", "lr"), ("momentum", "λ"), ("seed", "seed"),
    ("epochs", "epochs"), ("train_acc", "train acc"), ("val_acc", "val acc"),
    ("test_acc", "test acc"), ("time_per_update_s", "time/update"),
)


def flat_run(record: RunRecord) -> dict[str, Any]:
    """One run as flat columns: :data:`EXPORT_COLUMNS`, then every other config and summary key
    (a summary key that repeats a config key is prefixed ``summary_``), then the timestamps."""
    row: dict[str, Any] = {"run_id": record.run_id, "status": record.status}
    row.update({key: record.config.get(key) for key in CONFIG_COLUMNS})
    row.update({key: record.summary.get(key) for key in SUMMARY_COLUMNS})
    for key in sorted(set(record.config) - set(row)):
        row[key] = record.config[key]
    for key in sorted(set(record.summary) - set(SUMMARY_COLUMNS)):
        row[key if key not in row else f"summary_{key}"] = record.summary[key]
    row.update(created=record.created, started=record.started, finished=record.finished)
    return row


def export_runs(
    records: Iterable[RunRecord],
    fmt: str = "table",
    metrics_for: RunStore | Callable[[str], list[dict]] | None = None,
) -> str:
    """Runs as a readable table, CSV or JSON (both load straight into pandas).

    ``table`` shows :data:`EXPORT_COLUMNS` less the summary's update count and epoch time; ``csv``
    and ``json`` hold every column of :func:`flat_run` (JSON writes NaN as null). With
    ``metrics_for`` (a store, or a function from run id to per-epoch metrics) the per-epoch
    metrics are included: JSON gives each run a ``per_epoch`` list; CSV becomes one row per
    (run, epoch) with the run's id, status and config followed by the epoch's metrics.
    """
    if fmt not in EXPORT_FORMATS:
        raise StoreError(f"unknown export format {fmt!r}; allowed: {', '.join(EXPORT_FORMATS)}")
    records = list(records)
    lookup = metrics_for.metrics if isinstance(metrics_for, RunStore) else metrics_for
    if fmt == "table":
        if lookup is not None:
            raise StoreError("per-epoch metrics cannot be shown in the table; allowed: csv or json")
        return _table(records)
    rows = [flat_run(record) for record in records]
    if fmt == "json":
        if lookup is not None:
            for row in rows:
                row["per_epoch"] = lookup(row["run_id"])
        return json.dumps(strict_json(rows), indent=2, default=json_default)
    if lookup is None:
        return _csv(rows, EXPORT_COLUMNS)
    return _csv([row for record in records for row in _epoch_rows(record, lookup(record.run_id))],
                ("run_id", "status") + CONFIG_COLUMNS + ("epoch",))


def _epoch_rows(record: RunRecord, epochs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per epoch: the run's id, status and config, then that epoch's metrics (a metric
    whose name repeats a config key is prefixed ``metric_``)."""
    base: dict[str, Any] = {"run_id": record.run_id, "status": record.status}
    base.update({key: record.config.get(key) for key in CONFIG_COLUMNS})
    base.update({key: record.config[key] for key in sorted(set(record.config) - set(base))})
    return [base | {(key if key == "epoch" or key not in base else f"metric_{key}"): value
                    for key, value in epoch.items()}
            for epoch in epochs]


def _csv(rows: list[dict[str, Any]], leading: tuple[str, ...]) -> str:
    columns: list[str] = list(leading)
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_cell(value) for key, value in row.items()})
    return out.getvalue()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, default=json_default)
    return value


def _table(records: list[RunRecord]) -> str:
    if not records:
        return "(no runs)"
    cells = [[header for _, header in _TABLE_HEADERS]]
    for record in records:
        row = flat_run(record)
        cells.append([_table_cell(column, row.get(column)) for column, _ in _TABLE_HEADERS])
    widths = [max(len(line[i]) for line in cells) for i in range(len(_TABLE_HEADERS))]
    # Text columns align left, numbers right.
    left = {"run_id", "status", "dataset", "model", "optimizer"}
    lines = []
    for line in cells:
        parts = [cell.ljust(width) if column in left else cell.rjust(width)
                 for cell, width, (column, _) in zip(line, widths, _TABLE_HEADERS)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _table_cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if column in ("train_acc", "val_acc", "test_acc"):
        return f"{value:.4f}"
    if column == "time_per_update_s":
        return f"{value * 1e3:.3f} ms"
    if column in ("lr", "momentum"):
        return f"{value:g}"
    return str(value)
