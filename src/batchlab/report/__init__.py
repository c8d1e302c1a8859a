"""The lecture report: sections built from a run store, rendered as one self-contained HTML file.

* :mod:`~batchlab.report.document` — ``Report``, ``ReportSection``, ``FigureItem``, ``TableItem``;
* :mod:`~batchlab.report.registry` — which sections exist and in which order: the lecture's own,
  those of every experiment (declared where each is defined, :mod:`batchlab.experiments.shape`),
  and any added with :func:`register_section_builder`;
* :mod:`~batchlab.report.sections` — the lecture's own sections (timing, accuracy, noise,
  summary, momentum, other stored records);
* :mod:`~batchlab.report.build` — :func:`build_report` from a store, :func:`write_report` to disk.

The report only reads a store and renders it; the experiments that fill one live beside it
(:mod:`batchlab.experiments`, :mod:`batchlab.toy`) and bring their own sections.

Example::

    from batchlab.store import RunStore
    from batchlab.report import build_report, write_report
    store = RunStore("batchlab-runs/runs.db", create=False)
    report, ctx = build_report(store)
    write_report(report, ctx, "batchlab-report/report.html")
"""

from batchlab.report.build import build_report, write_report
from batchlab.report.document import Disclosure, FigureItem, Report, ReportSection, TableItem
from batchlab.report.registry import register_section_builder

__all__ = [
    "Disclosure",
    "FigureItem",
    "Report",
    "ReportSection",
    "TableItem",
    "build_report",
    "register_section_builder",
    "write_report",
]
