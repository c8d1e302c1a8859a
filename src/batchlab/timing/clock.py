"""Reading the time of a block of updates honestly.

CUDA kernels run asynchronously: a host clock read right after launching a step measures only the
launch. So on CUDA a block of updates is bracketed by two CUDA events on the current stream (after
a synchronization, so that no earlier work is counted) and read after the end event has completed;
the events see host gaps too, because the GPU waits for work the host has not yet issued. On the
CPU a block is timed with ``time.perf_counter``.
"""

from __future__ import annotations

import time
from typing import Protocol

import torch

from batchlab.runtime.device import synchronize


class Steppable(Protocol):
    updates_per_epoch: int

    def new_epoch(self) -> None: ...

    def step(self) -> None: ...


def time_updates(path: Steppable, updates: int, device: torch.device, *, from_new_epoch: bool = False) -> float:
    """Seconds taken by ``updates`` consecutive updates (starting a fresh epoch first if asked,
    in which case drawing the epoch's order is part of the time, as it is part of an epoch)."""
    synchronize(device)
    if device.type == "cuda":
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        _run(path, updates, from_new_epoch)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0
    started = time.perf_counter()
    _run(path, updates, from_new_epoch)
    synchronize(device)
    return time.perf_counter() - started


def warm_up(path: Steppable, steps: int, device: torch.device, max_seconds: float) -> int:
    """Run up to ``steps`` untimed updates (at least one), stopping early after ``max_seconds``.

    The first updates pay for lazy initialization (allocator growth, kernel selection, DataLoader
    start-up) that a steady-state time must not include. Returns the number of updates run.
    """
    done = 0
    started = time.perf_counter()
    while done < max(steps, 1):
        path.step()
        done += 1
        synchronize(device)
        if time.perf_counter() - started > max_seconds:
            break
    return done


def estimate_update_seconds(path: Steppable, device: torch.device, min_block_s: float = 0.02) -> float:
    """A rough time per update, from blocks of 1, 4, 16, … updates until one lasts ``min_block_s``
    (or an epoch's worth): enough to decide how many updates fit the time budget."""
    updates = 1
    while True:
        elapsed = time_updates(path, updates, device)
        if elapsed >= min_block_s or updates >= path.updates_per_epoch:
            return elapsed / updates
        updates = min(updates * 4, path.updates_per_epoch)


def _run(path: Steppable, updates: int, from_new_epoch: bool) -> None:
    if from_new_epoch:
        path.new_epoch()
    for _ in range(updates):
        path.step()
