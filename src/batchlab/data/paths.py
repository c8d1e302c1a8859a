"""Where datasets live on disk.

The data directory is, in order of precedence: the ``--data-dir`` option (``data_dir``
argument), the environment variable ``BATCHLAB_DATA``, then ``~/.cache/batchlab/data``. Each
dataset has its own subdirectory named after it; read-only system locations listed in a
dataset's spec (e.g. Debian's) are searched after it.
"""

from __future__ import annotations

import os
from pathlib import Path

from batchlab.data.registry import DatasetSpec

DATA_DIR_ENV = "BATCHLAB_DATA"


def default_data_dir() -> Path:
    """``$BATCHLAB_DATA`` when set and non-empty, else ``~/.cache/batchlab/data``."""
    from_env = os.environ.get(DATA_DIR_ENV, "").strip()
    if from_env:
        return Path(from_env).expanduser()
    return Path.home() / ".cache" / "batchlab" / "data"


def resolve_data_dir(data_dir: Path | str | None) -> Path:
    """The data directory to use: ``data_dir`` when given, else :func:`default_data_dir`."""
    if data_dir is None or str(data_dir) == "":
        return default_data_dir()
    return Path(data_dir).expanduser()


def dataset_dir(spec: DatasetSpec, data_dir: Path | str | None) -> Path:
    """The writable directory of one dataset: ``<data_dir>/<name>`` (downloads go here)."""
    return resolve_data_dir(data_dir) / spec.name


def search_dirs(spec: DatasetSpec, data_dir: Path | str | None) -> list[Path]:
    """Directories that may hold the dataset's files, in the order they are tried."""
    return [dataset_dir(spec, data_dir), *(Path(d) for d in spec.system_dirs)]
