"""Time per CPU update with one and with two intra-op threads, against batch size.

Workload: the lecture's MLP (784-512-512-10, float32) and the lecture's momentum (λ = 0.9), one
update = batchlab's resident path (:mod:`batchlab.timing.paths`: gather a batch, forward,
cross-entropy, backward, momentum step) on N = 4,096 examples of MNIST's shape. For each batch
size B the two thread counts are timed in short bursts (``--burst-s`` each), interleaved — every
round visits every B and both counts, alternating which count goes first — so a change in the
machine's load touches both alike. A burst's time per update is its time / its updates; each
count keeps the median and the minimum over ``--rounds`` bursts. ``ratio`` is the two-thread time
over the one-thread time: above 1, one thread is faster.

The result is what :data:`batchlab.runtime.threads.ONE_THREAD_BELOW_BATCH` trades on: below it one
thread must be the better choice where it matters (a machine shared with other work), and the
quiet-machine cost of that choice is read off the ratios.
Writes ``benchmarks/results/threads-<device-slug>.json`` with
the device name, the thread counts, every burst and the load average before, during and after
(the 1-minute load average counts runnable threads; on a shared machine it says how much other
work competed).

Usage::

    PYTHONPATH=src python benchmarks/threads.py
    PYTHONPATH=src python benchmarks/threads.py --batch-sizes 1 16 256 --rounds 5 --burst-s 0.05
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from batchlab.runtime.device import device_name
from batchlab.runtime.threads import ONE_THREAD_BELOW_BATCH, PROCESS_THREADS, intra_op_threads, threads_for
from batchlab.timing import format_seconds
from batchlab.timing.clock import time_updates
from batchlab.timing.paths import build_path
from batchlab.timing.workload import make_timing_data

from common import load_average, result_header, write_result

BATCH_SIZES = (1, 4, 16, 64, 256, 1024)
N_EXAMPLES = 4096
ROUNDS = 7
BURST_S = 0.08


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument("--threads", type=int, nargs=2, default=[1, 2], metavar=("FEW", "MANY"),
                        help="the two thread counts compared (default 1 2)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--burst-s", type=float, default=BURST_S, help="seconds of one timed burst")
    parser.add_argument("--out", type=Path, default=None, help="result file (default: results/threads-<cpu>.json)")
    return parser.parse_args(argv)


def updates_per_burst(path, device: torch.device, burst_s: float) -> int:
    """Updates that fill about ``burst_s``, from a rough time of a few updates."""
    estimate = time_updates(path, 2, device) / 2
    return max(1, round(burst_s / max(estimate, 1e-6)))


def measure(args: argparse.Namespace) -> tuple[dict, list]:
    device = torch.device("cpu")
    data = make_timing_data("mnist-5k", max(N_EXAMPLES, max(args.batch_sizes)))
    paths = {b: build_path("resident", "mlp", data, b, device, lr=0.01, momentum=0.9) for b in args.batch_sizes}
    bursts: dict[int, dict[int, list[float]]] = {b: {t: [] for t in args.threads} for b in args.batch_sizes}
    sizes: dict[tuple[int, int], int] = {}
    loads = []
    for round_ in range(args.rounds):
        order = args.threads if round_ % 2 == 0 else args.threads[::-1]
        loads.append(load_average())
        for b, path in paths.items():
            for count in order:
                with intra_op_threads(count):
                    path.step()  # the first update after a change of thread count is not timed
                    if (b, count) not in sizes:
                        sizes[(b, count)] = updates_per_burst(path, device, args.burst_s)
                    k = sizes[(b, count)]
                    bursts[b][count].append(time_updates(path, k, device) / k)
        print(f"  round {round_ + 1}/{args.rounds} done (load {loads[-1][0]:.2f})", file=sys.stderr, flush=True)
    return bursts, loads


def summarize(bursts: dict, few: int, many: int) -> list[dict]:
    rows = []
    for b, by_count in bursts.items():
        row = {"batch_size": b, "rule_threads": threads_for(b, "cpu")}
        for count, times in by_count.items():
            row[f"threads_{count}"] = {"median_s": statistics.median(times), "min_s": min(times), "bursts_s": times}
        row["ratio_median"] = row[f"threads_{many}"]["median_s"] / row[f"threads_{few}"]["median_s"]
        row["ratio_min"] = row[f"threads_{many}"]["min_s"] / row[f"threads_{few}"]["min_s"]
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    few, many = args.threads
    device = torch.device("cpu")
    load_before = load_average()
    started = time.perf_counter()
    bursts, loads = measure(args)
    elapsed = time.perf_counter() - started
    load_after = load_average()
    rows = summarize(bursts, few, many)

    print(f"device: {device_name(device)}; mlp 784-512-512-10, momentum, resident batches; "
          f"median (min) per update over {args.rounds} interleaved bursts")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
          f"(1 min; {', '.join(f'{l[0]:.2f}' for l in loads)} at each round)")
    print(f"{'B':>6}  {f'{few} thread':>22}  {f'{many} threads':>22}  {f'{many}/{few} median':>12}  "
          f"{'min':>6}  rule")
    for row in rows:
        cells = [f"{format_seconds(row[f'threads_{c}']['median_s'])} ({format_seconds(row[f'threads_{c}']['min_s'])})"
                 for c in (few, many)]
        print(f"{row['batch_size']:>6}  {cells[0]:>22}  {cells[1]:>22}  {row['ratio_median']:>11.2f}×  "
              f"{row['ratio_min']:>5.2f}×  {row['rule_threads']}")
    print(f"rule: one thread below B = {ONE_THREAD_BELOW_BATCH}, else {PROCESS_THREADS} (the process's count)")

    result = {
        **result_header("threads", device, load_before),
        "threads_compared": [few, many],
        "process_threads": PROCESS_THREADS,
        "rule": {"one_thread_below_batch": ONE_THREAD_BELOW_BATCH},
        "load_average_per_round": loads,
        "wall_time_s": elapsed,
        "workload": {"model": "mlp 784-512-512-10", "dtype": "float32", "path": "resident",
                     "optimizer": "momentum", "momentum": 0.9, "n_examples": max(N_EXAMPLES, max(args.batch_sizes))},
        "settings": {"batch_sizes": args.batch_sizes, "rounds": args.rounds, "burst_s": args.burst_s},
        "rows": rows,
    }
    out = write_result(result, args.out, "threads", device)
    print(f"wrote {out} ({elapsed:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
