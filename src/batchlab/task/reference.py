"""``PATH.py:FUNCTION``: how ``--model-file`` and ``--data-file`` name a function.

No torch here: the command line's parser shows the form, and :mod:`batchlab.task.files` imports
the file it names.
"""

from __future__ import annotations

from pathlib import Path

from batchlab.errors import ConfigError

FORM = "PATH.py:FUNCTION"


def split_reference(reference: str, flag: str) -> tuple[Path, str]:
    """``(path, function name)`` of ``reference``; a reference without a function name, or to a
    file that does not exist, is a one-line :class:`ConfigError` naming ``flag``."""
    path_text, separator, function_name = str(reference).rpartition(":")
    if not separator or not path_text or not function_name.isidentifier():
        raise ConfigError(f"{flag} {reference!r} does not name a function; allowed: {flag} {FORM}")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ConfigError(f"{flag}: file {path} does not exist; allowed: {flag} {FORM}")
    return path, function_name
