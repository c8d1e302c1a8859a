"""Stored runs as a readable table, CSV or JSON (for ``batchlab runs`` and sweep results), and
the registry of every export format (:data:`EXPORTERS`).

An exporter writes text (``table``, ``csv``, ``json``: to the terminal or one file) or a folder
(``tensorboard``: one event folder per run). Another dashboard's exporter — MLflow, say — is
one :class:`Exporter` more, registered with :func:`register_exporter`; ``batchlab runs --format``
offers every registered name.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchlab.models.architecture import architecture
from batchlab.errors import StoreError
from batchlab.files import json_default, strict_json_text
from batchlab.store.identity import ACCURACY_KEY, fingerprints, metric_key, with_digest
from batchlab.store.record import RunRecord
from batchlab.store.runs import RunStore

# Per-epoch metrics of one run: a function from run id to ``[{"epoch": e, key: value, …}, …]``.
MetricsLookup = Callable[[str], list[dict]]
TEXT = "text"
FOLDER = "folder"


@dataclass(frozen=True)
class Exporter:
    """One export format.

    ``writes`` is :data:`TEXT` — ``export(records, metrics, labels)`` returns the text — or
    :data:`FOLDER` — ``export(records, metrics, labels, folder)`` writes under ``folder`` and
    returns the paths written. ``metrics`` is a :data:`MetricsLookup` or None (no per-epoch
    metrics asked for); ``per_epoch`` says whether the format always wants them.
    """

    name: str
    description: str
    writes: str
    export: Callable[..., Any]
    per_epoch: bool = False


@dataclass(frozen=True)
class Labels:
    """What the user attached to runs: ``tags`` (run id → tags) and ``notes`` (run id → note)."""

    tags: Mapping[str, Sequence[str]] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, store: RunStore) -> "Labels":
        return cls(store.tags(), store.notes())

    def add_to(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` with its run's ``tags`` and ``note`` columns (when any run has some)."""
        if self.tags:
            row["tags"] = list(self.tags.get(row["run_id"], ()))
        if self.notes:
            row["note"] = self.notes.get(row["run_id"])
        return row

# The flat columns of an exported run, in order: config first, then the summary.
CONFIG_COLUMNS = ("dataset", "model", "optimizer", "batch_size", "lr", "momentum", "seed", "epochs")
SPLITS = ("train", "val", "test")
ACCURACY_COLUMNS = tuple(f"{split}_{ACCURACY_KEY}" for split in SPLITS)
SUMMARY_COLUMNS = (*ACCURACY_COLUMNS, "updates", "time_per_update_s", "time_per_epoch_s", "diverged_epoch")
EXPORT_COLUMNS = ("run_id", "status") + CONFIG_COLUMNS + SUMMARY_COLUMNS
EXPORT_FORMATS = ("table", "csv", "json")

# Headers of the readable table: (column, header).
_TABLE_HEADERS = (
    ("run_id", "run id"), ("status", "status"), ("dataset", "data"), ("model", "model"),
    ("arch", "arch"), ("optimizer", "opt"), ("batch_size", "B"), ("lr", "lr"), ("momentum", "λ"), ("seed", "seed"),
    ("epochs", "epochs"), ("train_acc", "train acc"), ("val_acc", "val acc"),
    ("test_acc", "test acc"), ("time_per_update_s", "time/update"),
)
# In a listing with a run whose metric is not accuracy, the accuracy columns give way to the
# metric's name and each run's own final values.
_METRIC_HEADERS = (("metric", "metric"), ("train_metric", "train"), ("val_metric", "val"), ("test_metric", "test"))
_TABLE_LEFT = {"run_id", "status", "dataset", "model", "arch", "optimizer", "metric", "tags", "note"}
# The table shows the start of a note; `batchlab runs show` shows all of it.
NOTE_WIDTH = 40


def flat_run(record: RunRecord) -> dict[str, Any]:
    """One run as flat columns: :data:`EXPORT_COLUMNS`, the short model and data fingerprints
    when the run has them (:mod:`batchlab.store.identity`), then every other config and summary
    key (a summary key that repeats a config key is prefixed ``summary_``), then the timestamps.

    A run whose metric is not accuracy (a user's regression model: :func:`~batchlab.store.identity.metric_key`)
    has ``metric`` (its key) and its own ``train_<key>``, ``val_<key>``, ``test_<key>`` in place
    of the accuracy columns, which it never recorded."""
    row: dict[str, Any] = {"run_id": record.run_id, "status": record.status}
    row.update({key: record.config.get(key) for key in CONFIG_COLUMNS})
    row.update(fingerprints(record.environment))
    metric = metric_key(record.environment)
    summary_columns = SUMMARY_COLUMNS
    if metric != ACCURACY_KEY:
        row["metric"] = metric
        summary_columns = (*(f"{split}_{metric}" for split in SPLITS), *SUMMARY_COLUMNS[len(ACCURACY_COLUMNS):])
    row.update({key: record.summary.get(key) for key in summary_columns})
    for key in sorted(set(record.config) - set(row)):
        row[key] = record.config[key]
    for key in sorted(set(record.summary) - set(summary_columns)):
        row[key if key not in row else f"summary_{key}"] = record.summary[key]
    row.update(created=record.created, started=record.started, finished=record.finished)
    return row


def export_runs(
    records: Iterable[RunRecord],
    fmt: str = "table",
    metrics_for: RunStore | MetricsLookup | None = None,
    labels: Labels | None = None,
) -> str:
    """Runs as a readable table, CSV or JSON (both load straight into pandas).

    ``table`` shows :data:`EXPORT_COLUMNS` less the summary's update count and epoch time, plus
    each run's architecture (and its tags and note, when any run has some); ``csv`` and ``json``
    hold every column of :func:`flat_run` and the ``labels`` (JSON writes NaN as null). With ``metrics_for`` (a store, or a
    function from run id to per-epoch metrics) the per-epoch metrics are included: JSON gives
    each run a ``per_epoch`` list; CSV becomes one row per (run, epoch) with the run's id, status
    and config followed by the epoch's metrics.
    """
    exporter = get_exporter(fmt)
    if exporter.writes != TEXT:
        raise StoreError(f"format {fmt!r} writes a folder, not text; allowed: {', '.join(formats(TEXT))}")
    lookup = metrics_for.metrics if isinstance(metrics_for, RunStore) else metrics_for
    return exporter.export(list(records), lookup, labels or Labels())


def _export_table(records: list[RunRecord], lookup: MetricsLookup | None,
                  labels: Labels) -> str:
    if lookup is not None:
        raise StoreError("per-epoch metrics cannot be shown in the table; allowed: csv or json")
    return _table(records, labels)


def _export_json(records: list[RunRecord], lookup: MetricsLookup | None,
                 labels: Labels) -> str:
    rows = [labels.add_to(flat_run(record)) for record in records]
    if lookup is not None:
        for row in rows:
            row["per_epoch"] = lookup(row["run_id"])
    return strict_json_text(rows)


def _export_csv(records: list[RunRecord], lookup: MetricsLookup | None,
                labels: Labels) -> str:
    if lookup is None:
        return _csv([labels.add_to(flat_run(record)) for record in records], EXPORT_COLUMNS)
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


def _table(records: list[RunRecord], labels: Labels) -> str:
    if not records:
        return "(no runs)"
    headers = _TABLE_HEADERS
    if any(labels.tags.get(r.run_id) for r in records):
        headers += (("tags", "tags"),)
    if any(labels.notes.get(r.run_id) for r in records):
        headers += (("note", "note"),)
    metrics = [metric_key(record.environment) for record in records]
    if any(metric != ACCURACY_KEY for metric in metrics):
        accuracy = {column for column in ACCURACY_COLUMNS}
        at = next(i for i, (column, _) in enumerate(headers) if column in accuracy)
        headers = (*headers[:at], *_METRIC_HEADERS, *(h for h in headers[at:] if h[0] not in accuracy))
    cells = [[header for _, header in headers]]
    for record, metric in zip(records, metrics):
        row = flat_run(record)
        row |= {"metric": metric, **{f"{split}_metric": record.summary.get(f"{split}_{metric}") for split in SPLITS}}
        # The data and model columns carry the fingerprints: same names, other content, other runs.
        row |= {"dataset": with_digest(row["dataset"], row.get("data_fingerprint")),
                "model": with_digest(row["model"], row.get("model_fingerprint")),
                "arch": architecture(record.config),
                "tags": ",".join(labels.tags.get(record.run_id, ())),
                "note": _shortened(labels.notes.get(record.run_id, ""))}
        cells.append([_table_cell(column, row.get(column)) for column, _ in headers])
    return align_columns(cells, [column in _TABLE_LEFT for column, _ in headers])


def align_columns(cells: list[list[str]], left: Sequence[bool]) -> str:
    """Rows of cells as aligned text: a column flagged in ``left`` aligns left (text), the
    others right (numbers); two spaces between columns."""
    widths = [max(len(line[i]) for line in cells) for i in range(len(left))]
    lines = []
    for line in cells:
        parts = [cell.ljust(width) if is_left else cell.rjust(width)
                 for cell, width, is_left in zip(line, widths, left)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _shortened(text: str, limit: int = NOTE_WIDTH) -> str:
    """The first line of ``text``, cut to ``limit`` characters with an ellipsis."""
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit and line == text else line[: limit - 1].rstrip() + "…"


def _table_cell(column: str, value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if column in ACCURACY_COLUMNS or column in ("train_metric", "val_metric", "test_metric"):
        return f"{value:.4g}" if column.endswith("_metric") else f"{value:.4f}"
    if column == "time_per_update_s":
        return f"{value * 1e3:.3f} ms"
    if column in ("lr", "momentum"):
        return f"{value:g}"
    return str(value)


# ----------------------------------------------------------------------------- the registry

EXPORTERS: dict[str, Exporter] = {}


def register_exporter(exporter: Exporter) -> Exporter:
    """Add (or replace) an export format; ``batchlab runs --format`` offers it from then on."""
    if exporter.writes not in (TEXT, FOLDER):
        raise ValueError(f"exporter {exporter.name}: writes={exporter.writes!r}; allowed: {TEXT}, {FOLDER}")
    EXPORTERS[exporter.name] = exporter
    return exporter


def get_exporter(name: str) -> Exporter:
    try:
        return EXPORTERS[name]
    except KeyError:
        raise StoreError(f"unknown export format {name!r}; allowed: {', '.join(EXPORTERS)}") from None


def formats(writes: str | None = None) -> tuple[str, ...]:
    """The registered format names (only those writing ``writes``, when given)."""
    return tuple(name for name, e in EXPORTERS.items() if writes is None or e.writes == writes)


def _export_tensorboard(records: list[RunRecord], lookup: MetricsLookup | None, labels: Labels,
                        folder: Path) -> list[Path]:
    from batchlab.store.tensorboard import write_tensorboard  # needs the tensorboard extra

    return write_tensorboard(records, lookup, folder)


register_exporter(Exporter("table", "a readable table (the terminal's default)", TEXT, _export_table))
register_exporter(Exporter("csv", "every config and summary column, one row per run (pandas.read_csv)", TEXT,
                           _export_csv))
register_exporter(Exporter("json", "every config and summary column, a list of runs (pandas.read_json)", TEXT,
                           _export_json))
register_exporter(Exporter("tensorboard", "one TensorBoard event folder per run: per-epoch scalars and the "
                           "hyperparameters (HParams view); needs batchlab[tensorboard]", FOLDER,
                           _export_tensorboard, per_epoch=True))
