"""Time per update against batch size: batchlab's data paths vs the plain-PyTorch way, in one run.

Workload: the lecture's MLP (784-512-512-10, float32), N = 60,000 examples of MNIST's shape
(random pixels when the chosen dataset has fewer examples: timing does not depend on pixel values),
batch sizes 1, 100, 1000, 10000, 60000 (the points of docs/science.md §8). Three series, measured with
:func:`batchlab.timing.measure_point` (warm-up, then the median of ``--repeats`` blocks of updates,
with quartiles; epochs that do not fit the budget are extrapolated and flagged):

(a) ``plain``: ``torch.utils.data.DataLoader(TensorDataset(x, y), batch_size=B, shuffle=True)`` and
    ``torch.optim.SGD(momentum=0.9)``, each batch moved to the device — the baseline;
(b) ``resident``: batchlab's trainer step (data on the device, batches gathered from a per-epoch
    permutation, the lecture's ``batchlab.optim.Momentum``);
(c) ``cuda-graph`` (CUDA only): (b) with the whole step captured once in a CUDA graph and replayed
    (capture time reported apart).

Prints per-update and per-epoch times and each path's speed-up over (a), then where the goals stand.
Goals (an H100, fp32): the cuda-graph path within 1.5× of docs/science.md §8's 0.079 ms per update at
B = 1, and an epoch at every B ≥ 1000 in ≤ 10 ms. They are checked only on an H100.

Writes ``benchmarks/results/timing-<device-slug>.json`` with the device name, the environment
(:func:`batchlab.runtime.environment.describe_environment`), the machine's load average before and after
(other processes on a shared machine slow a CPU measurement) and every point.

Usage::

    PYTHONPATH=src python benchmarks/timing_paths.py                 # the GPU if present, else the CPU
    PYTHONPATH=src python benchmarks/timing_paths.py --device cpu --budget-s 0.5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from batchlab.runtime.device import device_name, resolve_device
from batchlab.timing import format_seconds, measure_point
from batchlab.timing.harness import (
    DEFAULT_REPEATS,
    DEFAULT_WARMUP,
    TIMING_LR,
    TIMING_MOMENTUM,
    busy_machine_note,
)
from batchlab.timing.workload import make_timing_data

from common import load_average, result_header, write_result
BATCH_SIZES = (1, 100, 1000, 10000, 60000)
N_EXAMPLES = 60000
BASELINE = "plain"
# (series name, data path, optimizer): the baseline first.
SERIES = (
    (BASELINE, "dataloader", "torch-sgd"),
    ("resident", "resident", "momentum"),
    ("cuda-graph", "cuda-graph", "momentum"),
)
# docs/science.md §8: plain PyTorch on one H100 (torch 2.11), median time per update in seconds.
H100_REFERENCE = {
    "dataloader, eager": {1: 1.22e-3, 100: 2.28e-3, 1000: 12.3e-3, 10000: 139e-3, 60000: 906e-3},
    "data on GPU, eager": {1: 0.94e-3, 100: 1.45e-3, 1000: 1.24e-3, 10000: 1.57e-3, 60000: 5.37e-3},
    "data on GPU, CUDA graph": {1: 0.079e-3, 100: 0.156e-3, 1000: 0.27e-3, 10000: 1.16e-3, 60000: 5.33e-3},
}
GOAL_GRAPH_B1_S = 1.5 * 0.079e-3
GOAL_EPOCH_S = 10e-3
GOAL_EPOCH_MIN_B = 1000


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: the GPU if present, else the CPU)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument("--n-examples", type=int, default=N_EXAMPLES)
    parser.add_argument("--dataset", default="mnist-5k", help="whose shape (and pixels, when it has N) are timed")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP)
    parser.add_argument("--budget-s", type=float, default=None,
                        help="timed seconds per point (default: 2 on a GPU, 1 on the CPU)")
    parser.add_argument("--out", type=Path, default=None, help="result file (default: results/timing-<device>.json)")
    return parser.parse_args(argv)


def measure_all(args: argparse.Namespace, device: torch.device) -> dict[str, list]:
    """Every series at every batch size, interleaved by batch size so that a change in the
    machine's load during the run touches all series alike."""
    data = make_timing_data(args.dataset, args.n_examples)
    series = [s for s in SERIES if s[1] != "cuda-graph" or device.type == "cuda"]
    measured: dict[str, list] = {name: [] for name, _, _ in series}
    for batch_size in args.batch_sizes:
        for name, path, optimizer in series:
            point = measure_point(
                path, "mlp", batch_size, args.n_examples, device, args.repeats, args.warmup, args.budget_s,
                data=data, optimizer=optimizer,
            )
            measured[name].append(point)
            print(f"  {name:<11} B={batch_size:<6} {format_seconds(point.per_update_median_s):>10} per update",
                  file=sys.stderr, flush=True)
    return measured


def ratios(measured: dict[str, list]) -> list[dict]:
    """Speed-up of each path over the plain-PyTorch baseline at each batch size (time ratio)."""
    baseline = {p.batch_size: p for p in measured[BASELINE]}
    rows = []
    for name, points in measured.items():
        if name == BASELINE:
            continue
        for point in points:
            base = baseline[point.batch_size]
            rows.append({
                "series": name,
                "batch_size": point.batch_size,
                "speedup_per_update": base.per_update_median_s / point.per_update_median_s,
                "speedup_per_epoch": base.per_epoch_s / point.per_epoch_s,
            })
    return rows


def goals(measured: dict[str, list], device: torch.device) -> list[dict]:
    """Where the two H100 goals stand; they are judged only on an H100."""
    stated = [
        ("cuda-graph per update at B = 1 ≤ 1.5 × 0.079 ms on an H100", GOAL_GRAPH_B1_S),
        (f"epoch at B ≥ {GOAL_EPOCH_MIN_B} ≤ 10 ms on an H100 (fp32)", GOAL_EPOCH_S),
    ]
    if device.type != "cuda":
        return [{"goal": text, "target_s": target, "status": "not measured: no GPU"} for text, target in stated]
    on_h100 = "H100" in device_name(device)
    results = []
    graph_b1 = next((p for p in measured.get("cuda-graph", []) if p.batch_size == 1), None)
    results.append(_judge(stated[0], graph_b1.per_update_median_s if graph_b1 else None, on_h100, "cuda-graph, B = 1"))
    best = "cuda-graph" if "cuda-graph" in measured else "resident"
    large = [p for p in measured[best] if p.batch_size >= GOAL_EPOCH_MIN_B]
    worst = max(large, key=lambda p: p.per_epoch_s, default=None)
    where = f"{best}, slowest epoch among B ≥ {GOAL_EPOCH_MIN_B}: B = {worst.batch_size}" if worst else best
    results.append(_judge(stated[1], worst.per_epoch_s if worst else None, on_h100, where))
    return results


def _judge(stated: tuple[str, float], value: float | None, on_h100: bool, where: str) -> dict:
    text, target = stated
    if value is None:
        status = "not measured: batch size not in this run"
    elif not on_h100:
        status = "not judged: this GPU is not an H100"
    else:
        status = "met" if value <= target else "missed"
    return {"goal": text, "target_s": target, "measured_s": value, "where": where, "status": status}


def print_report(measured: dict[str, list], ratio_rows: list[dict], goal_rows: list[dict], device: torch.device) -> None:
    print(f"device: {device_name(device)} ({device}); mlp 784-512-512-10, fp32, N = "
          f"{measured[BASELINE][0].n_examples:,}; plain = DataLoader + torch.optim.SGD")
    names = list(measured)
    header = f"{'B':>6}  " + "  ".join(f"{n + ' /update':>20}" for n in names)
    header += "  " + "  ".join(f"{n + ' ×':>14}" for n in names if n != BASELINE)
    print(header)
    speedup = {(r["series"], r["batch_size"]): r["speedup_per_update"] for r in ratio_rows}
    for i, point in enumerate(measured[BASELINE]):
        b = point.batch_size
        cells = [f"{format_seconds(measured[n][i].per_update_median_s):>20}" for n in names]
        cells += [f"{speedup[(n, b)]:>13.2f}×" for n in names if n != BASELINE]
        print(f"{b:>6}  " + "  ".join(cells))
    print("\ntime per epoch (* extrapolated from the time per update):")
    for i, point in enumerate(measured[BASELINE]):
        cells = [f"{n} {format_seconds(measured[n][i].per_epoch_s)}{'*' if measured[n][i].extrapolated else ''}"
                 for n in names]
        print(f"{point.batch_size:>6}  " + "   ".join(cells))
    print("intra-op threads per update (fixed per point, batchlab's rule): "
          + ", ".join(f"B={p.batch_size}: {p.threads}" for p in measured[BASELINE]))
    if any(p.synthetic_data for p in measured[BASELINE]):
        print("data: random examples of MNIST's shape (the dataset has fewer than N examples)")
    for name, points in measured.items():
        captures = [p.capture_s for p in points if p.capture_s is not None]
        if captures:
            print(f"{name}: capture (warm-up + graph capture) {format_seconds(min(captures))} – "
                  f"{format_seconds(max(captures))} per batch size, not in the update times")
    print("\ngoals:")
    for row in goal_rows:
        value = f" measured {format_seconds(row['measured_s'])} ({row['where']})" if row.get("measured_s") else ""
        print(f"  {row['goal']}: {row['status']}{value}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device) if args.device else default_device()
    if args.budget_s is None:
        args.budget_s = 2.0 if device.type == "cuda" else 1.0
    load_before = load_average()
    started = time.perf_counter()
    measured = measure_all(args, device)
    elapsed = time.perf_counter() - started
    ratio_rows = ratios(measured)
    goal_rows = goals(measured, device)
    print_report(measured, ratio_rows, goal_rows, device)
    load_after = load_average()
    busy = (busy_machine_note(load_before[0], load_after[0], os.cpu_count())
            if device.type == "cpu" and load_before and load_after else None)
    if busy:
        print(busy)

    result = {
        **result_header("timing_paths", device, load_before),
        "busy_machine": busy,
        "threads_per_batch_size": {str(p.batch_size): p.threads for p in measured[BASELINE]},
        "wall_time_s": elapsed,
        "workload": {
            "model": "mlp 784-512-512-10",
            "dtype": "float32",
            "dataset_shape_of": args.dataset,
            "n_examples": args.n_examples,
            "lr": TIMING_LR,
            "momentum": TIMING_MOMENTUM,
        },
        "settings": {"batch_sizes": args.batch_sizes, "repeats": args.repeats, "warmup": args.warmup,
                     "budget_s": args.budget_s},
        "series": {
            name: {"path": path, "optimizer": optimizer}
            for name, path, optimizer in SERIES if name in measured
        },
        "points": {name: [p.to_dict() for p in points] for name, points in measured.items()},
        "speedup_vs_plain": ratio_rows,
        "goals": goal_rows,
        "reference_h100_science_md": {k: {str(b): v for b, v in row.items()} for k, row in H100_REFERENCE.items()},
    }
    out = write_result(result, args.out, "timing", device)
    print(f"wrote {out} ({elapsed:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
