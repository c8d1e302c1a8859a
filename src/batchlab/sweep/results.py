"""The results of a sweep as a Python object: a list of runs that filters and exports itself.

Rows are the flat columns of :func:`batchlab.store.flat_run` — the same columns as
``batchlab runs --format csv`` — so a sweep's DataFrame, CSV and JSON look exactly like an
export of the store. A run recorded in the store is read back from it (with its timestamps); a
run trained without a store is described from its :class:`RunResult` alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from batchlab.config import RunConfig
from batchlab.errors import ConfigError, UserError
from batchlab.files import write_text_atomically
from batchlab.store import RunRecord, RunStore, export_runs, flat_run
from batchlab.training.result import RunResult

CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig))


class Results:
    """The runs of a sweep, in grid order.

    Attributes:
        runs: one :class:`RunResult` per run (trained now, or read from the store).
        store: the :class:`batchlab.store.RunStore` they are recorded in, or None.
        skipped: how many runs the store already held when the sweep started.
        failed: ``(run_id, message)`` for runs whose work failed for good (Ray executor).

    Example::

        results = batchlab.sweep.run_sweep(spec, "runs.db")
        df = results.to_pandas()
        momentum_runs = results.filter(momentum=0.9, batch_size=[16, "full"])
        results.to_csv("sweep.csv")
    """

    def __init__(
        self,
        runs: Sequence[RunResult],
        store: RunStore | None = None,
        *,
        skipped: int = 0,
        failed: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.runs = list(runs)
        self.store = store
        self.skipped = skipped
        self.failed = list(failed)

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self) -> Iterator[RunResult]:
        return iter(self.runs)

    def __getitem__(self, index: int) -> RunResult:
        return self.runs[index]

    def __repr__(self) -> str:
        return f"Results({len(self.runs)} runs, skipped={self.skipped}, failed={len(self.failed)})"

    def filter(self, **config_values: Any) -> "Results":
        """The runs whose config matches every ``field=value``; a list or tuple value is a set of
        alternatives (``batch_size=[16, "full"]``), except for ``hidden``, whose value is itself a
        tuple (``hidden=(512, 512)``; alternatives as a list of tuples). Numbers compare by value
        (``momentum=0`` matches 0.0)."""
        unknown = sorted(set(config_values) - set(CONFIG_FIELDS))
        if unknown:
            raise ConfigError(f"unknown filter field(s) {', '.join(unknown)}; allowed: {', '.join(CONFIG_FIELDS)}")
        kept = [run for run in self.runs
                if all(_matches(getattr(run.config, key), wanted) for key, wanted in config_values.items())]
        kept_ids = {run.run_id for run in kept}
        failed = [entry for entry in self.failed if entry[0] in kept_ids]
        return Results(kept, self.store, skipped=self.skipped, failed=failed)

    # ----------------------------------------------------------------------------- export

    def records(self) -> list[RunRecord]:
        """Each run as a store record: the stored one when the store has it, else one built from
        the result (config with the device reduced to its type, as the store keeps it)."""
        records = []
        for run in self.runs:
            stored = self.store.get(run.run_id) if self.store is not None else None
            records.append(stored if stored is not None else _record_from_result(run))
        return records

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows, one per run (:func:`batchlab.store.flat_run`)."""
        return [flat_run(record) for record in self.records()]

    def to_pandas(self) -> "Any":
        """A pandas DataFrame with one row per run and the columns of :meth:`rows`."""
        try:
            import pandas
        except ImportError:
            raise UserError("Results.to_pandas needs pandas: pip install 'batchlab[pandas]'") from None
        rows = self.rows()
        columns: list[str] = []
        for row in rows:
            columns.extend(key for key in row if key not in columns)
        return pandas.DataFrame(rows, columns=columns)

    def to_csv(self, path: str | Path) -> Path:
        """Write the runs as CSV (``batchlab runs --format csv``'s columns); returns the path."""
        return self._write(path, "csv")

    def to_json(self, path: str | Path) -> Path:
        """Write the runs as a JSON list of flat objects (NaN as null); returns the path."""
        return self._write(path, "json")

    def export(self, fmt: str) -> str:
        """The runs as ``csv`` or ``json`` text."""
        return export_runs(self.records(), fmt)

    def _write(self, path: str | Path, fmt: str) -> Path:
        path = Path(path)
        text = self.export(fmt)
        try:
            write_text_atomically(path, text if text.endswith("\n") else text + "\n")
        except OSError as error:
            raise UserError(f"cannot write {path} ({error.strerror}); allowed: a path in a writable folder") from None
        return path


def _record_from_result(run: RunResult) -> RunRecord:
    device = str(run.environment.get("device", run.config.device)).split(":")[0]
    return RunRecord(
        run_id=run.run_id,
        status=run.status,
        config=run.config.to_dict() | {"device": device},
        environment=dict(run.environment),
        summary=dict(run.summary),
        created="",
        started=None,
        finished=None,
    )


def _matches(value: Any, wanted: Any) -> bool:
    if isinstance(value, tuple) and isinstance(wanted, list) and not any(isinstance(w, (list, tuple)) for w in wanted):
        return _same(value, tuple(wanted))  # hidden=[512, 512]: the widths themselves
    if isinstance(wanted, list) or (isinstance(wanted, (tuple, set, frozenset)) and not isinstance(value, tuple)):
        return any(_same(value, choice) for choice in wanted)
    return _same(value, wanted)


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, list):
        wanted = tuple(wanted)
    if isinstance(value, bool) or isinstance(wanted, bool):
        return value is wanted or (type(value) is type(wanted) and value == wanted)
    if isinstance(value, (int, float)) and isinstance(wanted, (int, float)):
        return float(value) == float(wanted)
    if isinstance(value, str) and isinstance(wanted, str):
        return value.lower() == wanted.lower()
    return value == wanted
