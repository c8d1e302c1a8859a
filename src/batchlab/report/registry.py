"""Which sections a report has, in which order, and who builds them.

A report is an ordered list of sections. Each entry of the registry is a :class:`SectionBuilder`:
an id, an ``order`` (sections are sorted by it) and a function from a
:class:`~batchlab.report.context.ReportContext` to a section or None (no data in the store).
The lecture's own sections are registered below; each experiment declares its sections where it
is defined (:class:`batchlab.experiments.shape.Experiment`), and :func:`section_builders` asks the
experiments' registry for them. Another module adds its own with :func:`register_section_builder`
at import time (before the report is built); it may also replace an experiment's section by
registering the same id. A builder may return a :class:`~batchlab.report.document.ReportSection`
or the same as plain data (a dict), see :func:`batchlab.report.build.coerce_section`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from batchlab.experiments import experiments
from batchlab.experiments.shape import (
    ORDER_ACCURACY,
    ORDER_GENERALIZATION,
    ORDER_LEAD,
    ORDER_MOMENTUM,
    ORDER_NOISE,
    ORDER_SUMMARY,
    ORDER_TIMING,
)
from batchlab.report.sections import (
    accuracy_section,
    momentum_section,
    noise_section,
    records_section,
    summary_section,
    timing_section,
)
from batchlab.report.context import ReportContext, SummaryRows
from batchlab.report.document import ReportSection

Builder = Callable[[ReportContext], "ReportSection | dict | None"]


@dataclass(frozen=True)
class SectionBuilder:
    id: str
    order: float
    build: Builder


_BUILDERS: dict[str, SectionBuilder] = {}

__all__ = ["ORDER_ACCURACY", "ORDER_GENERALIZATION", "ORDER_LEAD", "ORDER_MOMENTUM", "ORDER_NOISE", "ORDER_SUMMARY",
           "ORDER_TIMING", "SectionBuilder", "register_section_builder", "section_builders", "summary_row_builders"]


def register_section_builder(section_id: str, build: Builder, *, order: float) -> None:
    """Add (or replace) the builder of section ``section_id``; sections are sorted by ``order``."""
    _BUILDERS[section_id] = SectionBuilder(section_id, order, build)


def section_builders() -> list[SectionBuilder]:
    """The experiments' sections and the registered builders (these win on the same id), sorted
    by order (ties by id)."""
    builders = {s.id: SectionBuilder(s.id, s.order, s.build) for e in experiments() for s in e.sections}
    builders.update(_BUILDERS)
    return sorted(builders.values(), key=lambda b: (b.order, b.id))


def summary_row_builders() -> list[SummaryRows]:
    """What the experiments add to the summary table, in the experiments' order."""
    return [e.summary_rows for e in experiments() if e.summary_rows is not None]


register_section_builder("timing", timing_section, order=ORDER_TIMING)
register_section_builder("accuracy", accuracy_section, order=ORDER_ACCURACY)
register_section_builder("noise", noise_section, order=ORDER_NOISE)
register_section_builder("summary", summary_section, order=ORDER_LEAD)  # the answer first
register_section_builder("momentum", momentum_section, order=ORDER_MOMENTUM)
register_section_builder("records", records_section, order=ORDER_MOMENTUM + 10)
