"""Throughput of a hyperparameter sweep: plain PyTorch vs batchlab one at a time vs batchlab packed.

On one grid — K configurations of learning rate × λ × seed of an MLP on mnist-5k (the lecture's
784-512-512-10, and on a CPU also a narrow 784-64-10, where packing has a chance to pay), for
each batch size B — three ways of training every configuration for a fixed number of updates
are timed in one process:

(a) ``plain``: the loop everyone writes — a ``DataLoader`` over a ``TensorDataset`` (shuffled),
    ``torch.optim.SGD(momentum=λ)``, batches copied to the device, one model after the other;
(b) ``single``: ``batchlab.train`` for each configuration, one after the other;
(b') ``single_store``: the same with a run store (a new one for each measurement, so nothing is
    reused): what a user's sweep always does — per-epoch metrics, checkpoints, final weights;
(c) ``packed``: ``batchlab.training.packed.train_pack`` of all K (strategy ``auto``: on CUDA one
    stacked step, captured in a CUDA graph; elsewhere the pack decides on its first updates by
    the rule of ``batchlab.training.packed_plan``: a traffic bound at the measured copy bandwidth
    may rule packing out at once, else a few real packed steps are compared with a few updates of
    one run alone). Which way each pack went, why, and the numbers it decided on are recorded
    in the result (``plan`` of each repeat) and printed;
(d) ``packed_forced`` (not on CUDA, where (c) is always packed): ``train_pack`` with strategy
    ``packed``, the other option (c) chooses from, so (c) can be rated against the better of
    its two options, (b) and (d): by their fastest repeats, and by the median over repeats of the
    ratio within one repeat (the machine's speed drifts between repeats, less within one).

All three do the same work per run: the updates, an evaluation of the training and validation
splits after every epoch, and of the test split at the end (batchlab records these; the plain
loop does them the plain way). The figure of merit is model-updates per second of wall-clock
time for the whole sweep (setup and evaluation included); the median time of the update step
alone is reported beside it for (b) and (c). A model-update is one optimizer step of one run.
For batchlab's methods the sweep's time is also split in two: the update rate (model-updates
per second of the epochs' own wall time, ``train_time_s`` in each run's summary) and the per-run
overhead (everything else — setup, evaluation, store, checkpoints, weights — divided by the
number of runs), so a gap to the plain loop can be traced to one or the other. The plain loop's
update rate is taken the same way, from the wall time of its batches alone (its evaluations left
out).
Each method is measured ``--repeats`` times in alternating order (a b' b c d, d c b b' a, …; (c)
next to both of its options (b) and (d) both ways), with more rounds while some method's repeats
add up to less than ``--min-seconds``, and rated by its fastest repeat: on a shared machine, load
from other processes only ever adds time, and a sweep of a second needs more tries than one of
ten to catch a quiet moment. Then, where (c) chooses, rounds of (c) and its options alone go on
until each has ``--choice-seconds`` of repeats and at least ``--choice-min-repeats`` of them (an
option already ``OUT_OF_REACH`` times slower than the other left out): (c) is rated against them at a few
percent, and on a shared virtual machine the fastest of half of one method's repeats can stand
10-20 % from the fastest of the other half; a row of 8 s sweeps gets only 12 repeats in 100 s.
That noise is reported for every method (``fastest_of_half``: 5th-95th percentile of the ratio
over random halvings), with a bootstrap interval for (c) against the better option.
On CUDA, (a) and (b) train only the first ``--baseline-runs`` configurations (a rate per
model-update does not depend on how many runs are timed), to keep the benchmark short.

Distance to the memory-traffic limit. One model-update of a model with P parameters must at
least read the weights in the forward and the backward pass, write the gradients, read them in the
update, read and write the momentum and read and write the weights: 8 passes over P fp32 numbers,
32·P bytes (21.4 MB for the lecture's 784-512-512-10; activations, ~B·1,000 numbers, are left
out). The device's memory bandwidth is measured with a large ``torch`` copy (read + write of 2 ×
256 MiB on the CPU, 2 × 1 GiB on a GPU, fastest of five, under the process's thread count), once
after the warm-up and again before every row and at the end, since on a shared or virtual machine
one reading can be far from the next; the bound is taken at the highest reading of the run, so a
share of it is never flattered by a slow reading. bandwidth / (32·P) is the rate no method can
beat once the state does not fit in cache, and each method's rate is reported as a percentage of
it, for the whole sweep (evaluation included, which is arithmetic, not traffic) and for its update
rate (what the bound is about). A small model whose state stays in cache can exceed 100%, and so can an update
that needs fewer passes: batchlab's single-run update of a plain Linear/ReLU MLP writes the
momentum straight from the backward pass (``batchlab.training.fused_mlp``), and its kernels make 6
passes over a weight matrix (7 where the layer's input gradient is needed), where the ordinary
update's kernels make 10 (11) and the bound assumes 8.

Writes ``benchmarks/results/sweep-throughput-<device-slug>.json`` with the device, environment,
machine load, every measurement, the bandwidth bound and the ratios (c)/(a), (c)/(b), (b)/(a).

Usage::

    PYTHONPATH=src python benchmarks/sweep_throughput.py                 # CPU or the first GPU
    PYTHONPATH=src python benchmarks/sweep_throughput.py --device cpu --batch-sizes 1 16 128
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import batchlab
from batchlab import data as datasets
from batchlab.config import RunConfig
from batchlab.runtime.bandwidth import copy_seconds
from batchlab.runtime.device import device_name, resolve_device, synchronize
from batchlab.training.packed import train_pack

from common import load_average, result_header, write_result

DATASET = "mnist-5k"
DEFAULT_WIDTHS = {"cpu": ["512,512", "64"], "cuda": ["512,512"]}
LEARNING_RATES = (0.005, 0.01)
MOMENTA = (0.0, 0.5, 0.8, 0.9)
# Updates per run, by device type and batch size: long enough that each run's training outweighs
# its evaluation and that (c) finds the sweep long enough to measure whether packing pays (see
# batchlab.training.packed_plan), short enough for the whole benchmark to take a few minutes.
DEFAULT_UPDATES = {"cpu": {1: 300, 16: 150, 128: 100}, "cuda": {1: 3000, 16: 2000, 128: 1000}}
DEFAULT_RUNS = {"cpu": 16, "cuda": 64}
DEFAULT_BASELINE_RUNS = {"cpu": 16, "cuda": 8}
EVAL_BATCH = 2048
# fp32 passes over the parameters that one model-update cannot avoid (module docstring).
PASSES_PER_UPDATE = 8
BYTES_PER_NUMBER = 4
COPY_BYTES = {"cpu": 256 * 2**20, "cuda": 2**30}
COPY_REPEATS = 5


def sweep_configs(
    runs: int, hidden: tuple[int, ...], batch_size: int, updates: int, n_train: int, device: str
) -> list[RunConfig]:
    """``runs`` configurations: learning rate × λ × seed, in that order of variation."""
    per_seed = len(LEARNING_RATES) * len(MOMENTA)
    epochs = math.ceil(updates / math.ceil(n_train / batch_size))
    configs = [
        RunConfig(dataset=DATASET, model="mlp", hidden=hidden, optimizer="momentum", batch_size=batch_size,
                  lr=lr, momentum=momentum, seed=seed, epochs=epochs, max_updates=updates, device=device)
        for seed in range(math.ceil(runs / per_seed))
        for lr in LEARNING_RATES
        for momentum in MOMENTA
    ]
    return configs[:runs]


# ----------------------------------------------------------------------------- (a) plain PyTorch


def plain_mlp(input_features: int, hidden: tuple[int, ...], num_classes: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(input_features, width), nn.ReLU()]
        input_features = width
    layers.append(nn.Linear(input_features, num_classes))
    return nn.Sequential(*layers)


@torch.no_grad()
def plain_evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> tuple[float, float]:
    model.eval()
    loss, correct = 0.0, 0
    for xb, yb in DataLoader(TensorDataset(x, y), batch_size=EVAL_BATCH):
        xb, yb = xb.to(device), yb.to(device)
        logits = model(xb)
        loss += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    model.train()
    return loss / len(y), correct / len(y)


def train_plain(config: RunConfig, splits: datasets.Splits, device: torch.device) -> tuple[int, float]:
    """The ordinary PyTorch loop for one configuration; returns the number of updates made and the
    wall seconds of its batches (the loop over the loader, evaluations left out)."""
    torch.manual_seed(config.seed)
    model = plain_mlp(math.prod(splits.input_shape), config.hidden, splits.num_classes).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    loader = DataLoader(TensorDataset(splits.train.x, splits.train.y), batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(config.seed))
    updates, training_s = 0, 0.0
    while updates < config.max_updates:
        synchronize(device)
        start = time.perf_counter()
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            updates += 1
            if updates >= config.max_updates:
                break
        synchronize(device)
        training_s += time.perf_counter() - start
        plain_evaluate(model, splits.train.x, splits.train.y, device)
        plain_evaluate(model, splits.val.x, splits.val.y, device)
    plain_evaluate(model, splits.test.x, splits.test.y, device)
    return updates, training_s


# ----------------------------------------------------------------------------- timing


def timed(device: torch.device, work) -> tuple[float, object]:
    synchronize(device)
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # per-epoch log lines of K runs
        outcome = work()
    synchronize(device)
    return time.perf_counter() - start, outcome


def measure_plain(configs, cpu_splits, splits, device) -> dict:
    seconds, done = timed(device, lambda: [train_plain(c, cpu_splits, device) for c in configs])
    updates, training_s = sum(u for u, _ in done), sum(t for _, t in done)
    return {"model_updates": updates, "seconds": seconds, "update_rate_per_s": updates / training_s,
            "overhead_per_run_s": (seconds - training_s) / len(configs)}


def measure_single(configs, cpu_splits, splits, device) -> dict:
    seconds, results = timed(device, lambda: [batchlab.train(c, splits=splits, progress=False) for c in configs])
    return _batchlab_measurement(results, seconds)


def measure_single_store(configs, cpu_splits, splits, device) -> dict:
    with tempfile.TemporaryDirectory(prefix="batchlab-bench-") as folder:
        store = Path(folder) / "runs.db"
        seconds, results = timed(device, lambda: [batchlab.train(c, splits=splits, progress=False, store=store)
                                                  for c in configs])
    return _batchlab_measurement(results, seconds)


def measure_packed(configs, cpu_splits, splits, device, strategy: str = "auto") -> dict:
    seconds, results = timed(device, lambda: train_pack(configs, splits=splits, progress=False, strategy=strategy))
    measurement = _batchlab_measurement(results, seconds)
    measurement["plan"] = [
        {"runs": len(p.configs), "strategy": p.strategy, "reason": p.reason,
         "evidence": p.evidence.to_dict() if p.evidence is not None else None}
        for p in results.plan
    ]
    return measurement


def _batchlab_measurement(results, seconds: float) -> dict:
    step_times = [r.summary["time_per_update_s"] for r in results if r.summary.get("time_per_update_s")]
    updates = sum(r.summary["updates"] for r in results)
    # A packed run's train_time_s is its share of the pack's epochs, so the sum is the sweep's.
    training_s = sum(r.summary.get("train_time_s") or 0.0 for r in results)
    return {
        "model_updates": updates,
        "seconds": seconds,
        "median_time_per_update_s": statistics.median(step_times) if step_times else None,
        "update_rate_per_s": updates / training_s if training_s else None,
        "overhead_per_run_s": (seconds - training_s) / len(results) if results else None,
        "statuses": sorted({str(r.status) for r in results}),
    }


def measure_packed_forced(configs, cpu_splits, splits, device) -> dict:
    return measure_packed(configs, cpu_splits, splits, device, strategy="packed")


# In measuring order: (c) between its two options (b) and (d), so a drift of the machine's speed
# between the automatic choice and either option it is rated against is as small as it can be.
METHODS = {"plain": measure_plain, "single_store": measure_single_store, "single": measure_single,
           "packed": measure_packed, "packed_forced": measure_packed_forced}
CHOICE_OPTIONS = ("single", "packed_forced")
# An option of (c) whose fastest repeat is this many times slower than the other option's is left
# out of the extra rounds of measure_all. The fastest of 5-12 repeats stood at most 10-15 % from
# that of as many others on a 2-core virtual machine (fastest_of_half of the lecture MLP at B = 128).
OUT_OF_REACH = 1.15
# Random halvings / resamplings behind the noise intervals, and their seed.
NOISE_DRAWS = 2000
NOISE_SEED = 0
LETTERS = {"plain": "a", "single": "b", "single_store": "b'", "packed": "c", "packed_forced": "d"}


def methods_for(device: torch.device) -> list[str]:
    """(d) only where (c) chooses: on CUDA the pack is always packed."""
    return [name for name in METHODS if not (name == "packed_forced" and device.type == "cuda")]


def measure_all(configs, baseline_runs: int, repeats: int, cpu_splits, splits, device, *,
                min_seconds: float = 0.0, max_repeats: int | None = None,
                choice_seconds: float = 0.0, choice_min_repeats: int = 0,
                choice_max_repeats: int | None = None) -> dict[str, dict]:
    """Each method at least ``repeats`` times, in the order a b' b c d, then d c b b' a, and so on,
    so a slow drift of the machine's load favours none; rounds go on (up to ``max_repeats``) until
    every method's repeats add up to ``min_seconds``, so a short row gets as many chances of a
    quiet moment as a long one (timeit's autorange, by total time). Then, where (c) chooses, more
    rounds of (c) and its options alone (b c d, d c b, …; up to ``choice_max_repeats`` rounds in
    all) until each has ``choice_seconds`` of repeats and ``choice_min_repeats`` of them (a row of
    long sweeps would otherwise get few): the fastest of a few repeats of one method
    can differ by 10-20 % from the fastest of a few others on a shared virtual machine
    (:func:`split_half_interval`), far more than the 3 % the choice is rated at. An option whose
    fastest repeat is already :data:`OUT_OF_REACH` times slower than the other's is left out of
    those rounds: more repeats will not make it the better one. The rate of a method is taken
    from its fastest repeat (load from other processes only ever adds time); the median is
    reported beside it. Each repeat records its ``round``, so the methods of one round can be
    compared with each other."""
    names = methods_for(device)
    repeats_by_method: dict[str, list[dict]] = {name: [] for name in names}
    limit = max(repeats, max_repeats or repeats)

    def seconds_of(name: str) -> float:
        return sum(m["seconds"] for m in repeats_by_method[name])

    def measure_round(round_index: int, in_round: list[str]) -> None:
        for name in in_round if round_index % 2 == 0 else list(reversed(in_round)):
            runs = configs if name.startswith("packed") else configs[:baseline_runs]
            repeats_by_method[name].append({**METHODS[name](runs, cpu_splits, splits, device), "round": round_index})

    rounds = 0
    while rounds < repeats or (rounds < limit and any(seconds_of(name) < min_seconds for name in names)):
        measure_round(rounds, names)
        rounds += 1
    if "packed_forced" in names:
        choice_limit = max(rounds, choice_max_repeats or rounds)
        while rounds < choice_limit:
            contenders = choice_contenders(names, repeats_by_method)
            if all(seconds_of(name) >= choice_seconds and len(repeats_by_method[name]) >= choice_min_repeats
                   for name in contenders):
                break
            measure_round(rounds, contenders)
            rounds += 1
    summary = {}
    for name, measurements in repeats_by_method.items():
        fastest = max(measurements, key=rate_of)
        rates = [rate_of(m) for m in measurements]
        summary[name] = {
            "runs": len(configs) if name.startswith("packed") else min(baseline_runs, len(configs)),
            "updates_per_s": rate_of(fastest),
            "updates_per_s_median": statistics.median(rates),
            "fastest": fastest,
            "repeats": measurements,
            "fastest_of_half": split_half_interval(rates),
        }
    return summary


def rate_of(measurement: dict) -> float:
    return measurement["model_updates"] / measurement["seconds"]


def choice_contenders(names: list[str], repeats_by_method: dict[str, list[dict]]) -> list[str]:
    """Of ``names`` (in measuring order), (c) and those of its options (b), (d) whose fastest
    repeat so far is within :data:`OUT_OF_REACH` of the other's."""
    fastest = {name: max(rate_of(m) for m in repeats_by_method[name]) for name in CHOICE_OPTIONS}
    best = max(fastest.values())
    return [name for name in names
            if name == "packed" or (name in fastest and fastest[name] * OUT_OF_REACH >= best)]


def split_half_interval(rates: list[float], draws: int = NOISE_DRAWS) -> list[float] | None:
    """How far the fastest of half of one method's repeats falls from the fastest of the other
    half: the 5th and 95th percentiles, over ``draws`` random halvings (seeded), of the ratio of
    the two halves' fastest rates. Two halves of the same method differ only by the machine's
    noise, so a ratio of two methods' fastest repeats inside this interval is not told apart from
    equal at half the repeats. None with fewer than four repeats."""
    if len(rates) < 4:
        return None
    generator = random.Random(NOISE_SEED)
    half = len(rates) // 2
    ratios = []
    for _ in range(draws):
        shuffled = generator.sample(rates, len(rates))
        ratios.append(max(shuffled[:half]) / max(shuffled[half:2 * half]))
    return percentiles(ratios)


def bootstrap_choice_interval(row: dict, draws: int = NOISE_DRAWS) -> list[float]:
    """5th and 95th percentiles of (c)'s fastest rate over the better option's, each method's
    repeats resampled with replacement (seeded): a rough interval for the ratio of fastest
    repeats (a bootstrap of a maximum can only pick observed repeats, so it is coarse where
    one repeat stands far out)."""
    generator = random.Random(NOISE_SEED)
    rates = {name: [rate_of(m) for m in row[name]["repeats"]] for name in ("packed", *CHOICE_OPTIONS)}

    def fastest(name: str) -> float:
        return max(generator.choices(rates[name], k=len(rates[name])))

    return percentiles([fastest("packed") / max(fastest(name) for name in CHOICE_OPTIONS) for _ in range(draws)])


def percentiles(values: list[float]) -> list[float]:
    """The 5th and 95th percentiles of ``values`` (linear interpolation between order statistics)."""
    cuts = statistics.quantiles(values, n=20, method="inclusive")
    return [cuts[0], cuts[-1]]


def warm_up(splits, cpu_splits, device) -> None:
    """One tiny sweep of each kind first, so thread pools, allocators and CUDA contexts are ready."""
    configs = sweep_configs(2, (64,), 16, 5, len(splits.train), device.type)
    for config in configs:
        train_plain(config, cpu_splits, device)
    with contextlib.redirect_stderr(io.StringIO()):
        batchlab.train(configs[0], splits=splits, progress=False)
        train_pack(configs, splits=splits, progress=False, strategy="packed")


def model_name(hidden: tuple[int, ...]) -> str:
    return f"mlp {'-'.join(map(str, (784, *hidden, 10)))}"


def measure_bandwidth(device: torch.device, nbytes: int, when: str) -> dict:
    """One reading of the memory bandwidth in bytes/s: the fastest of ``COPY_REPEATS`` copies of
    ``nbytes`` (a copy reads and writes, 2 × ``nbytes`` of traffic); ``when`` names the moment."""
    seconds = copy_seconds(nbytes, device, COPY_REPEATS)
    return {"when": when, "bytes_per_s": 2 * nbytes / min(seconds), "copy_seconds": seconds}


def bandwidth_summary(readings: list[dict], nbytes: int) -> dict:
    """Every reading, and the highest: the bandwidth the bound is taken at."""
    rates = [reading["bytes_per_s"] for reading in readings]
    return {"bytes_per_s": max(rates), "lowest_bytes_per_s": min(rates), "median_bytes_per_s": statistics.median(rates),
            "copy_bytes": nbytes, "threads": torch.get_num_threads(), "readings": readings}


def bytes_per_model_update(parameters: int) -> int:
    """The least memory traffic of one model-update: ``PASSES_PER_UPDATE`` fp32 passes over P."""
    return PASSES_PER_UPDATE * BYTES_PER_NUMBER * parameters


def parameter_count(hidden: tuple[int, ...], input_features: int, num_classes: int) -> int:
    return sum(p.numel() for p in plain_mlp(input_features, hidden, num_classes).parameters())


def bandwidth_shares(row: dict, bandwidth: float, parameters: int) -> dict:
    """Each method's model-updates per second as a share of the bandwidth-bound rate: for the
    whole sweep (``share``) and for its update rate alone (``update_rate_share``)."""
    bound = bandwidth / bytes_per_model_update(parameters)
    names = [name for name in METHODS if name in row]
    return {"parameters": parameters, "bytes_per_model_update": bytes_per_model_update(parameters),
            "bandwidth_bytes_per_s": bandwidth, "bound_updates_per_s": bound,
            "share": {name: row[name]["updates_per_s"] / bound for name in names},
            "update_rate_share": {name: row[name]["fastest"]["update_rate_per_s"] / bound for name in names}}


def auto_against_options(row: dict) -> dict | None:
    """(c) against the better of its two options, (b) one at a time and (d) packed: the ratio of
    their fastest repeats, which option was better, and a rough 90 % interval of that ratio
    (:func:`bootstrap_choice_interval`); and, since the machine's speed drifts between repeats,
    the same ratio within each round ((c) against the better of the options measured in that
    round) and its median. None on CUDA, where there is no choice."""
    if "packed_forced" not in row:
        return None
    better = max(CHOICE_OPTIONS, key=lambda name: row[name]["updates_per_s"])
    by_round = {name: {m["round"]: m for m in row[name]["repeats"]} for name in CHOICE_OPTIONS}
    paired = [rate_of(auto) / max(rate_of(by_round[name][auto["round"]]) for name in CHOICE_OPTIONS
                                  if auto["round"] in by_round[name])
              for auto in row["packed"]["repeats"]]
    return {"better_option": better, "ratio": row["packed"]["updates_per_s"] / row[better]["updates_per_s"],
            "ratio_interval_90": bootstrap_choice_interval(row),
            "ratio_per_repeat": paired, "ratio_per_repeat_median": statistics.median(paired)}


def print_row(row: dict) -> None:
    ratios = row["ratios"]
    rate = {name: row[name]["updates_per_s"] for name in METHODS if name in row}
    print(f"{row['model']:<18} B={row['batch_size']:<4} model-updates/s: (a) plain {rate['plain']:8.1f}  "
          f"(b) single {rate['single']:8.1f}  (c) packed {rate['packed']:8.1f}   "
          f"(c)/(a) {ratios['packed_vs_plain']:6.2f}  (c)/(b) {ratios['packed_vs_single']:5.2f}  "
          f"(b)/(a) {ratios['single_vs_plain']:5.2f}  (b')/(a) {ratios['single_store_vs_plain']:5.2f}", flush=True)
    for name in rate:
        fastest, spread = row[name]["fastest"], row[name]["fastest_of_half"]
        noise = f", fastest of half its repeats / of the other half {spread[0]:.2f}-{spread[1]:.2f}" if spread else ""
        print(f"    ({LETTERS[name]}) {name}: {rate[name]:8.1f} model-updates/s for the sweep, update rate "
              f"{fastest['update_rate_per_s']:8.1f}, per-run overhead {fastest['overhead_per_run_s'] * 1e3:7.1f} ms "
              f"({len(row[name]['repeats'])} repeats{noise})", flush=True)
    if row["auto_choice"] is not None:
        choice = row["auto_choice"]
        low, high = choice["ratio_interval_90"]
        print(f"    (c) against the better of its options, ({LETTERS[choice['better_option']]}) "
              f"{choice['better_option']}: {choice['ratio']:.3f} (bootstrap 90 %: {low:.3f}-{high:.3f}); within each "
              f"round, against the better option measured in it: median {choice['ratio_per_repeat_median']:.3f}",
              flush=True)
    strategies = [pack["strategy"] for repeat in row["packed"]["repeats"] for pack in repeat["plan"]]
    print(f"    (c) chose: {', '.join(f'{way} {strategies.count(way)}' for way in sorted(set(strategies)))}; "
          f"in its fastest repeat: {'; '.join(pack['reason'] for pack in row['packed']['fastest']['plan'])}",
          flush=True)


def print_bound(row: dict) -> None:
    bound = row["bandwidth_bound"]
    print(f"{row['model']:<18} B={row['batch_size']:<4} bandwidth bound {bound['bound_updates_per_s']:8.1f} "
          f"model-updates/s ({bound['bytes_per_model_update'] / 1e6:.1f} MB each); sweep / update rate: "
          + ", ".join(f"({LETTERS[name]}) {bound['share'][name]:.0%} / {bound['update_rate_share'][name]:.0%}"
                      for name in bound["share"]), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 128])
    parser.add_argument("--repeats", type=int, default=5, help="measurements of each method (default: 5; repeats on a "
                        "shared virtual machine can differ by tens of percent, so the fastest of few is "
                        "itself noisy)")
    parser.add_argument("--min-seconds", type=float, default=40.0,
                        help="more rounds (up to --max-repeats) until each method's repeats add up to this "
                        "many seconds (default: 40; a row of a second gets ~40 chances at a quiet moment)")
    parser.add_argument("--max-repeats", type=int, default=40,
                        help="cap on the rounds --min-seconds adds (default: 40)")
    parser.add_argument("--choice-seconds", type=float, default=100.0,
                        help="then more rounds of (c) and its options alone until each has this many "
                        "seconds of repeats (default: 100), since (c) is rated at a few percent")
    parser.add_argument("--choice-min-repeats", type=int, default=24,
                        help="and until each has at least this many repeats (default: 24)")
    parser.add_argument("--choice-max-repeats", type=int, default=120,
                        help="cap on all rounds of a row, those --choice-seconds adds included (default: 120)")
    parser.add_argument("--widths", nargs="+", help="hidden widths of each MLP, e.g. 512,512 64 "
                        "(default: 512,512 and 64 on CPU, 512,512 on CUDA)")
    parser.add_argument("--runs", type=int, help="K configurations (default: 16 on CPU, 64 on CUDA)")
    parser.add_argument("--updates", type=int, help="updates per run (default: by device and batch size)")
    parser.add_argument("--baseline-runs", type=int, help="runs timed for (a) and (b) (default: all on CPU, 8 on CUDA)")
    parser.add_argument("--out", type=Path, help="result file (default: benchmarks/results/sweep-throughput-<device>.json)")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    kind = "cuda" if device.type == "cuda" else "cpu"
    runs = args.runs or DEFAULT_RUNS[kind]
    baseline_runs = min(runs, args.baseline_runs or DEFAULT_BASELINE_RUNS[kind])
    cpu_splits = datasets.prepare_splits(DATASET, device="cpu")
    splits = cpu_splits.to(device)
    n_train = len(splits.train)
    widths = [tuple(int(w) for w in spec.split(",")) for spec in (args.widths or DEFAULT_WIDTHS[kind])]
    load_before = load_average()
    print(f"device: {device_name(device)}; K = {runs} runs on {DATASET}; (a) and (b) time {baseline_runs} of them",
          flush=True)
    warm_up(splits, cpu_splits, device)
    copy_bytes = COPY_BYTES[kind]
    readings = [measure_bandwidth(device, copy_bytes, "after the warm-up")]
    print(f"memory bandwidth (torch copy of {copy_bytes / 2**20:.0f} MiB, fastest of {COPY_REPEATS}): "
          f"{readings[0]['bytes_per_s'] / 1e9:.1f} GB/s; read again before every row", flush=True)

    measured_rows = []
    for hidden in widths:
        model = model_name(hidden)
        for batch_size in args.batch_sizes:
            readings.append(measure_bandwidth(device, copy_bytes, f"before {model} B={batch_size}"))
            updates = args.updates or DEFAULT_UPDATES[kind].get(batch_size, 100)
            configs = sweep_configs(runs, hidden, batch_size, updates, n_train, device.type)
            measured = measure_all(configs, baseline_runs, args.repeats, cpu_splits, splits, device,
                                   min_seconds=args.min_seconds, max_repeats=args.max_repeats,
                                   choice_seconds=args.choice_seconds, choice_min_repeats=args.choice_min_repeats,
                                   choice_max_repeats=args.choice_max_repeats)
            row = {"model": model, "hidden": hidden, "batch_size": batch_size, "updates_per_run": updates, **measured}
            row["ratios"] = {
                "packed_vs_plain": row["packed"]["updates_per_s"] / row["plain"]["updates_per_s"],
                "packed_vs_single": row["packed"]["updates_per_s"] / row["single"]["updates_per_s"],
                "single_vs_plain": row["single"]["updates_per_s"] / row["plain"]["updates_per_s"],
                "single_store_vs_plain": row["single_store"]["updates_per_s"] / row["plain"]["updates_per_s"],
            }
            row["auto_choice"] = auto_against_options(row)
            print_row(row)
            measured_rows.append(row)
    readings.append(measure_bandwidth(device, copy_bytes, "at the end"))
    bandwidth = bandwidth_summary(readings, copy_bytes)
    listed = ", ".join(f"{reading['bytes_per_s'] / 1e9:.1f}" for reading in readings)
    print(f"memory bandwidth readings: {listed} GB/s; "
          f"the bound is taken at the highest, {bandwidth['bytes_per_s'] / 1e9:.1f} GB/s", flush=True)
    rows = []
    for row in measured_rows:
        hidden = row.pop("hidden")
        row["bandwidth_bound"] = bandwidth_shares(
            row, bandwidth["bytes_per_s"], parameter_count(hidden, math.prod(splits.input_shape), splits.num_classes))
        print_bound(row)
        rows.append(row)

    result = {
        **result_header("sweep-throughput", device, load_before),
        "memory_bandwidth": bandwidth,
        "dataset": DATASET,
        "models": [model_name(hidden) for hidden in widths],
        "runs": runs,
        "baseline_runs": baseline_runs,
        "repeats": {"at_least": args.repeats, "until_seconds_per_method": args.min_seconds,
                    "choice_until_seconds": args.choice_seconds,
                    "choice_at_least": args.choice_min_repeats, "choice_at_most": args.choice_max_repeats,
                    "at_most": max(args.repeats, args.max_repeats)},
        "grid": {"lr": LEARNING_RATES, "momentum": MOMENTA, "seeds": math.ceil(runs / (len(LEARNING_RATES) * len(MOMENTA)))},
        "work_per_run": "the updates, train+val evaluation after every epoch, test evaluation at the end",
        "results": rows,
    }
    out = write_result(result, args.out, "sweep-throughput", device)
    print(f"wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
