"""What the experiment commands (``gap``, ``largebatch``, ``advise``) do with a finished record:
write it and its figures to ``--out``, print it as JSON, and say under what load it ran."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

# (id, title, caption, figure) for each figure of a record, as the experiments' report modules give them.
FigureList = Callable[[dict], Iterable[tuple[str, str, str, Any]]]


def write_record(record: dict, out: Path, json_name: str, figures: FigureList) -> list[Path]:
    """``out/<json_name>`` and every figure of ``record`` (PNG + SVG) into ``out``; the paths written."""
    from batchlab.files import save_figure, write_json

    written = [write_json(out / json_name, record)]
    for figure_id, _title, _caption, figure in figures(record):
        written += save_figure(figure, out / figure_id)
    return written


def print_record_json(record: dict, written: Sequence[Path]) -> None:
    """The record and the files written, as strict JSON on stdout (``--format json``)."""
    from batchlab.files import strict_json

    print(json.dumps(strict_json({**record, "files": [str(p) for p in written]}), indent=2))


def load_text(load_average: Sequence[float | None] | None) -> str:
    """``"; load average a at the start, b at the end on N CPUs (…)"``, or "" where none was read."""
    start, end = (load_average or (None, None))[:2]
    if start is None:
        return ""
    return (f"; load average {start:.1f} at the start, {end:.1f} at the end on {os.cpu_count()} CPUs "
            "(other processes stretch these times)")
