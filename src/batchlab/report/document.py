"""A report as plain data: an ordered list of sections, each with text, figures and tables.

Every analysis contributes a :class:`ReportSection`; :mod:`batchlab.report.html` renders the whole
:class:`Report` into one self-contained HTML file and :mod:`batchlab.report.build` writes the
figures beside it. Nothing here knows about HTML: text is plain text (it is escaped on
rendering), figures are PNG bytes and SVG text, tables are rows of cells.

Example (a module adding its own section)::

    from batchlab.report import FigureItem, ReportSection, TableItem
    section = ReportSection("gap", "Generalization gap (Keskar et al. 2017)",
                            intro="Small and large batches trained until the loss stops improving.",
                            tables=[TableItem("Table 2", ["network", "SB test", "LB test"], rows)])
    report.add_section(section, after="noise")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FigureItem:
    """One figure: a title, a caption saying what it shows and how it compares with the lecture's,
    and the figure itself as PNG bytes (embedded in the HTML) and SVG text (written beside it).

    ``id`` names the files ``figures/<id>.png`` and ``figures/<id>.svg``; it must be unique in
    a report and use only letters, digits, ``-`` and ``_``.
    """

    id: str
    title: str
    caption: str
    png: bytes
    svg: str = ""


@dataclass(frozen=True)
class Disclosure:
    """A table cell shown short, with its details behind a disclosure the reader opens (``<details>``
    in HTML), so a long explanation does not stretch its row; as plain text, both joined by "; "."""

    short: str
    details: str = ""

    def __str__(self) -> str:
        return self.short + (f"; {self.details}" if self.details else "")


@dataclass
class TableItem:
    """A table: column headers and rows of cells (numbers are formatted by the renderer; a
    :class:`Disclosure` cell shows its short text with the details behind a disclosure)."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass
class ReportSection:
    """One section: ``id`` (an anchor), a title, an introduction, figures, tables and notes."""

    id: str
    title: str
    intro: str = ""
    figures: list[FigureItem] = field(default_factory=list)
    tables: list[TableItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


# The sections a report leads with, before its contents and facts: the answer first.
LEAD_SECTIONS = ("summary",)


@dataclass
class Report:
    """An ordered list of sections with a title and the facts every reader needs first.

    ``lead``: ids of the sections shown right under the title, before the contents and the facts
    (the summary table: what the measurements say about the lecture's claims); the other sections
    follow in their order.
    """

    title: str
    subtitle: str = ""
    sections: list[ReportSection] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    # (text, relative address) of files written beside the report, linked under the title.
    links: list[tuple[str, str]] = field(default_factory=list)
    lead: tuple[str, ...] = LEAD_SECTIONS

    def section(self, section_id: str) -> ReportSection | None:
        return next((s for s in self.sections if s.id == section_id), None)

    def add_section(self, section: ReportSection, *, after: str | None = None, before: str | None = None) -> None:
        """Add ``section`` at the end, or right after / before the section with that id (at the
        end when that id is absent). A section with the same id is replaced in place."""
        existing = self.section(section.id)
        if existing is not None:
            self.sections[self.sections.index(existing)] = section
            return
        anchor = after if after is not None else before
        target = self.section(anchor) if anchor is not None else None
        if target is None:
            self.sections.append(section)
            return
        index = self.sections.index(target) + (1 if after is not None else 0)
        self.sections.insert(index, section)

    def leading(self) -> list[ReportSection]:
        """The sections of :attr:`lead` the report has, in the report's order."""
        return [s for s in self.sections if s.id in self.lead]

    def following(self) -> list[ReportSection]:
        """The other sections, in the report's order."""
        return [s for s in self.sections if s.id not in self.lead]

    def figures(self) -> list[FigureItem]:
        return [f for s in self.sections for f in s.figures]
