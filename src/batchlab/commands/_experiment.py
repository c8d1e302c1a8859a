"""The tail every command that makes a result ends with: the result as strict JSON
(``--format json``) or as text, then the files it wrote; and, for an experiment, its record and
figures written to ``--out`` first.

* :func:`print_json` — the one way a command prints JSON: strict (NaN and ±inf become null,
  :func:`batchlab.files.strict_json_text`), so any JSON parser reads it;
* :func:`finish` — JSON of the result (with ``files``) or its text and ``[store S; ]wrote …``;
* :func:`finish_experiment` — an experiment's record and figures into ``--out``, then :func:`finish`
  with the experiment's text of the record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from batchlab.experiments.shape import Experiment, FigureList


def print_json(data: Any) -> None:
    """``data`` as indented strict JSON on stdout (``--format json`` of every command)."""
    from batchlab.files import strict_json_text

    print(strict_json_text(data))


def finish(output_format: str, data: Any, text: Callable[[], str], *, written: Sequence[Path] | None = None,
           store: Any = None) -> int:
    """The end of a command: with ``--format json`` ``data`` as strict JSON (a mapping gets the
    ``files`` written added); else ``text()``, then ``[store S; ]wrote <files>`` when files were
    written. Returns the exit code 0."""
    files = None if written is None else [str(p) for p in written]
    if output_format == "json":
        print_json({**data, "files": files} if files is not None and isinstance(data, Mapping) else data)
        return 0
    print(text())
    if files:
        print(("" if store is None else f"store {store}; ") + "wrote " + ", ".join(files))
    return 0


def finish_experiment(args: argparse.Namespace, experiment: Experiment, record: dict) -> int:
    """An experiment command's tail: ``record`` as ``--out/<json_name>`` with every figure of it
    (PNG + SVG), then :func:`finish` with the experiment's text of the record."""
    written = write_record(record, args.out, experiment.json_name, experiment.figures)
    text = experiment.text or (lambda _: "")
    return finish(args.format, record, lambda: text(record), written=written, store=args.store)


def write_record(record: dict, out: Path, json_name: str, figures: FigureList | None) -> list[Path]:
    """``out/<json_name>`` and every figure of ``record`` (PNG + SVG) into ``out``; the paths written."""
    from batchlab.files import save_figure, write_json

    written = [write_json(out / json_name, record)]
    for figure_id, _title, _caption, figure in (figures(record) if figures is not None else ()):
        written += save_figure(figure, out / figure_id)
    return written
