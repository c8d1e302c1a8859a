"""Turning matplotlib figures into report figures (PNG bytes + SVG text) and writing them out.

PNG and SVG are rendered without the "Software"/"Date" metadata matplotlib adds by default, so a
figure redrawn from the same numbers gives the same files and no file names a web address.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from batchlab.report.document import FigureItem  # noqa: E402
from batchlab.store import atomic_write  # noqa: E402

PNG_DPI = 110


def figure_item(figure: Figure, figure_id: str, title: str, caption: str) -> FigureItem:
    """Render ``figure`` once as PNG and once as SVG into a :class:`FigureItem`."""
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=PNG_DPI, metadata={"Software": None})
    # The first save placed every axes; a second layout pass would only repeat that work (the
    # layout is the costliest part of drawing a figure with many labels).
    figure.set_layout_engine("none")
    svg = io.StringIO()
    figure.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return FigureItem(figure_id, title, caption, png.getvalue(), svg.getvalue())


def write_figure_files(item: FigureItem, folder: Path) -> list[Path]:
    """Write ``<folder>/<id>.png`` and ``<folder>/<id>.svg`` (when there is SVG), each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [write_atomically(folder / f"{item.id}.png", item.png)]
    if item.svg:
        written.append(write_atomically(folder / f"{item.id}.svg", item.svg.encode("utf-8")))
    return written


def write_atomically(target: Path, payload: bytes) -> Path:
    """Write ``payload`` to a temporary file in ``target``'s folder, then rename it into place,
    readable by everyone the umask allows, like the store's files (:func:`batchlab.store.atomic_write`)."""
    atomic_write(Path(target), lambda stream: stream.write(payload))
    return Path(target)
