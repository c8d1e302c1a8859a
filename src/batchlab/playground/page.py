"""Build the playground page from a template shipped with the package and batchlab.toy's definitions.

The page is one HTML file: ``template.html`` with ``playground.css`` and ``playground.js`` inlined
and the toy surfaces' definitions embedded as JSON -- every surface's parameters, start, learning
rate, domain and classified critical points, and its twelve examples' tilts
(:func:`batchlab.toy.examples.examples_for`). The JavaScript implements the same formulas, the same
update rule (m ← λm − ηg, θ ← θ + m) and the same mulberry32 batch order as
:func:`batchlab.toy.trajectory.run_trajectory`, so for the same settings the page and Python give
the same trajectory (the browser tests compare them to 1e-9). Nothing is fetched: no script,
style sheet, font or image comes from the network.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path

from batchlab.errors import ConfigError
from batchlab.files import write_text_atomically
from batchlab.toy.examples import examples_for
from batchlab.toy.surfaces import get_surface
from batchlab.toy.trajectory import DEFAULT_DIVERGENCE_BOUND, DEFAULT_STEPS, DEFAULT_STOP_TOL

# The surfaces the page's JavaScript implements, in menu order, with the menu's labels.
PAGE_SURFACES = {
    "ball": "1-D ball: small local minimum, then a deeper one",
    "saddle": "saddle between two minima",
    "valley": "quadratic valley, condition number κ",
    "two-minima": "two minima behind a saddle",
}
_DATA_MARK = "/*BATCHLAB_DATA*/null"
_CSS_MARK = "/*BATCHLAB_CSS*/"
_JS_MARK = "/*BATCHLAB_JS*/"


def playground_data() -> dict:
    """What the page needs from Python, JSON-ready: per surface its description, parameters and
    examples, and the stopping rule of :func:`run_trajectory`."""
    surfaces = []
    for name, label in PAGE_SURFACES.items():
        surface = get_surface(name)
        params = {field.name: getattr(surface, field.name) for field in dataclasses.fields(surface)}
        surfaces.append({
            **surface.describe(),
            "label": label,
            "params": json.loads(json.dumps(params)),  # tuples -> lists
            "examples": examples_for(surface).describe(),
        })
    return {
        "surfaces": surfaces,
        "stop_tol": DEFAULT_STOP_TOL,
        "divergence_bound": DEFAULT_DIVERGENCE_BOUND,
        "steps": DEFAULT_STEPS,
    }


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def render_page() -> str:
    """The whole page as text: template, inline CSS and JavaScript, embedded data."""
    # "</" inside the JSON could end the <script> element early; "<\/" is the same JSON string.
    data = json.dumps(playground_data(), ensure_ascii=False, allow_nan=False).replace("</", "<\\/")
    page = _asset("template.html")
    for mark, text in ((_CSS_MARK, _asset("playground.css")), (_JS_MARK, _asset("playground.js")),
                       (_DATA_MARK, data)):
        if page.count(mark) != 1:
            raise RuntimeError(f"playground template must contain {mark} exactly once")
        page = page.replace(mark, text)
    return page


def write_page(path: Path | str) -> Path:
    """Write the page to ``path`` atomically (a temporary file in the same folder, then a rename)."""
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{target} is a folder; give the file to write, e.g. {target / 'playground.html'}")
    return write_text_atomically(target, render_page())
