"""Files written through batchlab.files (the report, the gap experiment, figures) are readable
like the store's own files (0o666 minus the umask, i.e. 0644 under the usual umask 022), not
0600 as a bare temp file."""

from __future__ import annotations

import os
import stat

from matplotlib.figure import Figure

from batchlab.files import save_figure, write_bytes_atomically, write_json


def umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_report_gap_json_and_gap_figures_get_the_store_file_mode(tmp_path):
    expected = 0o666 & ~umask()
    figure = Figure()
    figure.add_subplot().plot([0, 1], [1, 0])
    written = [
        write_bytes_atomically(tmp_path / "report.html", b"<html></html>"),
        write_json(tmp_path / "gap.json", {"a": 1.0}),
        *save_figure(figure, tmp_path / "figure", formats=("png", "svg")),
    ]
    assert [mode(path) for path in written] == [expected] * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png", "figure.svg", "gap.json", "report.html"]
