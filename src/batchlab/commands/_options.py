"""Options shared by several subcommands, so they read the same and are checked the same everywhere.

Paths are checked when the command line is parsed, before anything is trained or timed: an
output file or folder whose parent is an existing *file*, or lies in a folder that cannot be
written, is refused in one line instead of failing after the work is done. argparse applies
a ``type`` to string defaults too, so the defaults are checked the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from batchlab.config import parse_batch_size
from batchlab.errors import ConfigError
from batchlab.commands._limits import check_seed, check_widths


DEFAULT_STORE = Path("batchlab-runs") / "runs.db"


# ----------------------------------------------------------------------------- path checks


def _first_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (``.`` for a relative path at the latest)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _check_creatable_under(path: Path, what: str) -> None:
    """``path`` can be created: its nearest existing ancestor is a folder we may write in."""
    existing = _first_existing(path)
    if not existing.is_dir():
        raise ConfigError(f"cannot write {what} {path}: {existing} is a file, not a folder; "
                          "allowed: a path under a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {what} {path}: folder {existing} is not writable; "
                          "allowed: a path in a writable folder")


def check_output_file(path: str | Path, what: str = "the file") -> Path:
    """``path`` as a :class:`Path` if a file can be written there, else one-line :class:`ConfigError`."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"cannot write {what} {path}: it is a folder; allowed: a file path")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise ConfigError(f"cannot write {what} {path}: the file is not writable")
        _check_creatable_under(path.parent, what)
    else:
        _check_creatable_under(path, what)
    return path


def check_output_dir(path: str | Path, what: str = "into the folder") -> Path:
    """``path`` as a :class:`Path` if it is (or can be made) a writable folder, else :class:`ConfigError`."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"cannot write {what} {path}: it is a file, not a folder; allowed: a folder path")
    _check_creatable_under(path, what)
    return path


def check_store_path(path: str | Path) -> Path:
    """A run-store path that is not a folder and can be created (its content is checked on opening)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"run store {path} is a folder; allowed: a store file, e.g. {DEFAULT_STORE}")
    return check_output_file(path, "the run store")


def check_store_opens(path: Path) -> None:
    """Open an existing store once and close it (raises StoreError for a file that is not a
    batchlab store), so a command that computes first and stores last fails before computing."""
    if path.exists():
        from batchlab.store import RunStore

        RunStore(path, create=False).close()


def _argparse_type(check):
    """An argparse ``type`` from a checker that raises ConfigError (argparse shows its one line)."""

    def convert(text: str):
        try:
            return check(text)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = check.__name__.removeprefix("check_")
    return convert


output_file = _argparse_type(check_output_file)
output_dir = _argparse_type(check_output_dir)
store_path = _argparse_type(check_store_path)


# ----------------------------------------------------------------------------- number checks


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"seed {text!r} is not an integer; allowed: an integer 0 … 2**63-1") from None
    return check_seed(value)


def _width(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"hidden width {text!r} is not an integer; allowed: integers ≥ 1") from None
    check_widths([value])
    return value


seed_value = _argparse_type(_seed)
hidden_width = _argparse_type(_width)
batch_size_value = _argparse_type(parse_batch_size)  # 1 … N or 'full'


# ----------------------------------------------------------------------------- options


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        type=store_path,
        default=str(DEFAULT_STORE),
        help=f"SQLite run store, one file per study (default: {DEFAULT_STORE})",
    )


def add_data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where datasets live (default: $BATCHLAB_DATA, else ~/.cache/batchlab/data)",
    )


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (GPU when present), cpu, cuda, cuda:N (default: auto)",
    )


def add_progress_option(parser: argparse.ArgumentParser, what: str = "progress bars while runs train") -> None:
    """``--progress/--no-progress``: on by default when stderr is a terminal (``None`` = decide then)."""
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help=f"{what} on stderr (default: only on a terminal)")


def progress_on(progress: bool | None) -> bool:
    """The ``--progress`` choice, with 'not given' meaning: stderr is a terminal."""
    return sys.stderr.isatty() if progress is None else progress


def stage_printer(progress: bool | None) -> Callable[[str], None]:
    """``say(text)``: a stage line with the seconds since this call on stderr, when progress is on."""
    if not progress_on(progress):
        return lambda text: None
    started = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {text}", file=sys.stderr, flush=True)

    return say


def add_experiment_options(parser: argparse.ArgumentParser, out_default: str | Path, writes: str,
                           progress: str = "a progress bar per training run (else one log line per run)") -> None:
    """The options every experiment command (gap, largebatch, advise) shares: the store, the
    output folder, the output format, progress, the device and the data folder."""
    add_store_option(parser)
    parser.add_argument("--out", type=output_dir, default=str(out_default), metavar="DIR",
                        help=f"where {writes} go (default: {out_default})")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    add_progress_option(parser, progress)
    add_device_option(parser)
    add_data_dir_option(parser)


