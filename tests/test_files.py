"""Atomic writes: a failing writer keeps the old file and leaves no temporary file; strict JSON."""

import json
import math
import os
import stat

import numpy as np
import pytest

from batchlab.files import (
    atomic_directory,
    atomic_write,
    save_figure,
    strict_json,
    write_bytes_atomically,
    write_json,
    write_text_atomically,
)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_write_replaces_the_file_and_creates_parents(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    assert write_text_atomically(target, "first\n") == target
    write_text_atomically(target, "second\r\n")
    assert target.read_bytes() == b"second\r\n"  # newlines written as given
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_failing_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    write_bytes_atomically(target, b"old")

    def half_then_fail(handle):
        handle.write(b"new but incomplete")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_failing_writer_creates_nothing_where_there_was_nothing(tmp_path):
    with pytest.raises(ValueError):
        atomic_write(tmp_path / "new.txt", lambda handle: (_ for _ in ()).throw(ValueError("no")), binary=False)
    assert list(tmp_path.iterdir()) == []


def test_written_file_has_the_usual_permissions(tmp_path):
    target = write_bytes_atomically(tmp_path / "mode.bin", b"x")
    # The temporary file is private (0600); the result must not be.
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()


def test_write_json_is_strict_json_with_a_final_newline(tmp_path):
    data = {"loss": math.nan, "best": math.inf, "shape": (2, 3), "scalar": np.float32(0.5),
            "array": np.array([1.0, np.nan]), 7: "int key", "path": tmp_path}
    target = write_json(tmp_path / "r.json", data)
    text = target.read_text(encoding="utf-8")
    assert text.endswith("}\n") and "NaN" not in text and "Infinity" not in text
    loaded = json.loads(text)
    assert loaded == {"loss": None, "best": None, "shape": [2, 3], "scalar": 0.5, "array": [1.0, None],
                      "7": "int key", "path": str(tmp_path)}


def test_write_json_keeps_non_ascii_when_asked(tmp_path):
    assert "λ" in write_json(tmp_path / "a.json", {"k": "λ"}, ensure_ascii=False).read_text(encoding="utf-8")
    assert "\\u03bb" in write_json(tmp_path / "b.json", {"k": "λ"}).read_text(encoding="utf-8")


def test_strict_json_leaves_plain_values_alone():
    assert strict_json({"a": [1, "x", None, True, 2.5]}) == {"a": [1, "x", None, True, 2.5]}


def test_save_figure_writes_each_format_without_date_or_software(tmp_path):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 2))
    figure.add_subplot().plot([0, 1], [1, 0])
    written = save_figure(figure, tmp_path / "figs" / "line", dpi=50)
    assert [p.name for p in written] == ["line.png", "line.svg"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = written[1].read_text(encoding="utf-8")
    assert "<dc:date>" not in svg and "matplotlib.org" not in svg
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["line.png", "line.svg"]


def test_atomic_directory_replaces_a_folder_only_when_complete(tmp_path):
    target = tmp_path / "batches"
    with atomic_directory(target) as staging:
        (staging / "a.bin").write_bytes(b"1")
    assert [p.name for p in target.iterdir()] == ["a.bin"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~_umask()

    with pytest.raises(RuntimeError):
        with atomic_directory(target) as staging:
            (staging / "b.bin").write_bytes(b"2")
            raise RuntimeError("interrupted")
    assert [p.name for p in target.iterdir()] == ["a.bin"]
    assert [p.name for p in tmp_path.iterdir()] == ["batches"]

    with atomic_directory(target) as staging:
        (staging / "c.bin").write_bytes(b"3")
    assert [p.name for p in target.iterdir()] == ["c.bin"]
