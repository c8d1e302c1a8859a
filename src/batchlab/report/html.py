"""Render a :class:`~batchlab.report.document.Report` as one self-contained HTML page.

Self-contained means readable offline from the single file: the CSS is inline, every figure is
embedded as a base64 PNG ``data:`` URI, and nothing is fetched — no scripts, no web fonts, no
external style sheets or images. The PNG and SVG download links under each figure are ``data:``
URIs too (with a ``download`` file name ``<id>.png`` / ``<id>.svg``), so they keep working when
the page is shared alone, without its ``figures/`` folder. The cost is a second copy of each PNG
in the page: HTML without scripts cannot point two elements at one embedded image.

Every piece of text (titles, captions, run settings, table cells) is passed through
:func:`html.escape`, so a value read from a store — even ``<script>`` in a config field — is shown
as text and never interpreted.

Layout. The page leads with its answer: the report's lead sections (the summary table) come right
under the title, before the contents and the facts about the machine. It reads on a phone without
sideways scrolling: at widths up to :data:`NARROW_PX` every table turns into one block per row,
each cell labelled with its column (``data-label``), long words and paths wrap anywhere, and the
facts stack; a table still too wide scrolls inside its own box, never the page.
"""

from __future__ import annotations

import base64
import html
import math
import re
from typing import Any

from batchlab.report.document import Disclosure, FigureItem, Report, ReportSection, TableItem

# At this viewport width and below, tables are shown one block per row (see the module docstring).
NARROW_PX = 700
_ID = re.compile(r"^[A-Za-z0-9_-]+$")
# Table cells with exactly these texts get a colour (the summary table's verdicts).
_VERDICT_CLASSES = {"agrees": "agree", "disagrees": "disagree", "within noise": "noise", "step-limited": "noise",
                    "not converged": "noise", "context": "missing", "machine busy — not judged": "missing",
                    "not measured": "missing", "holds": "agree", "does not hold": "disagree"}

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       max-width: 1180px; margin: 2em auto; padding: 0 1.2em; color: #1d1d1f; line-height: 1.5;
       overflow-wrap: break-word; }
h1 { font-size: 1.9em; margin-bottom: 0.1em; }
h2 { border-bottom: 2px solid #d0d7de; padding-bottom: 0.2em; margin-top: 2.2em; }
h3 { margin-bottom: 0.3em; }
.subtitle { color: #57606a; margin-top: 0; }
p.link a { font-weight: 600; }
nav ol { columns: 2; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1.2em; background: #f6f8fa;
           padding: 0.8em 1em; border-radius: 6px; font-size: 0.92em; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; word-break: break-word; }
figure { margin: 1.4em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e1e4e8; border-radius: 4px; }
figcaption { font-size: 0.95em; color: #24292f; margin-top: 0.4em; }
figcaption .files { color: #57606a; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0 0.4em; font-size: 0.9em; }
th, td { border: 1px solid #d0d7de; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.agree { background: #dafbe1; font-weight: 600; }
td.disagree { background: #ffebe9; font-weight: 600; }
td.noise { background: #fff8c5; }
td.missing { color: #57606a; }
.table-caption { font-size: 0.9em; color: #57606a; margin-bottom: 1.2em; }
.table-wrap { max-width: 100%; overflow-x: auto; }
td details summary { cursor: pointer; }
td details p { margin: 0.3em 0 0; color: #3d444d; }
section.lead { background: #fbfcfd; }
ul.notes { font-size: 0.92em; color: #3d444d; }
footer { margin-top: 3em; font-size: 0.85em; color: #57606a; }
@media (max-width: NARROWpx) {
  body { margin: 1em auto; padding: 0 0.8em; }
  nav ol { columns: 1; }
  dl.facts { grid-template-columns: 1fr; }
  dl.facts dd { margin-bottom: 0.4em; }
  table, thead, tbody, tr, th, td { display: block; }
  thead { position: absolute; left: -9999px; }
  tr { border: 1px solid #d0d7de; border-radius: 4px; margin-bottom: 0.6em; }
  td { display: grid; grid-template-columns: 7.5em minmax(0, 1fr); gap: 0.6em; border: none;
       border-top: 1px solid #eaeef2; text-align: left; }
  td.num { text-align: left; white-space: normal; }
  td::before { content: attr(data-label); font-weight: 600; font-size: 0.85em; color: #57606a; }
}
""".replace("NARROW", str(NARROW_PX))


def render_html(report: Report) -> str:
    """The whole page as a string (UTF-8 text)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(report.title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_text(report.title)}</h1>",
    ]
    if report.subtitle:
        parts.append(f'<p class="subtitle">{_text(report.subtitle)}</p>')
    for text, address in report.links:
        parts.append(f'<p class="link"><a href="{_text(address)}">{_text(text)}</a></p>')
    # The answer first: the lead sections, then the contents, the facts and everything else.
    parts.extend(render_section(section, lead=True) for section in report.leading())
    if report.sections:
        parts.append("<nav><h2>Contents</h2><ol>")
        for section in report.sections:
            parts.append(f'<li><a href="#{_anchor(section.id)}">{_text(section.title)}</a></li>')
        parts.append("</ol></nav>")
    if report.facts:
        parts.append('<dl class="facts">')
        for name, value in report.facts:
            parts.append(f"<dt>{_text(name)}</dt><dd>{_text(value)}</dd>")
        parts.append("</dl>")
    parts.extend(render_section(section) for section in report.following())
    parts.append("<footer>Made by batchlab from measurements on this machine. Every figure is also "
                 "in the figures/ folder beside this file as PNG and SVG.</footer>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_section(section: ReportSection, *, lead: bool = False) -> str:
    """One section; ``lead`` marks a section the report leads with (class ``lead``)."""
    css = ' class="lead"' if lead else ""
    parts = [f'<section id="{_anchor(section.id)}"{css}>', f"<h2>{_text(section.title)}</h2>"]
    parts.extend(_paragraphs(section.intro))
    for figure in section.figures:
        parts.append(render_figure(figure))
    for table in section.tables:
        parts.append(render_table(table))
    if section.notes:
        parts.append('<ul class="notes">')
        parts.extend(f"<li>{_text(note)}</li>" for note in section.notes)
        parts.append("</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def render_figure(figure: FigureItem) -> str:
    figure_id = _anchor(figure.id)
    encoded = base64.b64encode(figure.png).decode("ascii")
    links = f'<a href="data:image/png;base64,{encoded}" download="{figure_id}.png">PNG</a>'
    if figure.svg:
        svg = base64.b64encode(figure.svg.encode("utf-8")).decode("ascii")
        links += f' · <a href="data:image/svg+xml;base64,{svg}" download="{figure_id}.svg">SVG</a>'
    return (
        f'<figure id="fig-{figure_id}">'
        f"<h3>{_text(figure.title)}</h3>"
        f'<img src="data:image/png;base64,{encoded}" alt="{_text(figure.title)}">'
        f"<figcaption>{_text(figure.caption)} <span class=\"files\">({links})</span></figcaption>"
        "</figure>"
    )


def render_table(table: TableItem) -> str:
    """The table inside a box that scrolls sideways on its own when it is too wide; each cell
    carries its column's name (``data-label``) for the narrow layout."""
    parts = [f"<h3>{_text(table.title)}</h3>", '<div class="table-wrap"><table>', "<thead><tr>"]
    parts.extend(f"<th>{_text(column)}</th>" for column in table.columns)
    parts.append("</tr></thead><tbody>")
    labels = [str(column) for column in table.columns]
    for row in table.rows:
        parts.append("<tr>" + "".join(_cell(value, labels[k] if k < len(labels) else "")
                                      for k, value in enumerate(row)) + "</tr>")
    parts.append("</tbody></table></div>")
    if table.caption:
        parts.append(f'<p class="table-caption">{_text(table.caption)}</p>')
    return "\n".join(parts)


def format_cell(value: Any) -> str:
    """A table cell as text: None → "—", floats to 4 significant digits, booleans yes/no."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4g}"
    return str(value)


def _cell(value: Any, label: str = "") -> str:
    labelled = f' data-label="{_text(label)}"' if label else ""
    if isinstance(value, Disclosure):
        if not value.details:
            return f"<td{labelled}>{_text(value.short)}</td>"
        return (f"<td{labelled}><details><summary>{_text(value.short)}</summary><p>{_text(value.details)}</p>"
                "</details></td>")
    text = format_cell(value)
    classes = []
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        classes.append("num")
    verdict = _VERDICT_CLASSES.get(text.strip().lower()) if isinstance(value, str) else None
    if verdict:
        classes.append(verdict)
    attribute = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{attribute}{labelled}>{_text(text)}</td>"


def _paragraphs(text: str) -> list[str]:
    return [f"<p>{_text(block.strip())}</p>" for block in text.split("\n\n") if block.strip()]


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _anchor(identifier: str) -> str:
    if not _ID.match(identifier):
        raise ValueError(f"report id {identifier!r} is invalid; allowed: letters, digits, '-' and '_'")
    return identifier
