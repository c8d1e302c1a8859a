"""Honest per-update timing inside a training loop.

On the CPU each update is timed with ``time.perf_counter`` around the whole step (batch gather,
forward, backward, optimizer step). On CUDA, reading a host clock would only time the kernel
launches, and synchronizing after every step would slow training; instead a pair of CUDA events
brackets each update on the stream and the elapsed times are read once, at the end of the epoch
(after one synchronization). The first update of a run is a warm-up and is left out.
"""

from __future__ import annotations

import statistics
import time

import torch


class UpdateTimer:
    """Collects the duration of every update; ``start()``/``stop()`` bracket one update."""

    def __init__(self, device: torch.device, skip_first: int = 1) -> None:
        self.device = device
        self._skip = skip_first
        self._seconds: list[float] = []
        self._pending_events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._t0 = 0.0
        self._start_event: torch.cuda.Event | None = None

    def start(self) -> None:
        if self.device.type == "cuda":
            self._start_event = torch.cuda.Event(enable_timing=True)
            self._start_event.record()
        else:
            self._t0 = time.perf_counter()

    def stop(self) -> None:
        if self.device.type == "cuda":
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            assert self._start_event is not None
            self._pending_events.append((self._start_event, end))
        else:
            self._seconds.append(time.perf_counter() - self._t0)

    def flush(self) -> None:
        """Turn recorded CUDA event pairs into seconds (synchronizes once)."""
        if self._pending_events:
            torch.cuda.synchronize(self.device)
            self._seconds.extend(start.elapsed_time(end) / 1000.0 for start, end in self._pending_events)
            self._pending_events.clear()

    @property
    def seconds(self) -> list[float]:
        self.flush()
        return self._seconds[self._skip :] if len(self._seconds) > self._skip else list(self._seconds)

    def summary(self) -> dict[str, float | int | None]:
        """Median and quartiles of the update times, in seconds."""
        return update_time_summary(self.seconds)


def update_time_summary(values: list[float]) -> dict[str, float | int | None]:
    """``time_per_update_s`` (median), its quartiles and ``timed_updates`` of per-update times in
    seconds (inclusive quartiles; one value is its own quartiles; none gives None)."""
    if not values:
        return {"time_per_update_s": None, "time_per_update_q25_s": None, "time_per_update_q75_s": None,
                "timed_updates": 0}
    if len(values) >= 2:
        q25, _, q75 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q25 = q75 = values[0]
    return {"time_per_update_s": statistics.median(values), "time_per_update_q25_s": q25,
            "time_per_update_q75_s": q75, "timed_updates": len(values)}
