"""The README's Python examples run exactly as written: each ```python block is executed in a
fresh namespace, in a folder of its own (the examples write their store under the working
directory), in the order the README gives them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks() -> list[tuple[int, str]]:
    """``(line number, code)`` of every ```python block of the README."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, match.start()) + 1, match.group(1)) for match in BLOCK.finditer(text)]


def test_the_readme_has_python_examples():
    assert len(python_blocks()) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("line, code", python_blocks(), ids=lambda value: f"line-{value}" if isinstance(value, int)
                         else None)
def test_a_readme_example_runs_as_written(line, code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "readme_example"})
