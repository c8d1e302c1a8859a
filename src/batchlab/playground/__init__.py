"""The browser playground: one self-contained HTML page where the lecture's ball rolls.

:func:`render_page` returns the page as text and :func:`write_page` writes it atomically; the page
runs gradient descent, momentum, mini-batch SGD and mini-batch SGD with momentum side by side on
the toy surfaces of :mod:`batchlab.toy`, with the same numbers as Python (see
:mod:`batchlab.playground.page`). ``batchlab playground`` is the command.
"""

from batchlab.playground.page import playground_data, render_page, write_page

__all__ = ["playground_data", "render_page", "write_page"]
