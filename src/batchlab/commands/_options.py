"""Options shared by several subcommands, so they read the same everywhere."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_STORE = Path("batchlab-runs") / "runs.db"


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        type=Path,
        default=DEFAULT_STORE,
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


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")
