"""What a report reads from a run store, loaded once and shared by every section builder.

Record kinds the lecture report understands (written by :mod:`batchlab.experiments.lecture`):

* ``noise`` — a :class:`~batchlab.analysis.noise.NoiseReport` as a dict, with ``point.which`` =
  ``"start"`` (the initial weights) or ``"end"`` (a full-batch minimum) and ``created`` (Unix time);
* ``toy`` — ``{"arguments": <lecture_toy_experiments keyword arguments>, "report": ToyReport.to_dict()}``;
* ``gap`` — the generalization-gap experiment (:mod:`batchlab.experiments.gap`): ``batchlab lecture``'s
  flat-vs-sharp comparison (plan scale ``lecture-…``), ``batchlab gap``'s on the paper's networks,
  or ``batchlab gap --model-file``'s on a user's own model (its plan names the model under
  ``task``), which the report keeps apart (:attr:`ReportContext.gap_records`,
  :attr:`ReportContext.own_gap_records`);
* ``lecture`` — key ``settings``: the settings, device and environment of the last
  ``batchlab lecture`` and how long each stage took.

Runs come from the ``runs`` table, timing points from the ``timings`` table (the newest
measurement of each (model, path, device, batch size, N) wins).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

from batchlab.analysis.accuracy import AccuracyPanel, accuracy_vs_batch_size, tuned_panels
from batchlab.analysis.noise import NoiseReport
from batchlab.analysis.summary import (
    SummaryTable,
    machine_busy,
    primary_panel,
    protocol_panels,
    summary_table,
)
from batchlab.store import RunRecord, RunStore
from batchlab.store.status import FINISHED

# Rows an experiment adds to the summary table, from the context (see ReportContext.summary).
SummaryRows = Callable[["ReportContext"], Sequence[Any]]

NOISE_KIND = "noise"
GAP_KIND = "gap"
TOY_KIND = "toy"
LECTURE_KIND = "lecture"
LECTURE_SETTINGS_KEY = "settings"
TOY_KEY = "lecture"


class ReportContext:
    """Lazy, cached views of one store for the section builders.

    ``summary_rows``: what the experiments add to the summary table (the report's builder passes
    those the experiments' registry declares, :func:`batchlab.report.registry.summary_row_builders`).
    """

    def __init__(self, store: RunStore, summary_rows: Sequence[SummaryRows] = ()) -> None:
        self.store = store
        self._summary_rows = tuple(summary_rows)

    @cached_property
    def lecture(self) -> dict[str, Any] | None:
        return self.store.get_record(LECTURE_KIND, LECTURE_SETTINGS_KEY)

    @cached_property
    def runs(self) -> list[RunRecord]:
        return self.store.runs()

    @cached_property
    def accuracy_panels(self) -> list[AccuracyPanel]:
        # Histories give each point's last-epoch loss drop, one of the summary's convergence checks.
        histories = {r.run_id: self.store.metrics(r.run_id) for r in self.runs if r.status == FINISHED}
        return accuracy_vs_batch_size(self.runs, histories)

    @cached_property
    def tuned_panels(self) -> list[AccuracyPanel]:
        """Each panel with every batch size at its best η (see :func:`tuned_panels`), told which η
        values the sweep's search added beyond each grid."""
        return tuned_panels(self.accuracy_panels, (self.lecture or {}).get("lr_search") or ())

    @cached_property
    def primary_panel(self) -> AccuracyPanel | None:
        dataset = (self.lecture or {}).get("primary", {}).get("dataset")
        return primary_panel(self.accuracy_panels, dataset)

    @cached_property
    def noise_reports(self) -> dict[str, NoiseReport]:
        """The newest noise report per measured point (``"start"``, ``"end"``, …)."""
        newest: dict[str, tuple[float, NoiseReport]] = {}
        for value in self.store.records(NOISE_KIND):
            report = NoiseReport.from_dict(value)
            which = str(report.point.get("which", "point"))
            created = float(report.point.get("created", 0.0))
            if which not in newest or created >= newest[which][0]:
                newest[which] = (created, report)
        order = {"start": 0, "end": 1}
        return {k: v for k, (_, v) in sorted(newest.items(), key=lambda item: (order.get(item[0], 2), item[0]))}

    @cached_property
    def noise_at_critical_point(self) -> NoiseReport | None:
        reports = self.noise_reports
        return reports.get("end") or next(iter(reports.values()), None)

    @cached_property
    def timing_points(self) -> list[Any]:
        from batchlab.timing import TimingPoint

        newest: dict[tuple, Any] = {}
        for row in self.store.timings():
            try:
                point = TimingPoint.from_store_row(row)
            except (KeyError, TypeError, ValueError):
                continue  # a row written by other code without the columns a point needs
            newest[(point.model, point.path, point.device, point.batch_size, point.n_examples)] = point
        return sorted(newest.values(), key=lambda p: (p.model, p.device, p.path, p.batch_size))

    @cached_property
    def timing_environments(self) -> dict[str, dict[str, Any]]:
        environments: dict[str, dict[str, Any]] = {}
        for row in self.store.timings():
            if row.get("environment") and row.get("device"):
                environments[str(row["device"])] = row["environment"]
        return environments

    @cached_property
    def toy(self) -> dict[str, Any] | None:
        return self.store.get_record(TOY_KIND, TOY_KEY)

    @cached_property
    def summary_timing_points(self) -> list[Any]:
        """Timing points of one model: the lecture's, else the model timed most often."""
        models = [p.model for p in self.timing_points]
        if not models:
            return []
        wanted = (self.lecture or {}).get("primary", {}).get("model")
        model = wanted if wanted in models else max(set(models), key=models.count)
        return [p for p in self.timing_points if p.model == model]

    @cached_property
    def _gap_records_by_age(self) -> list[dict[str, Any]]:
        return sorted(self.store.records(GAP_KIND), key=lambda r: str(r.get("created", "")))

    @cached_property
    def gap_records(self) -> list[dict[str, Any]]:
        """The generalization-gap records of the lecture's and the paper's networks the report
        shows: the newest one ``batchlab lecture`` wrote (plan scale ``lecture-…``), then the newest
        ``batchlab gap`` wrote on the paper's networks; each when present. A record of a user's own
        model is never one of them, whatever its age (:attr:`own_gap_records`)."""
        records = [r for r in self._gap_records_by_age if not _own_model(r)]
        lecture = [r for r in records if str(r.get("plan", {}).get("scale", "")).startswith("lecture-")]
        paper = [r for r in records if r not in lecture]
        return [group[-1] for group in (lecture, paper) if group]

    @cached_property
    def own_gap_records(self) -> list[dict[str, Any]]:
        """The generalization-gap records of users' own models (``batchlab gap --model-file``: the
        plan's ``task`` names the model and data with their short fingerprints): the newest of
        each model and data, the newest last."""
        newest: dict[tuple, dict[str, Any]] = {}
        for record in self._gap_records_by_age:
            task = _own_model(record)
            if task:
                key = tuple(str(task.get(k)) for k in ("model", "model_fingerprint", "data", "data_fingerprint"))
                newest.pop(key, None)  # re-inserted last: the dict keeps the newest last
                newest[key] = record
        return list(newest.values())

    @property
    def gap(self) -> dict[str, Any] | None:
        """The first of :attr:`gap_records` (the lecture's when there is one), or None: the
        record whose flat-vs-sharp rows the summary table shows."""
        return self.gap_records[0] if self.gap_records else None

    @property
    def shown_gap_records(self) -> list[dict[str, Any]]:
        """Every gap record a section of the report shows: :attr:`gap_records` and the newest of
        :attr:`own_gap_records`."""
        return self.gap_records + self.own_gap_records[-1:]

    @cached_property
    def summary(self) -> SummaryTable:
        dataset = (self.lecture or {}).get("primary", {}).get("dataset")
        load = ((self.lecture or {}).get("timing") or {}).get("load_average")
        return summary_table(self.summary_timing_points, self.noise_at_critical_point,
                             protocol_panels(self.tuned_panels, dataset), busy=machine_busy(load),
                             sharp_minima=[row for rows in self._summary_rows for row in rows(self)])


def _own_model(record: dict[str, Any]) -> dict[str, Any] | None:
    """The user's model and data a gap record was made on (its plan's ``task``), or None for the
    lecture's and the paper's networks."""
    task = (record.get("plan") or {}).get("task")
    return task if isinstance(task, dict) and task else None
