"""What every benchmark script shares: the result file's name, the machine's load, the JSON write.

A benchmark writes ``benchmarks/results/<name>-<device-slug>.json``; the slug is the GPU's model
(``nvidia-h200``) or ``cpu-<cores>-cores``, so results of different machines sit side by side.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import torch

from batchlab.runtime.device import device_name
from batchlab.runtime.environment import describe_environment
from batchlab.files import write_json

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def device_slug(device: torch.device) -> str:
    if device.type == "cpu":
        return f"cpu-{os.cpu_count()}-cores"
    return re.sub(r"[^a-z0-9]+", "-", device_name(device).lower()).strip("-")


def load_average() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages (runnable threads), or None where there are none."""
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def result_header(benchmark: str, device: torch.device, load_before: list[float] | None) -> dict:
    """The fields every result file starts with: what, when, on which device, in which
    environment, and the machine's load before and now (after the measurements)."""
    return {
        "benchmark": benchmark,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "device_name": device_name(device),
        "environment": describe_environment(device),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


def write_result(result: dict, out: Path | None, name: str, device: torch.device) -> Path:
    """Write ``result`` as strict JSON to ``out`` (default ``results/<name>-<device-slug>.json``)
    atomically (:func:`batchlab.files.write_json`), so a killed benchmark leaves no half-written file."""
    return write_json(out or RESULTS_DIR / f"{name}-{device_slug(device)}.json", result)
