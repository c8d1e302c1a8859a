"""Stored runs as TensorBoard event folders (``batchlab runs --format tensorboard --out DIR``).

Each run becomes ``DIR/<run id>/`` (replaced whole when exported again, so scalars never appear
twice), written with :class:`torch.utils.tensorboard.SummaryWriter`:

* per epoch (step = epoch): ``loss/train``, ``loss/val``, ``loss/batch_mean``, ``accuracy/train``,
  ``accuracy/val``, ``progress/updates``, ``time/epoch_s`` (a user's metric ``m``: ``m/train``,
  ``m/val``);
* the same values again against the update count, under ``by_update/…`` (step = the number of
  updates at the end of the epoch, the global step TensorBoard users expect): the store keeps
  metrics per epoch, so these are the epoch's values at the epoch's last update. The count is
  the row's ``updates``, or the sum of ``epoch_updates`` over the epochs so far in rows without
  it; a run whose rows hold neither gets no ``by_update`` scalars;
* the hyperparameters, through ``SummaryWriter.add_hparams`` with the run's final metrics
  (``final/…``), so TensorBoard's HParams view lists every run and its parallel-coordinates view
  shows batch size × momentum × learning rate against the accuracies.

Hyperparameters are the run's config (less the data folder), its architecture, status and
effective step η/(1 − λ); ``batch_size`` is the number of examples per update (``full`` resolved
to the training-set size when the run has a summary). TensorBoard's HParams plugin takes the list
of hyperparameters and metrics from the first experiment summary it finds, so every run gets the
same metric names (NaN where a run has no value) and text hyperparameters share one domain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from batchlab.models.architecture import architecture
from batchlab.errors import StoreError
from batchlab.files import atomic_directory
from batchlab.store.record import RunRecord

# Per-epoch metric → TensorBoard scalar tag (tags sharing a prefix share a chart section).
SCALAR_TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "batch_loss_mean": "loss/batch_mean",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
    "updates": "progress/updates",
    "epoch_time_s": "time/epoch_s",
}
# Per-epoch values that are not scalars to plot: the step itself and its parts.
_NOT_SCALARS = ("epoch", "epoch_updates")
# The section of the scalars plotted against the update count.
BY_UPDATE = "by_update/"
# Summary values given to add_hparams as the run's final metrics.
FINAL_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "time_per_update_s")
FINAL_PREFIX = "final/"
# Config fields that are not hyperparameters (where the data lives).
_NOT_HPARAMS = ("data_dir",)


def write_tensorboard(records: Sequence[RunRecord], metrics_for: Callable[[str], list[dict]] | None,
                      folder: Path) -> list[Path]:
    """Write one event folder per run under ``folder``; returns the folders written."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise StoreError("the tensorboard export needs the tensorboard package; "
                         "allowed: pip install 'batchlab[tensorboard]'") from None
    if metrics_for is None:
        raise StoreError("the tensorboard export needs the runs' per-epoch metrics")
    all_hparams = {record.run_id: hyperparameters(record) for record in records}
    domains = _text_domains(all_hparams.values())
    metric_names = [key for key in FINAL_METRICS if any(key in record.summary for record in records)]
    written = []
    for record in records:
        target = Path(folder) / record.run_id
        with atomic_directory(target) as staging:
            with SummaryWriter(log_dir=str(staging)) as writer:
                rows = metrics_for(record.run_id)
                for row, updates in zip(rows, update_counts(rows)):
                    for key, value in row.items():
                        if key in _NOT_SCALARS or not _is_number(value):
                            continue
                        writer.add_scalar(scalar_tag(key), float(value), global_step=int(row["epoch"]))
                        if updates is not None and key != "updates":
                            writer.add_scalar(BY_UPDATE + scalar_tag(key), float(value), global_step=updates)
                hparams = all_hparams[record.run_id]
                final = {FINAL_PREFIX + key: _number(record.summary.get(key)) for key in metric_names}
                # run_name "." keeps the hyperparameters in the run's own folder, beside its scalars.
                writer.add_hparams(hparams, final, {k: v for k, v in domains.items() if k in hparams}, run_name=".")
        written.append(target)
    return written


def scalar_tag(key: str) -> str:
    """The TensorBoard tag of a per-epoch metric: :data:`SCALAR_TAGS`, else ``metric/split`` for
    ``split_metric`` (a user's metric), else ``other/key``."""
    if key in SCALAR_TAGS:
        return SCALAR_TAGS[key]
    split, _, metric = key.partition("_")
    if split in ("train", "val", "test") and metric:
        return f"{metric}/{split}"
    return f"other/{key}"


def update_counts(rows: Sequence[dict]) -> list[int | None]:
    """The update count at the end of each epoch row (see the module docstring), or None."""
    counts: list[int | None] = []
    total: int | None = 0
    for row in rows:
        if _is_number(row.get("epoch_updates")) and total is not None:
            total += int(row["epoch_updates"])
        else:
            total = None
        counts.append(int(row["updates"]) if _is_number(row.get("updates")) else total)
    return counts


def hyperparameters(record: RunRecord) -> dict[str, Any]:
    """The run's hyperparameters as add_hparams takes them: bool, int, float or text, no None."""
    values: dict[str, Any] = {}
    for key, value in sorted(record.config.items()):
        if key in _NOT_HPARAMS or value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        values[key] = value
    values["batch_size"] = record.batch_size_value
    if values["batch_size"] is None:
        del values["batch_size"]  # 'full' of a run that never got going: no number to plot
    values["arch"] = architecture(record.config)
    values["status"] = record.status
    lr, momentum = record.config.get("lr"), record.config.get("momentum")
    if _is_number(lr) and _is_number(momentum) and momentum < 1:
        values["effective_step"] = lr / (1.0 - momentum)
    return values


def _text_domains(all_hparams: Any) -> dict[str, list[str]]:
    """For each text hyperparameter, every value any exported run has (one shared domain)."""
    domains: dict[str, set[str]] = {}
    for hparams in all_hparams:
        for key, value in hparams.items():
            if isinstance(value, str):
                domains.setdefault(key, set()).add(value)
    return {key: sorted(values) for key, values in domains.items()}


def _number(value: Any) -> float:
    return float(value) if _is_number(value) else math.nan


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
