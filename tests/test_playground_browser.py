"""The playground page in a real browser: Playwright driving Chromium (Debian's ``chromium``).

Skipped only when Playwright or a Chromium binary is missing; CI (``.ci/run``) installs both.
Screenshots of the page at 375 px and 1400 px are written under each test's ``tmp_path``.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from batchlab.playground import write_page
from batchlab.toy import get_surface, run_trajectory
from batchlab.toy.prng import Mulberry32
from batchlab.toy.surfaces import ValleySurface

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")

CHROMIUM = os.environ.get("BATCHLAB_CHROMIUM") or next(
    (path for path in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")) if path
     and Path(path).exists()), None)
pytestmark = [pytest.mark.slow,  # a real browser: seconds per test
              pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (apt-get install chromium)")]


@pytest.fixture(scope="module")
def page_url(tmp_path_factory) -> str:
    return write_page(tmp_path_factory.mktemp("playground") / "playground.html").resolve().as_uri()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


class Page:
    """One tab on the playground, recording console errors and every request that left the file."""

    def __init__(self, browser, url: str, width: int = 1400, height: int = 1000) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.network: list[str] = []
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.route("**/*", self._route)
        self.page.goto(url)
        self.page.wait_for_function("window.batchlabPlayground !== undefined")

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            self.network.append(url)
            route.abort()

    def state(self) -> dict:
        return self.page.evaluate("batchlabPlayground.state()")

    def run(self, key: str) -> dict:
        return next(r for r in self.state()["runs"] if r["key"] == key)

    def step(self, times: int) -> None:
        for _ in range(times):
            self.page.click("#step")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser, page_url):
    opened = Page(browser, page_url)
    yield opened
    assert opened.errors == [], f"console errors: {opened.errors}"
    assert opened.network == [], f"network requests: {opened.network}"
    opened.close()


def test_page_loads_offline_with_labelled_sliders(tab):
    page = tab.page
    assert page.title().startswith("batchlab playground")
    assert page.locator("article.run").count() == 4
    assert page.locator("article.run canvas").count() == 4
    for slider_id in ("eta", "lambda", "batch", "seed", "condition", "speed"):
        assert page.locator(f"label[for={slider_id}]").count() == 1
        assert page.locator(f"#{slider_id}-value").inner_text().strip() != ""
    assert page.locator("#lambda-value").inner_text() == "0.90"
    assert set(page.evaluate("batchlabPlayground.surfaces")) == {"ball", "saddle", "valley", "two-minima"}
    readout = page.locator("article.run[data-run=gd] dd[data-field='loss L(θ)']").inner_text()
    assert float(readout) == pytest.approx(get_surface("ball").loss(np.array(get_surface("ball").start)), rel=1e-3)


SETTINGS = [
    {"surface": "ball", "momentum": 0.0, "steps": 400},
    {"surface": "ball", "momentum": 0.85, "steps": 400},
    {"surface": "ball", "momentum": 0.9, "batch_size": 3, "seed": 4, "steps": 300},
    {"surface": "saddle", "start": [1.5, 1e-6], "momentum": 0.5, "steps": 300},
    {"surface": "saddle", "start": [1.5, 0.0], "batch_size": 1, "seed": 9, "steps": 300},
    {"surface": "saddle", "start": [1.5, 0.0], "batch_size": 12, "steps": 400, "momentum": 0.9},
    {"surface": "valley", "momentum": 0.9, "steps": 400},
    {"surface": "valley", "condition": 20, "lr": 0.05, "momentum": 0.6, "batch_size": 5, "seed": 2, "steps": 300},
    {"surface": "two-minima", "momentum": 0.7, "steps": 400},
    {"surface": "two-minima", "momentum": 0.8, "batch_size": 2, "seed": 77, "steps": 300, "lr": 0.04},
]


def python_run(settings: dict):
    if "condition" in settings:
        surface = ValleySurface(condition=settings["condition"])
    else:
        surface = get_surface(settings["surface"])
    return run_trajectory(surface, start=settings.get("start"), lr=settings.get("lr"),
                          momentum=settings.get("momentum", 0.0), steps=settings["steps"],
                          batch_size=settings.get("batch_size"), seed=settings.get("seed", 0))


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_the_page_computes_the_same_trajectories_as_python(tab, settings):
    expected = python_run(settings)
    got = tab.page.evaluate("s => batchlabPlayground.trajectory(s)", settings)
    assert got["steps"] == expected.steps
    assert got["converged"] == expected.converged and got["diverged"] == expected.diverged
    np.testing.assert_allclose(np.array(got["points"], dtype=np.float64), expected.points, rtol=0, atol=1e-9)
    if expected.batches is not None:
        np.testing.assert_array_equal(np.array(got["batches"]).reshape(expected.batches.shape), expected.batches)


def test_the_page_has_the_same_random_numbers_as_python(tab):
    for seed in (0, 5, 2**31 + 3):
        generator = Mulberry32(seed)
        assert tab.page.evaluate("s => batchlabPlayground.mulberry32(s, 8)", seed) == [
            generator.next_uint32() for _ in range(8)]


def test_moving_the_lambda_slider_changes_the_momentum_trajectory(tab):
    tab.step(20)
    before = tab.run("momentum")["points"]
    gd_before = tab.run("gd")["points"]
    slider = tab.page.locator("#lambda")
    slider.focus()
    for _ in range(10):  # keyboard: 0.90 -> 0.80
        tab.page.keyboard.press("ArrowLeft")
    assert tab.page.locator("#lambda-value").inner_text() == "0.80"
    assert tab.run("momentum")["t"] == 0  # new settings start over from the start
    tab.step(20)
    after = tab.run("momentum")["points"]
    assert not np.allclose(before, after)
    np.testing.assert_array_equal(tab.run("gd")["points"], gd_before)  # λ does not touch gradient descent
    expected = run_trajectory(get_surface("ball"), momentum=0.8, steps=20)
    np.testing.assert_allclose(after, expected.points, rtol=0, atol=1e-9)


def test_on_the_saddles_stable_manifold_only_noise_or_a_nudge_moves_the_ball(tab):
    page = tab.page
    page.select_option("#surface", "saddle")
    target = page.evaluate("batchlabPlayground.pixelOf([1.5, 0])")
    page.mouse.click(target["x"], target["y"])
    assert tab.state()["start"] == [1.5, 0]
    page.locator("#speed").focus()
    page.keyboard.press("End")  # fastest
    page.click("#play")
    page.wait_for_function("batchlabPlayground.state().runs.slice(0, 2).every(r => r.converged)", timeout=30_000)
    page.wait_for_function("batchlabPlayground.state().runs[3].t >= 300", timeout=30_000)
    page.click("#play")  # pause
    assert not tab.state()["playing"]
    for key in ("gd", "momentum"):  # full batch: rests exactly on the manifold, at the saddle
        run = tab.run(key)
        assert run["kind"] == "saddle" and all(point[1] == 0 for point in run["points"])
    escape = page.locator("article.run[data-run=gd] dd[data-field='escape direction']").inner_text()
    assert escape in ("±(0, 1)", "±(0, -1)")
    for key in ("sgd", "sgd-momentum"):  # mini-batches of B = 2: real noise, the ball leaves
        assert abs(tab.run(key)["theta"][1]) > 0.5
    page.click("#nudge")
    page.click("#play")
    page.wait_for_function("Math.abs(batchlabPlayground.state().runs[0].theta[1]) > 0.5", timeout=30_000)
    page.click("#play")


def test_play_step_and_reset(tab):
    page = tab.page
    start = tab.state()["start"]
    tab.step(1)
    assert [r["t"] for r in tab.state()["runs"]] == [1, 1, 1, 1]
    tab.step(1)
    assert {r["t"] for r in tab.state()["runs"]} == {2}
    page.click("#play")
    assert page.locator("#play").inner_text() == "Pause"
    page.wait_for_function("batchlabPlayground.state().runs[0].t > 8", timeout=20_000)
    page.click("#play")
    assert page.locator("#play").inner_text() == "Play"
    paused_at = tab.run("gd")["t"]
    page.wait_for_timeout(300)
    assert tab.run("gd")["t"] == paused_at
    page.click("#reset")
    for run in tab.state()["runs"]:
        assert run["t"] == 0 and run["theta"] == start and len(run["points"]) == 1


SMALLEST_TEXT = """() => {
  let smallest = Infinity, where = "";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const element = node.parentElement;
    if (!node.textContent.trim() || !element.getClientRects().length) continue;
    if (element.closest("script, style, details:not([open]) > :not(summary)")) continue;
    const size = parseFloat(getComputedStyle(element).fontSize);
    if (size < smallest) { smallest = size; where = node.textContent.trim().slice(0, 40); }
  }
  return [smallest, where];
}"""


@pytest.mark.parametrize("width", [375, 1400])
def test_usable_on_a_phone_and_a_wide_screen(browser, page_url, tmp_path, width):
    opened = Page(browser, page_url, width=width, height=800 if width < 800 else 1000)
    page = opened.page
    page.select_option("#surface", "two-minima")
    opened.step(40)
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert scroll_width <= inner_width
    smallest, where = page.evaluate(SMALLEST_TEXT)
    assert smallest >= 12, f"text {where!r} is {smallest}px"
    for box in page.locator("canvas, input, button, select").evaluate_all(
            "elements => elements.map(e => e.getBoundingClientRect().right)"):
        assert box <= inner_width
    shot = page.screenshot(path=str(tmp_path / f"playground-{width}px.png"), full_page=True)
    assert len(shot) > 10_000 and (tmp_path / f"playground-{width}px.png").exists()
    assert opened.errors == [] and opened.network == []
    opened.close()


# ---------------------------------------------------------------- the page at a laptop's and a phone's size

BOXES = """selector => [...document.querySelectorAll(selector)].map(e => {
  const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];
})"""


@contextmanager
def surface_at_size(browser, url: str, surface: str, width: int, height: int):
    """A tab of ``width`` x ``height`` px showing ``surface``; no console error or request by the end."""
    opened = Page(browser, url, width=width, height=height)
    opened.page.select_option("#surface", surface)
    yield opened.page
    assert opened.errors == [] and opened.network == []
    opened.close()


def step_in_page(page, times: int) -> None:
    """Press Step ``times`` times inside the page (faster than one Playwright click each)."""
    page.evaluate("n => { for (let i = 0; i < n; i++) document.getElementById('step').click(); }", times)


@pytest.mark.parametrize("surface", ["ball", "saddle", "valley", "two-minima"])
def test_at_1400_by_900_all_four_panels_and_the_settings_are_on_screen(browser, page_url, tmp_path, surface):
    with surface_at_size(browser, page_url, surface, 1400, 900) as page:
        step_in_page(page, 40)
        panels = page.evaluate(BOXES, "article.run")
        assert len(panels) == 4
        for left, top, right, bottom in panels + page.evaluate(BOXES, ".side"):
            assert 0 <= left and right <= 1400 and 0 <= top and bottom <= 900, (left, top, right, bottom)
        assert page.evaluate("scrollY") == 0
        # The readout keeps its height, so the panels do not change size while the balls roll.
        step_in_page(page, 200)
        assert page.evaluate(BOXES, "article.run") == panels
        page.screenshot(path=str(tmp_path / f"playground-1400x900-{surface}.png"))


IN_VIEW = """([panel, slider]) => {
  const state = batchlabPlayground.state();
  const ball = batchlabPlayground.pixelOf(state.runs[panel].theta, panel);
  const box = document.getElementById(slider).getBoundingClientRect();
  const hit = document.elementFromPoint(ball.x, ball.y);
  return {
    slider: box.top >= 0 && box.bottom <= innerHeight && box.left >= 0 && box.right <= innerWidth,
    ball: ball.y >= 0 && ball.y <= innerHeight && ball.x >= 0 && ball.x <= innerWidth,
    uncovered: hit === document.querySelectorAll("article.run canvas")[panel],
  };
}"""


@pytest.mark.parametrize("surface", ["ball", "saddle", "valley", "two-minima"])
def test_at_375_px_the_sliders_and_a_ball_are_on_screen_together(browser, page_url, tmp_path, surface):
    with surface_at_size(browser, page_url, surface, 375, 812) as page:
        step_in_page(page, 20)
        assert page.evaluate(IN_VIEW, [0, "eta"]) == {"slider": True, "ball": True, "uncovered": True}
        page.screenshot(path=str(tmp_path / f"playground-375-{surface}-top.png"))
        for panel in range(4):  # scroll each ball to the middle of the room under the sticky sliders
            page.evaluate("""panel => {
              const ball = batchlabPlayground.pixelOf(batchlabPlayground.state().runs[panel].theta, panel);
              const under = document.getElementById("controls").getBoundingClientRect().height;
              scrollBy(0, ball.y - (under + innerHeight) / 2);
            }""", panel)
            page.wait_for_timeout(50)
            for slider in ("eta", "lambda", "batch"):
                assert page.evaluate(IN_VIEW, [panel, slider]) == {"slider": True, "ball": True, "uncovered": True}, \
                    (panel, slider)
            # the whole canvas fits between the sliders and the bottom of the window
            controls_bottom = page.evaluate("document.getElementById('controls').getBoundingClientRect().bottom")
            canvas_height = page.evaluate(f"document.querySelectorAll('article.run canvas')[{panel}]"
                                          ".getBoundingClientRect().height")
            assert canvas_height <= 812 - controls_bottom
        page.screenshot(path=str(tmp_path / f"playground-375-{surface}-last-panel.png"))
        assert page.evaluate("[document.documentElement.scrollWidth, innerWidth]") == [375, 375]


def readout(page, run: str, field: str) -> str:
    return page.locator(f"article.run[data-run={run}] dd[data-field='{field}']").inner_text()


def test_a_ball_at_rest_at_the_saddle_says_at_rest_and_saddle(tab):
    page = tab.page
    page.select_option("#surface", "saddle")
    assert tab.state()["start"] == [1.5, 0]  # on the stable manifold: gradient descent slides into the saddle
    step_in_page(page, 50)  # θ₁ = 1.5·0.9⁵⁰: ‖∇L‖ = 0.015, still sliding
    assert readout(page, "gd", "status") == "moving" and readout(page, "gd", "point") == "not critical"
    step_in_page(page, 54)  # θ₁ = 1.5·0.9¹⁰⁴: ‖∇L‖ = 5.2e-5, as in a user's report that said "moving"
    gd = tab.run("gd")
    assert gd["t"] == 104 and not gd["converged"]  # Python's absolute stopping rule (1e-6) has not ended it
    gradient_norm = float(readout(page, "gd", "‖∇L(θ)‖"))
    assert gradient_norm == pytest.approx(3 * 0.9**104, rel=1e-3)
    assert readout(page, "gd", "status") == "at rest" and readout(page, "gd", "point") == "saddle"
    assert gd["status"] == "at rest" and gd["kind"] == "saddle"
    assert page.locator("article.run[data-run=gd] .arrow-scale").inner_text().startswith("At rest")
    # The threshold is the documented one: 1e-4 of the surface's typical slope over the plotted domain.
    surface = get_surface("saddle")
    (x0, x1), (y0, y1) = surface.domain
    grid = np.array([[surface.loss(np.array([x, y])) for x in np.linspace(x0, x1, 65)]
                     for y in np.linspace(y0, y1, 65)])
    diagonal = np.hypot(x1 - x0, y1 - y0)
    scale = page.evaluate("batchlabPlayground.restScale()")
    assert scale["gradient"] == pytest.approx(1e-4 * (grid.max() - grid.min()) / diagonal, rel=1e-12)
    assert scale["step"] == pytest.approx(1e-4 * diagonal, rel=1e-12)
    assert f"= {scale['gradient']:.3g}".replace("e-05", "e-5") in page.locator("#rest-rule").text_content()


def test_at_rest_at_a_minimum_while_mini_batch_noise_keeps_moving(tab):
    page = tab.page
    page.select_option("#surface", "two-minima")
    page.locator("#speed").focus()
    page.keyboard.press("End")
    page.click("#play")
    page.wait_for_function("batchlabPlayground.state().runs[0].status === 'at rest'", timeout=30_000)
    page.click("#play")
    assert readout(page, "gd", "point") == "minimum"
    assert tab.run("sgd")["status"] == "moving"  # B = 2 of 12: the batch gradients never vanish together


SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")


def magnification(caption: str) -> float:
    """The factor k in "Arrows drawn k× longer than the step, …" ("200", "200,000", "5 × 10⁷", "10⁸")."""
    factor = caption.removeprefix("Arrows drawn ").split("× longer than the step")[0]
    if "10" in factor and factor.translate(SUPERSCRIPTS) != factor:
        mantissa, _, power = factor.rpartition("10")
        return float(mantissa.rstrip(" ×") or 1) * 10 ** int(power.translate(SUPERSCRIPTS))
    return float(factor.replace(",", ""))


@pytest.mark.parametrize("steps", [10, 60, 95])
def test_the_arrow_magnification_is_said_in_words_and_is_right(tab, steps):
    page = tab.page
    page.select_option("#surface", "saddle")
    step_in_page(page, steps)
    caption = page.locator("article.run[data-run=gd] .arrow-scale").inner_text()
    assert caption.endswith("longer than the step, so that it can be seen."), caption
    k = magnification(caption)
    gd = tab.run("gd")
    origin, unit = (page.evaluate("t => batchlabPlayground.pixelOf(t)", t) for t in ([0, 0], [1, 0]))
    pixels_per_unit = unit["x"] - origin["x"]
    step = 0.05 * np.linalg.norm(get_surface("saddle").grad(np.array(gd["theta"])))  # gradient descent: η‖∇L‖
    drawn = k * step * pixels_per_unit
    assert 44 <= drawn < 44 * 2.5, (caption, drawn)  # the round factor that makes the step 44 px or a little more
