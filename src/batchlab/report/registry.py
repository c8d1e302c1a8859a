"""Which sections a report has, in which order, and who builds them.

A report is an ordered list of sections. Each entry of the registry is a :class:`SectionBuilder`:
an id, an ``order`` (sections are sorted by it) and a function from a
:class:`~batchlab.report.context.ReportContext` to a section or None (no data in the store).

Other modules contribute sections in two ways:

* :func:`register_section_builder` — call it at import time of a module that is imported before
  the report is built;
* a *provider*: a ``"module:function"`` entry in :data:`PROVIDERS`, imported lazily when a report
  is built; the function takes the run store and returns a section or None. A provider whose module
  is not installed (or lacks the function) is skipped, so the report works with any subset of
  batchlab's analyses. Keskar et al.'s generalization-gap experiment joins this way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from batchlab.report import sections
from batchlab.report.context import ReportContext
from batchlab.report.document import ReportSection

Builder = Callable[[ReportContext], "ReportSection | None"]


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

# section id -> ("module:function" taking a RunStore, order)
PROVIDERS: dict[str, tuple[str, float]] = {
    "gap": ("batchlab.gap:gap_report_section", ORDER_GENERALIZATION),
    "advise": ("batchlab.advise:advise_report_section", ORDER_SUMMARY + 5.0),
}


def register_section_builder(section_id: str, build: Builder, *, order: float) -> None:
    """Add (or replace) the builder of section ``section_id``; sections are sorted by ``order``."""
    _BUILDERS[section_id] = SectionBuilder(section_id, order, build)


def section_builders() -> list[SectionBuilder]:
    """Registered builders and importable providers, sorted by order (ties by id)."""
    builders = dict(_BUILDERS)
    for section_id, (target, order) in PROVIDERS.items():
        if section_id in builders:
            continue
        provider = _load_provider(target)
        if provider is not None:
            builders[section_id] = SectionBuilder(section_id, order, _store_builder(provider))
    return sorted(builders.values(), key=lambda b: (b.order, b.id))


def _store_builder(provider: Callable) -> Builder:
    def build(ctx: ReportContext) -> ReportSection | None:
        return provider(ctx.store)

    return build


def _load_provider(target: str) -> Callable | None:
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            return None  # the providing package is not part of this installation
        raise
    return getattr(module, attribute, None)


register_section_builder("timing", sections.timing_section, order=ORDER_TIMING)
register_section_builder("accuracy", sections.accuracy_section, order=ORDER_ACCURACY)
register_section_builder("noise", sections.noise_section, order=ORDER_NOISE)
register_section_builder("summary", sections.summary_section, order=ORDER_SUMMARY)
register_section_builder("momentum", sections.momentum_section, order=ORDER_MOMENTUM)
