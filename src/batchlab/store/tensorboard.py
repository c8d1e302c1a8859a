"""Stored runs as TensorBoard event folders (``batchlab runs --format tensorboard --out DIR``).

Each run becomes ``DIR/<run id>/`` (replaced whole when exported again, so scalars never appear
twice), written with :class:`torch.utils.tensorboard.SummaryWriter`:

* per epoch (step = epoch): ``loss/train``, ``loss/val``, ``loss/batch_mean``, ``accuracy/train``,
  ``accuracy/val``, ``progress/updates``, ``time/epoch_s``, and at the last epoch the test split's
  ``loss/test`` and ``accuracy/test`` (measured once, with the final weights). A run whose metric is
  not accuracy (a user's model that names another, :func:`batchlab.store.identity.metric_key`:
  ``mae``, say) has its own ``mae/train``, ``mae/val``, ``mae/test`` in place of the accuracy
  tags, and no accuracy tag at all;
* the same values again against the update count, under ``by_update/…`` (step = the number of
  updates at the end of the epoch, the global step TensorBoard users expect): the store keeps
  metrics per epoch, so these are the epoch's values at the epoch's last update. The count is
  the row's ``updates``, or the sum of ``epoch_updates`` over the epochs so far in rows without
  it; a run whose rows hold neither gets no ``by_update`` scalars;
* the hyperparameters and the run's final metrics (``final/…``: the summary's losses and its own
  metric on each split, and the time per update), as ``SummaryWriter.add_hparams`` writes them,
  so TensorBoard's HParams view lists every run and its parallel-coordinates view shows batch
  size × momentum × learning rate against the accuracies (or the run's own metric).

Hyperparameters are the run's config (less the data folder), its architecture, status and
effective step η/(1 − λ); ``batch_size`` is the number of examples per update (``full`` resolved
to the training-set size when the run has a summary). TensorBoard's HParams plugin takes the list
of hyperparameters and metrics from the first experiment summary it finds, so every run's summary
lists the same metric names — every final metric of any exported run — and text hyperparameters
share one domain. A run writes the scalars of its own final metrics only (NaN where it has no
value, a diverged run's test metric, say): a regression run gets no ``final/…_acc`` and a
classification run no ``final/…_mae``; the HParams view leaves those cells empty.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from batchlab.models.architecture import architecture
from batchlab.errors import StoreError
from batchlab.files import atomic_directory
from batchlab.store.identity import metric_key
from batchlab.store.record import RunRecord

# Per-epoch metric → TensorBoard scalar tag (tags sharing a prefix share a chart section).
SCALAR_TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "batch_loss_mean": "loss/batch_mean",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
    "test_acc": "accuracy/test",
    "updates": "progress/updates",
    "epoch_time_s": "time/epoch_s",
}
# Per-epoch values that are not scalars to plot: the step itself and its parts.
_NOT_SCALARS = ("epoch", "epoch_updates")
# The section of the scalars plotted against the update count.
BY_UPDATE = "by_update/"
# The splits whose loss and metric a run's summary holds, in the order the final metrics list them.
SPLITS = ("train", "val", "test")
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
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    all_hparams = {record.run_id: hyperparameters(record) for record in records}
    domains = _text_domains(all_hparams.values())
    # A final metric no exported run has a value of is left out of every run.
    held = {key for record in records for key in record.summary}
    own_metrics = {record.run_id: [key for key in final_metrics(record) if key in held] for record in records}
    # Every run's experiment summary lists the same metrics (module docstring).
    listed = {FINAL_PREFIX + key: math.nan for keys in own_metrics.values() for key in keys}
    written = []
    for record in records:
        target = Path(folder) / record.run_id
        with atomic_directory(target) as staging:
            with SummaryWriter(log_dir=str(staging)) as writer:
                rows = metrics_for(record.run_id)
                counts = update_counts(rows)
                for row, updates in zip(rows, counts):
                    epoch_scalars = {key: value for key, value in row.items()
                                     if key not in _NOT_SCALARS and _is_number(value)}
                    _add_epoch_scalars(writer, epoch_scalars, int(row["epoch"]), updates)
                if rows:
                    _add_epoch_scalars(writer, test_scalars(record), int(rows[-1]["epoch"]), counts[-1])
                hparams = all_hparams[record.run_id]
                for summary in hparams_summaries(hparams, listed, {k: v for k, v in domains.items() if k in hparams}):
                    writer.file_writer.add_summary(summary)
                for key in own_metrics[record.run_id]:
                    writer.add_scalar(FINAL_PREFIX + key, _number(record.summary.get(key)))
        written.append(target)
    return written


def final_metrics(record: RunRecord) -> list[str]:
    """The summary keys of a run's final metrics: each split's loss and the run's own metric
    (accuracy, or a user model's: :func:`~batchlab.store.identity.metric_key`), then the time per
    update."""
    metric = metric_key(record.environment)
    return [key for split in SPLITS for key in (f"{split}_loss", f"{split}_{metric}")] + ["time_per_update_s"]


def test_scalars(record: RunRecord) -> dict[str, float]:
    """The test split's loss and the run's own metric from its summary (measured once, with the
    final weights; none for a run that did not finish)."""
    keys = ("test_loss", f"test_{metric_key(record.environment)}")
    return {key: float(record.summary[key]) for key in keys if _is_number(record.summary.get(key))}


def _add_epoch_scalars(writer: Any, values: dict[str, Any], epoch: int, updates: int | None) -> None:
    """``values`` (metric key → number) at ``epoch``, and again under :data:`BY_UPDATE` at the
    update count when it is known (the update count itself only per epoch)."""
    for key, value in values.items():
        writer.add_scalar(scalar_tag(key), float(value), global_step=epoch)
        if updates is not None and key != "updates":
            writer.add_scalar(BY_UPDATE + scalar_tag(key), float(value), global_step=updates)


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
