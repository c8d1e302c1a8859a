"""The table printed at the end of a sweep: mean ± std of the final accuracies over seeds (or of
the metric a user's task names: ``metric="mae"`` shows ``train mae`` and ``val mae``).

Runs are grouped by batch size × momentum and by every other field whose value differs between
the runs (learning rate, optimizer …), except the seed; groups appear in the order of their first run. Each row shows
how many runs the group has, the mean ± sample standard deviation (n − 1 in the denominator) of
the final training and validation accuracy over the group's runs that finished, and how many
diverged. The lecture's claim to look for: both accuracies fall as B grows (docs/science.md §1).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from typing import Any

from batchlab.config import RunConfig

from batchlab.training.result import DIVERGED, FINISHED, RunResult

# Column headers for swept fields; other fields are shown under their own name.
_HEADERS = {"batch_size": "B", "momentum": "λ", "lr": "lr", "optimizer": "optimizer", "nesterov": "nesterov"}


# Fields that never separate groups: the seed is what the mean is taken over; the rest say where
# a run's data and device live, not what it computes.
_NOT_GROUPED = ("seed", "device", "data_dir")


def group_fields(runs: Sequence[RunResult]) -> list[str]:
    """Batch size and momentum, then (in RunConfig field order) every other field whose value
    differs between ``runs``, except those in ``_NOT_GROUPED``."""
    fields = ["batch_size", "momentum"]
    for field in dataclasses.fields(RunConfig):
        name = field.name
        if name in fields or name in _NOT_GROUPED:
            continue
        if len({repr(getattr(run.config, name)) for run in runs}) > 1:
            fields.append(name)
    return fields


def summary_table(runs: Sequence[RunResult], metric: str = "acc") -> str:
    """One line per group of runs (see the module docstring); ``metric``: the metric's key."""
    if not runs:
        return "(no runs)"
    fields = group_fields(runs)
    groups: dict[tuple, list[RunResult]] = {}
    for run in runs:
        groups.setdefault(tuple(_key(getattr(run.config, name)) for name in fields), []).append(run)
    header = [_HEADERS.get(name, name) for name in fields] + ["runs", f"train {metric}", f"val {metric}", "diverged"]
    cells = [header]
    for key, members in groups.items():
        finished = [run for run in members if run.status == FINISHED]
        cells.append(
            [_show(value) for value in key]
            + [
                str(len(members)),
                _mean_std([run.summary.get(f"train_{metric}") for run in finished]),
                _mean_std([run.summary.get(f"val_{metric}") for run in finished]),
                str(sum(run.status == DIVERGED for run in members)),
            ]
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths)).rstrip() for line in cells)


def _mean_std(values: list[Any]) -> str:
    numbers = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not numbers:
        return "-"
    mean = statistics.fmean(numbers)
    if len(numbers) == 1:
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {statistics.stdev(numbers):.4f}"


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)
