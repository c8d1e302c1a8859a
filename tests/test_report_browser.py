"""The report in a real browser (Playwright driving Chromium, as the playground's tests do): it
leads with its answer and never scrolls sideways, on a phone (375 px) or a desktop (1400 px).

Skipped only when Playwright or a Chromium binary is missing; CI (``.ci/run``) installs both.
Screenshots of the top of the page at both widths are written under the test's ``tmp_path``.
"""

from __future__ import annotations

import pytest
import torch

from batchlab.experiments.sharpening import plan_sharpening, run_sharpening
from batchlab.report.build import build_report, write_report
from batchlab.store import RunStore
from test_report_cli import fill_store

pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")
# The playground's Chromium and its browser fixture: one way to find and start the browser.
from test_playground_browser import CHROMIUM, browser  # noqa: E402, F401  (browser is a fixture)

pytestmark = [pytest.mark.slow,  # a real browser and a few tiny trainings: seconds
              pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (apt-get install chromium)")]


@pytest.fixture(scope="module")
def report_url(tmp_path_factory) -> str:
    """A report of a small store: runs, timing, noise, the toy record and a tiny sharpening record."""
    folder = tmp_path_factory.mktemp("report")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fill_store(folder / "runs.db")
        plan = plan_sharpening("quick", batch_sizes=[20, 200], lrs=[0.05, 0.2], updates=6, every=3, probe_examples=60,
                               hidden=[8], device="cpu")
        with RunStore(folder / "runs.db") as store:
            run_sharpening(plan, store, log=lambda _: None)
            report, ctx = build_report(store)
            written = write_report(report, ctx, folder / "site" / "report.html")
    finally:
        torch.set_num_threads(threads)
    assert [s.id for s in report.sections][:1] == ["summary"] and report.section("sharpening") is not None
    return written["html"].resolve().as_uri()


@pytest.mark.parametrize("width", [375, 1400])
def test_the_page_leads_with_the_summary_and_never_scrolls_sideways(browser, report_url, width, tmp_path):
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.goto(report_url)
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        sections = page.evaluate("Array.from(document.querySelectorAll('section')).map(s => s.id)")
        assert sections[0] == "summary" and "sharpening" in sections
        # The answer starts on the first screen, however narrow.
        top = page.evaluate("document.getElementById('summary').getBoundingClientRect().top + window.scrollY")
        assert top < 800
        # Every figure fits the width of the page.
        assert page.evaluate(f"Array.from(document.images).every(i => i.getBoundingClientRect().right <= {width})")
        details = page.locator("#summary td details").first
        if details.count():
            details.locator("summary").click()
            assert details.evaluate("d => d.open")
            assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(tmp_path / f"report-{width}.png"))
    finally:
        context.close()
