"""Memory bandwidth as a ``torch`` copy achieves it: one measurement, used by the packing choice
and by the throughput benchmark.

:func:`copy_seconds` times ``repeats`` copies of a tensor of a given size into another on a
device, after one untimed first touch (page faults and lazy allocation are not bandwidth); a copy
reads and writes its bytes, so it moves twice its size. :func:`copy_bandwidth` is what the CPU
packing choice asks: the fastest of ``COPY_REPEATS`` copies over a working set (a copy of half of
it into the other half), under a given intra-op thread count. Load from other processes only ever
adds time, so the fastest copy is the measurement. A working set that fits in a cache is measured
at that cache's speed, which is the point: a caller asks about the working set it is about to use.
Working sets above ``LARGEST_COPY_BYTES`` are measured at that size, already beyond the caches of
common CPUs, so the answer never costs more than ~3 copies of 64 MiB (a few tens of ms). Results
are kept per (bytes, threads) for the life of the process.
"""

from __future__ import annotations

import time

import torch

from batchlab.runtime.device import synchronize
from batchlab.runtime.threads import intra_op_threads

COPY_REPEATS = 3
LARGEST_COPY_BYTES = 64 * 2**20
FLOAT32_BYTES = 4

_measured: dict[tuple[int, int], float] = {}


def copy_seconds(copy_bytes: int, device: torch.device, repeats: int) -> list[float]:
    """Wall seconds of each of ``repeats`` copies of ``copy_bytes`` (float32) into another buffer
    on ``device``, after one untimed copy; each copy moves 2 × ``copy_bytes`` (read + write)."""
    source = torch.ones(max(1, copy_bytes // FLOAT32_BYTES), device=device)
    target = torch.empty_like(source)
    target.copy_(source)  # first touch
    seconds = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        target.copy_(source)
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def copy_bandwidth(working_set_bytes: int, threads: int) -> float:
    """Bytes per second moved by the fastest of ``COPY_REPEATS`` CPU copies over a working set of
    ``min(working_set_bytes, LARGEST_COPY_BYTES)`` (read + write), under ``threads`` intra-op threads."""
    size = max(2 * FLOAT32_BYTES, min(int(working_set_bytes), LARGEST_COPY_BYTES))
    key = (size, threads)
    if key not in _measured:
        with intra_op_threads(threads):
            fastest = min(copy_seconds(size // 2, torch.device("cpu"), COPY_REPEATS))
        _measured[key] = size / max(fastest, 1e-9)
    return _measured[key]
