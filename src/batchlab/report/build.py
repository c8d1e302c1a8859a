"""Build the report from a run store and write it: one HTML file, its figures, and summary.json.

:func:`build_report` asks every section builder (see :mod:`batchlab.report.registry`) for its
section, in order, and skips those without data; :func:`write_report` writes

* ``<html>`` — the self-contained page (:mod:`batchlab.report.html`);
* ``<html folder>/figures/<id>.png`` and ``.svg`` — every figure;
* optionally ``summary.json`` — the summary table, the numbers behind every figure, the settings
  and the environment (:func:`summary_data`).

All files are written atomically (temporary file in the same folder, then rename).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from batchlab.files import strict_json, write_json, write_text_atomically
from batchlab.report.context import ReportContext
from batchlab.report.document import FigureItem, Report, ReportSection, TableItem
from batchlab.report.figures import write_figure_files
from batchlab.report.html import render_html
from batchlab.report.registry import section_builders, summary_row_builders
from batchlab.store import RunStore
from batchlab.store.status import DIVERGED, FINISHED

REPORT_TITLE = "Batch and Momentum, measured on this machine"
SUMMARY_SCHEMA = "batchlab-lecture-summary/1"


def build_report(store: RunStore, *, title: str = REPORT_TITLE) -> tuple[Report, ReportContext]:
    """The report of everything ``store`` holds, and the context it was built from."""
    ctx = ReportContext(store, summary_row_builders())
    report = Report(title=title, subtitle=_subtitle(ctx), facts=report_facts(ctx))
    for builder in section_builders():
        section = coerce_section(builder.build(ctx), builder.id)
        if section is not None:
            report.add_section(section)
    return report, ctx


def coerce_section(value: Any, section_id: str) -> ReportSection | None:
    """A builder's result as a :class:`ReportSection`: one already, or plain data with the same
    fields (``title``, ``intro``, ``figures`` as dicts of FigureItem fields, ``tables`` as dicts of
    TableItem fields, ``notes``), so a contributing module need not import this package."""
    if value is None or isinstance(value, ReportSection):
        return value
    if not isinstance(value, dict):
        raise TypeError(f"section {section_id!r}: expected a ReportSection or a dict, got {type(value).__name__}")
    figures = [f if isinstance(f, FigureItem) else FigureItem(**f) for f in value.get("figures", [])]
    tables = [t if isinstance(t, TableItem) else TableItem(**t) for t in value.get("tables", [])]
    return ReportSection(str(value.get("id", section_id)), str(value.get("title", section_id)),
                         intro=str(value.get("intro", value.get("text", ""))), figures=figures, tables=tables,
                         notes=[str(n) for n in value.get("notes", [])], data=dict(value.get("data", {})))


def _subtitle(ctx: ReportContext) -> str:
    return ("Hung-yi Lee's lecture \"Batch and Momentum\" (Machine Learning 2021/2022, NTU), every figure and "
            "claim reproduced from measurements in the run store " + str(ctx.store.path) + ".")


def report_facts(ctx: ReportContext) -> list[tuple[str, str]]:
    """Device, environment and run settings, shown at the top of the report."""
    facts: list[tuple[str, str]] = []
    lecture = ctx.lecture or {}
    environment = lecture.get("environment") or next(
        (r.environment for r in ctx.runs if r.environment), {}) or next(iter(ctx.timing_environments.values()), {})
    if environment:
        facts.append(("Device", f"{environment.get('device_name', '?')} ({environment.get('device', '?')})"))
        facts.append(("Software", f"Python {environment.get('python', '?')}, torch {environment.get('torch', '?')}, "
                                  f"numpy {environment.get('numpy', '?')}, CUDA {environment.get('cuda') or 'none'}, "
                                  f"{environment.get('torch_threads', '?')} CPU threads"))
        facts.append(("Host", f"{environment.get('host', '?')} — {environment.get('platform', '?')}"))
        if environment.get("git_commit"):
            facts.append(("batchlab commit", str(environment["git_commit"])))
    settings = lecture.get("settings")
    if settings:
        facts.append(("Run settings", settings_text(settings)))
    if lecture.get("stage_seconds"):
        stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in lecture["stage_seconds"].items())
        facts.append(("Last `batchlab lecture`", f"{lecture_seconds(lecture):.0f} s in all ({stages})"))
    if lecture.get("notes"):
        facts.append(("Notes", " · ".join(str(note) for note in lecture["notes"])))
    finished = sum(r.status == FINISHED for r in ctx.runs)
    diverged = sum(r.status == DIVERGED for r in ctx.runs)
    facts.append(("Store", f"{ctx.store.path}: {len(ctx.runs)} runs ({finished} finished, {diverged} diverged), "
                           f"{len(ctx.timing_points)} timing points"))
    facts.append(("Generated", time.strftime("%Y-%m-%d %H:%M:%S %Z")))
    return facts


def lecture_seconds(lecture: dict[str, Any]) -> float:
    """How long the last ``batchlab lecture`` took: its envelope's seconds (``total_seconds`` in a
    record written before the experiments shared one envelope)."""
    return float(lecture.get("seconds", lecture.get("total_seconds")) or 0.0)


def settings_text(settings: dict[str, Any] | list) -> str:
    """``name = value; …`` from a mapping or from ``[name, value]`` pairs (kept in their order)."""
    pairs = settings.items() if isinstance(settings, dict) else settings
    parts = []
    for key, value in pairs:
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        parts.append(f"{key} = {value}")
    return "; ".join(parts)


def summary_data(report: Report, ctx: ReportContext, figure_files: list[str]) -> dict[str, Any]:
    """The numbers behind the report as strict JSON-ready data."""
    lecture = ctx.lecture or {}
    toy_surfaces = ((ctx.toy or {}).get("report") or {}).get("surfaces") or []
    return strict_json({
        "schema": SUMMARY_SCHEMA,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "store": str(ctx.store.path),
        "device": (lecture.get("environment") or {}).get("device_name"),
        "environment": lecture.get("environment"),
        "settings": dict(lecture.get("settings") or []),
        "stage_seconds": lecture.get("stage_seconds"),
        "total_seconds": lecture_seconds(lecture) if lecture else None,
        "sections": [{"id": s.id, "title": s.title, "figures": [f.id for f in s.figures]} for s in report.sections],
        "figures": figure_files,
        "summary_table": ctx.summary.to_dict(),
        "accuracy": [panel.to_dict() for panel in ctx.accuracy_panels],
        "noise": {which: r.to_dict() for which, r in ctx.noise_reports.items()},
        "timing": [p.to_dict() for p in ctx.timing_points],
        "toy_findings": [finding for surface in toy_surfaces for finding in surface.get("findings", [])],
    })


def write_report(report: Report, ctx: ReportContext, html_path: Path | str, *,
                 summary_json: Path | str | None = None) -> dict[str, Any]:
    """Write the HTML page, its figures (``figures/`` beside the page) and optionally summary.json.

    Returns ``{"html": path, "figures": [paths], "summary": path or None}``.
    """
    html_path = Path(html_path)
    folder = html_path.parent / "figures"
    written: list[Path] = []
    for figure in report.figures():
        written.extend(write_figure_files(figure, folder))
    write_text_atomically(html_path, render_html(report))
    summary_path = None
    if summary_json is not None:
        summary_path = Path(summary_json)
        relative = [str(p.relative_to(html_path.parent)) for p in written]
        data = summary_data(report, ctx, relative)
        write_json(summary_path, data, ensure_ascii=False)
    return {"html": html_path, "figures": written, "summary": summary_path}
