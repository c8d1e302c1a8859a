"""Limits on what a run may ask for, checked before any data is loaded or any step is taken.

Each check raises :class:`batchlab.errors.ConfigError` with one line naming the value and what is
allowed, so the command line can refuse bad input at once instead of failing deep inside torch:

* seeds within 0 … 2⁶³ − 1 and hidden widths of one or more integers ≥ 1: the configuration's
  own validators, :func:`batchlab.config.check_seed` and :func:`batchlab.config.check_widths`,
  which the command-line types call on each value as it is parsed;
* a model whose parameters cannot fit: the count is taken from the model built on PyTorch's
  ``meta`` device (shapes only, no memory), and training holds the weights, their gradients
  and one momentum buffer, each float32 — three copies of the parameters at least.

This module imports torch only inside :func:`check_model_memory`, so it is cheap to import.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from batchlab.config import check_seed, check_widths  # noqa: F401  (the command-line types read them here)
from batchlab.errors import ConfigError

BYTES_PER_PARAMETER = 4  # float32
# Weights, their gradients and the momentum buffer: what one training step keeps per parameter.
COPIES_IN_TRAINING = 3


def size_text(n_bytes: float) -> str:
    """Bytes in the largest unit that keeps the number ≥ 1 (decimal units: 1 GB = 10⁹ B)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n_bytes < 1000 or unit == "PB":
            return f"{n_bytes:.3g} {unit}"
        n_bytes /= 1000
    raise AssertionError("unreachable")


def device_memory_bytes(device) -> int | None:
    """Total memory of the torch ``device`` (a CUDA device's own, else the machine's RAM), or
    ``None`` where it cannot be read."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def model_description(model: str, hidden: Sequence[int] | None) -> str:
    widths = "its default widths" if not hidden else "hidden widths " + " ".join(str(w) for w in hidden)
    return f"model {model} with {widths}"


def check_model_memory(model: str, dataset: str, hidden: Sequence[int] | None, device: str = "auto") -> int:
    """The parameter count of ``model`` built for ``dataset``'s images; :class:`ConfigError` when
    training it needs more than the memory of ``device`` (``COPIES_IN_TRAINING`` float32 copies
    of the parameters)."""
    import torch

    from batchlab.data.registry import get_spec
    from batchlab.runtime.device import resolve_device
    from batchlab.models.registry import build_model, count_parameters

    spec = get_spec(dataset)
    widths = check_widths(hidden)
    with torch.device("meta"):  # shapes only: no memory is taken, however wide the layers
        parameters = count_parameters(build_model(model, spec.input_shape, spec.num_classes, widths))
    needed = parameters * BYTES_PER_PARAMETER * COPIES_IN_TRAINING
    target = resolve_device(device)
    available = device_memory_bytes(target)
    if available is not None and needed > available:
        raise ConfigError(
            f"{model_description(model, widths)} has {parameters:,} parameters on {dataset}: training needs "
            f"about {size_text(needed)} (weights, gradients and momentum in float32) but the {target.type} "
            f"memory is {size_text(available)}; allowed: smaller --hidden widths"
        )
    return parameters


@contextmanager
def model_memory_errors(model: str, hidden: Sequence[int] | None) -> Iterator[None]:
    """Turn torch's out-of-memory errors raised inside the block into one :class:`ConfigError`
    line naming the model and the size torch asked for."""
    import torch

    try:
        yield
    except (torch.OutOfMemoryError, RuntimeError) as error:
        text = str(error)
        if not isinstance(error, torch.OutOfMemoryError) and not _is_memory_message(text):
            raise
        asked = _bytes_asked(text)
        size = f" (asked for {size_text(asked)})" if asked is not None else ""
        raise ConfigError(
            f"out of memory building or training {model_description(model, hidden)}{size}; "
            "allowed: smaller --hidden widths or --batch-size"
        ) from None


def _is_memory_message(text: str) -> bool:
    lowered = text.lower()
    return "not enough memory" in lowered or "can't allocate memory" in lowered or "out of memory" in lowered


def _bytes_asked(text: str) -> int | None:
    """The byte count in torch's 'you tried to allocate N bytes' / 'Tried to allocate 2.00 GiB'."""
    match = re.search(r"tried to allocate (\d+) bytes", text, re.IGNORECASE)
    if match:
        return int(match.group(1))
    match = re.search(r"tried to allocate ([\d.]+) (KiB|MiB|GiB|TiB)", text, re.IGNORECASE)
    if match:
        scale = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}[match.group(2).lower()]
        return int(float(match.group(1)) * scale)
    return None
