"""Which sections a report has, in which order, and who builds them.

A report is an ordered list of sections. Each entry of the registry is a :class:`SectionBuilder`:
an id, an ``order`` (sections are sorted by it) and a function from a
:class:`~batchlab.report.context.ReportContext` to a section or None (no data in the store).
The lecture's sections and Keskar et al.'s generalization gap are registered below; another
module adds its own with :func:`register_section_builder` at import time (before the report is
built). A builder may return a :class:`~batchlab.report.document.ReportSection` or the same as
plain data (a dict), see :func:`batchlab.report.build.coerce_section`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from batchlab.report import sections
from batchlab.report.context import ReportContext
from batchlab.report.document import ReportSection

Builder = Callable[[ReportContext], "ReportSection | dict | None"]


@dataclass(frozen=True)
class SectionBuilder:
    id: str
    order: float
    build: Builder


_BUILDERS: dict[str, SectionBuilder] = {}

# Order of the lecture: parallelism, optimization, why noise helps, generalization, summary, momentum.
ORDER_TIMING = 10.0
ORDER_ACCURACY = 20.0
ORDER_NOISE = 30.0
ORDER_GENERALIZATION = 40.0
ORDER_SUMMARY = 50.0
ORDER_MOMENTUM = 60.0


def register_section_builder(section_id: str, build: Builder, *, order: float) -> None:
    """Add (or replace) the builder of section ``section_id``; sections are sorted by ``order``."""
    _BUILDERS[section_id] = SectionBuilder(section_id, order, build)


def section_builders() -> list[SectionBuilder]:
    """Registered builders, sorted by order (ties by id)."""
    return sorted(_BUILDERS.values(), key=lambda b: (b.order, b.id))


register_section_builder("timing", sections.timing_section, order=ORDER_TIMING)
register_section_builder("accuracy", sections.accuracy_section, order=ORDER_ACCURACY)
register_section_builder("noise", sections.noise_section, order=ORDER_NOISE)
register_section_builder("gap", sections.gap_section, order=ORDER_GENERALIZATION)
register_section_builder("gap-paper", sections.gap_paper_section, order=ORDER_GENERALIZATION + 1)
# "Having both": the large-batch methods, right after the gap they try to close.
register_section_builder("largebatch", sections.largebatch_section, order=ORDER_GENERALIZATION + 5)
register_section_builder("summary", sections.summary_section, order=ORDER_SUMMARY)
register_section_builder("advise", sections.advise_section, order=ORDER_SUMMARY + 5)
register_section_builder("momentum", sections.momentum_section, order=ORDER_MOMENTUM)
register_section_builder("records", sections.records_section, order=ORDER_MOMENTUM + 10)
