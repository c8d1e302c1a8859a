"""Writing files so that a reader never sees a partial one.

Every writer here writes to a temporary file in the target's own folder, flushes and fsyncs it,
gives it the usual permissions and moves it over the target with ``os.replace`` (atomic within a
file system, POSIX rename(2)). A failure at any point leaves the old file as it was.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Temporary files are created private (0600); the final file gets the usual permissions instead.
_FILE_MODE = 0o666 & ~_current_umask()


def atomic_write(target: Path, write: Callable[[Any], None], *, binary: bool = True) -> None:
    """Call ``write(handle)`` on a temporary file in ``target``'s folder, fsync, then os.replace.

    A reader sees either the old file or the complete new one, never a partial write.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        "wb" if binary else "w", encoding=None if binary else "utf-8",
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False,
    )
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, _FILE_MODE)
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write_text_atomically(target: Path, text: str) -> None:
    atomic_write(target, lambda handle: handle.write(text), binary=False)


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)``: numpy scalars/arrays and tensors become plain numbers and
    lists; paths become strings and sets sorted lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} cannot be stored as JSON")


def strict_json(value: Any) -> Any:
    """NaN and infinities become null, so the output is strict JSON that any reader accepts."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value
