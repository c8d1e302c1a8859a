"""Memory bandwidth of a working set, measured once per process: what a ``torch`` copy achieves.

:func:`copy_bandwidth` copies a float32 tensor of half the working set into another (so the copy
reads and writes the whole working set), ``COPY_REPEATS`` times after one untimed first touch
(page faults are not bandwidth), under a given intra-op thread count, and keeps the fastest:
load from other processes only ever adds time. A working set that fits in a cache is measured at
that cache's speed, which is the point: a caller asks about the working set it is about to use.
Working sets above ``LARGEST_COPY_BYTES`` are measured at that size, already beyond the caches of
common CPUs, so the answer never costs more than ~3 copies of 64 MiB (a few tens of ms). Results
are kept per (bytes, threads) for the life of the process.
"""

from __future__ import annotations

import time

import torch

from batchlab.runtime.threads import intra_op_threads

COPY_REPEATS = 3
LARGEST_COPY_BYTES = 64 * 2**20
FLOAT32_BYTES = 4

_measured: dict[tuple[int, int], float] = {}


def copy_bandwidth(working_set_bytes: int, threads: int) -> float:
    """Bytes per second moved by the fastest of ``COPY_REPEATS`` CPU copies over a working set of
    ``min(working_set_bytes, LARGEST_COPY_BYTES)`` (read + write), under ``threads`` intra-op threads."""
    size = max(2 * FLOAT32_BYTES, min(int(working_set_bytes), LARGEST_COPY_BYTES))
    key = (size, threads)
    if key not in _measured:
        _measured[key] = _measure(size, threads)
    return _measured[key]


def _measure(size: int, threads: int) -> float:
    source = torch.ones(size // (2 * FLOAT32_BYTES))
    target = torch.empty_like(source)
    fastest = float("inf")
    with intra_op_threads(threads):
        target.copy_(source)  # first touch
        for _ in range(COPY_REPEATS):
            start = time.perf_counter()
            target.copy_(source)
            fastest = min(fastest, time.perf_counter() - start)
    return 2 * source.numel() * FLOAT32_BYTES / max(fastest, 1e-9)
