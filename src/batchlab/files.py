"""Writing files so that a reader never sees a partial one, and strict JSON.

Every writer here follows one rule (POSIX rename(2) is atomic within a file system):

1. write to a temporary file ``.<name>.<random>.tmp`` in the target's own folder;
2. flush it and ``os.fsync`` it, so its bytes are on disk before its name is;
3. give it the usual permissions (``0o666 & ~umask``; temporary files are created private);
4. ``os.replace`` it over the target, then fsync the folder so the new name survives a crash.

A failure at any step removes the temporary file and leaves the old target as it was. A full
disk or quota (``ENOSPC``, ``EDQUOT``) at any step is then raised as one
:class:`~batchlab.errors.DiskFullError` line naming the target, however the writer reported it:
``torch.save`` turns the ``OSError`` of its file's ``write`` into a ``RuntimeError`` ("unexpected
pos"), so the writer is handed the file behind a watch that keeps the first ``OSError`` its
``write`` raised.

JSON has no NaN or infinity; a diverged run's loss is a real result, so :func:`write_json` writes
non-finite numbers as ``null`` rather than as the non-standard ``NaN`` that other readers reject.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchlab.errors import DiskFullError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# The permissions of a file made by open(): temporary files are private (0600) until renamed.
_UMASK = _current_umask()
FILE_MODE = 0o666 & ~_UMASK
DIRECTORY_MODE = 0o777 & ~_UMASK

# Figures carry no "Software"/"Date" metadata, so the same numbers give the same files.
QUIET_FIGURE_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}

# The errno values of a full disk and of an exhausted quota (EDQUOT is missing on some systems).
DISK_FULL_ERRNOS = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None)


class _WatchedFile:
    """A file whose ``write`` keeps the first ``OSError`` it raised (and raises it on), so that a
    writer that reports the failure as something else cannot hide a full disk."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.error: OSError | None = None

    def write(self, data: Any) -> Any:
        try:
            return self._handle.write(data)
        except OSError as error:
            self.error = self.error or error
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def disk_full(target: str | Path, what: str = "no space left on device") -> DiskFullError:
    """The one-line error of a write to ``target`` that found its disk (or the user's quota) full."""
    return DiskFullError(f"{what} while writing {target} (nothing stored before is lost; free some space "
                         "and run it again)")


def disk_full_error(error: BaseException | None, target: str | Path) -> DiskFullError | None:
    """A one-line :class:`DiskFullError` for ``target`` when ``error`` (or an error it was
    raised from or during) is an ``OSError`` of a full disk or quota, else None."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            what = "disk quota exceeded" if error.errno == getattr(errno, "EDQUOT", None) else "no space left on device"
            return disk_full(target, what)
        error = error.__cause__ or error.__context__
    return None


def atomic_write(target: str | Path, write: Callable[[Any], object], *, binary: bool = True) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``target``, then move it into place
    (module docstring); returns ``target`` as a Path. Creates missing parent folders.

    ``handle`` is a binary file, or with ``binary=False`` a UTF-8 text file (newlines written as given).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        "wb" if binary else "w", encoding=None if binary else "utf-8", newline=None if binary else "",
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False,
    )
    watched = _WatchedFile(handle)
    try:
        with handle:
            write(watched)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, FILE_MODE)
        os.replace(handle.name, target)
    except BaseException as error:
        Path(handle.name).unlink(missing_ok=True)
        full = disk_full_error(error, target) or disk_full_error(watched.error, target)
        if full is not None:
            raise full from error
        raise
    _fsync_directory(target.parent)
    return target


def write_text_atomically(target: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    return atomic_write(target, lambda handle: handle.write(text), binary=False)


def write_bytes_atomically(target: str | Path, payload: bytes) -> Path:
    """Write ``payload`` to ``target`` atomically."""
    return atomic_write(target, lambda handle: handle.write(payload))


def write_json(target: str | Path, data: Any, *, ensure_ascii: bool = True) -> Path:
    """Write ``data`` as indented strict JSON (:func:`strict_json`) and a final newline to
    ``target`` atomically; returns the path."""
    return write_text_atomically(target, strict_json_text(data, ensure_ascii=ensure_ascii) + "\n")


def save_figure(figure: Figure, stem: str | Path, formats: Iterable[str] = ("png", "svg"),
                **savefig: Any) -> list[Path]:
    """Write ``figure`` as ``<stem>.<format>`` for each format, each atomically and without
    date or software metadata; returns the paths written. ``savefig`` goes to
    ``Figure.savefig`` (e.g. ``dpi=150``)."""
    stem = Path(stem)
    written = []
    for fmt in formats:
        target = stem.with_name(f"{stem.name}.{fmt}")
        metadata = QUIET_FIGURE_METADATA.get(fmt)
        written.append(atomic_write(
            target, lambda handle, fmt=fmt, metadata=metadata: figure.savefig(
                handle, format=fmt, metadata=metadata, **savefig),
        ))
    return written


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Fill a fresh folder, then put it in place of ``target`` in one rename.

    ``with atomic_directory(path) as staging:`` yields a private folder beside ``target``; when the
    block ends normally the folder gets the usual permissions, an existing ``target`` is removed
    and the folder is renamed to ``target``. On an exception the folder is removed and ``target``
    is left as it was. (A reader may see no ``target`` for the instant between removal and
    rename, never a half-filled one.)
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staging
        for child in staging.iterdir():
            if child.is_file():
                _fsync_file(child)
        os.chmod(staging, DIRECTORY_MODE)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except OSError as error:
        full = disk_full_error(error, target)
        if full is not None:
            raise full from error
        raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    _fsync_directory(target.parent)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_directory(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename itself is still atomic
    finally:
        os.close(descriptor)


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


def strict_json_text(data: Any, *, indent: int | None = 2, ensure_ascii: bool = True) -> str:
    """``data`` as strict JSON text (RFC 8259): NaN and infinities become null (:func:`strict_json`),
    numpy and torch values plain numbers and lists (:func:`json_default`). The one encoder of every
    JSON file batchlab writes and of every ``--format json`` output."""
    return json.dumps(strict_json(data), indent=indent, allow_nan=False, ensure_ascii=ensure_ascii,
                      default=json_default)


def strict_json(value: Any) -> Any:
    """``value`` as strict JSON data: NaN and infinities become None, tuples lists, dict keys
    strings, paths text, numpy and torch numbers plain numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return strict_json(value.tolist())
    return value
