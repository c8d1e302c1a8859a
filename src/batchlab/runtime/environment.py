"""The environment a run was measured in, stored with every run for reproducibility."""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
from pathlib import Path

import torch

from batchlab.runtime.device import device_name


def describe_environment(device: torch.device, update_threads: int | None = None) -> dict:
    """Versions, device and host: enough to tell where and with what a number was measured.

    ``torch_threads`` is PyTorch's intra-op thread count when this is called; ``update_threads``
    the count the training or timed updates ran with (:func:`batchlab.runtime.threads.apply_thread_rule`),
    None when the caller did not say.
    """
    import numpy

    return {
        "batchlab_version": _batchlab_version(),
        "git_commit": project_git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "update_threads": update_threads,
        "host": socket.gethostname(),
        "platform": platform.platform(),
    }


def _batchlab_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("batchlab")
    except PackageNotFoundError:
        return "unknown"


@functools.cache
def project_git_commit() -> str | None:
    """The commit of the batchlab checkout this code runs from, or None when it is not one.

    Only a checkout whose ``src/batchlab`` is this very package counts, so an installed copy
    inside some unrelated repository does not report that repository's commit. Asked once per
    process: the code a process runs is what it imported, whatever is checked out later (and a
    ``git`` process per run would cost every run a few milliseconds).
    """
    here = Path(__file__).resolve().parents[1]  # src/batchlab, this module being in its runtime/
    try:
        top = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = top.stdout.split()
    if top.returncode != 0 or len(lines) != 2:
        return None
    toplevel, commit = lines
    if Path(toplevel, "src", "batchlab").resolve() != here:
        return None
    return commit
