"""The playground page as a file: self-contained, built from batchlab.toy, written by the CLI and
linked from the lecture report. (The page in a browser: tests/test_playground_browser.py.)"""

import json
import re

import numpy as np

from batchlab.cli import main
from batchlab.commands.lecture import PLAYGROUND, write_lecture_report
from batchlab.playground import playground_data, render_page
from batchlab.report import Report, build_report
from batchlab.report.html import render_html
from batchlab.store import RunStore
from batchlab.toy import examples_for, get_surface, surface_names

HOSTILE = '"><script>alert(1)</script>'


def embedded_data(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="batchlab-data">(.*?)</script>', page, re.S)
    return json.loads(match.group(1))


def test_the_page_is_one_self_contained_file():
    page = render_page()
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<(link|img|iframe)\b", page, re.I)
    assert not re.search(r"<script[^>]*\bsrc=", page, re.I)
    assert "@import" not in page and "url(" not in page
    assert "/*BATCHLAB_" not in page  # every placeholder filled


def test_the_page_carries_every_toy_surface_and_its_examples():
    data = embedded_data(render_page())
    assert data == json.loads(json.dumps(playground_data()))
    assert [s["name"] for s in data["surfaces"]] == list(surface_names())
    for entry in data["surfaces"]:
        surface = get_surface(entry["name"])
        assert entry["start"] == list(surface.start) and entry["lr"] == surface.lr
        np.testing.assert_array_equal(entry["examples"]["tilts"], examples_for(surface).tilts)
        assert {p["name"] for p in entry["critical_points"]} == {c.name for c in surface.critical_points}


def test_the_command_writes_the_page(tmp_path, capsys, monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    target = tmp_path / "sub" / "page.html"
    assert main(["playground", "-o", str(target), "--open"]) == 0
    assert target.read_text(encoding="utf-8") == render_page()
    assert opened == [target.resolve().as_uri()]
    assert str(target) in capsys.readouterr().out
    assert [p.name for p in target.parent.iterdir()] == ["page.html"]  # no temporary file left


def test_a_folder_as_output_is_a_one_line_error(tmp_path, capsys):
    assert main(["playground", "-o", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_report_links_are_escaped():
    page = render_html(Report("t", links=[(HOSTILE, HOSTILE)]))
    assert "<script>alert" not in page
    assert 'href="&quot;&gt;&lt;script&gt;' in page


def test_the_lecture_report_links_the_playground_beside_it(tmp_path):
    with RunStore(tmp_path / "runs.db") as store:
        report, ctx = build_report(store)
    written = write_lecture_report(report, ctx, tmp_path / "out")
    assert written["playground"] == tmp_path / "out" / PLAYGROUND
    assert written["playground"].read_text(encoding="utf-8") == render_page()
    html = written["html"].read_text(encoding="utf-8")
    assert f'<a href="{PLAYGROUND}">' in html
