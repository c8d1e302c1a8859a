"""Measurements beside the steps to a target: the simple noise scale along a training run, the
time of one update per batch size, and (on a GPU) the largest batch that fits in memory.

* :func:`noise_over_training`: McCandlish et al. 2018's simple noise scale
  B_simple = tr(Σ)/|G|² at the start (the initial weights), the middle (S/2) and the end (S) of
  one run, measured by :func:`batchlab.analysis.noise.measure_noise` (|G|² from the full training
  gradient, tr Σ from per-example gradients on a seeded subset; the two-batch estimate beside it);
* :func:`time_updates`: the time per update of batchlab's single-run trainer step (data resident
  on the device) at each B, by the timing harness's rules, with repeats interleaved across batch
  sizes in rounds and the median's interval (:func:`median_interval`), so the ranking by time
  can say how sure it is (:mod:`batchlab.experiments.advise.choose`);
* :func:`largest_fitting_batch`: PyTorch Lightning's ``Tuner.scale_batch_size`` in its
  ``power`` mode — start at B = 1 and double until a training step (forward, backward, optimizer
  step on a batch of the data's shape) runs out of device memory; the last B that ran is the
  answer. CUDA only: elsewhere memory is the host's and the search is skipped.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from batchlab.experiments.advise.target import Target
from batchlab.experiments.advise.trace import train_to_target
from batchlab.analysis.noise import measure_noise
from batchlab.config import RunConfig
from batchlab.models.registry import build_model

if TYPE_CHECKING:
    from batchlab.task import Task

# Lightning's default max_trials: at most 25 doublings (B up to 2^25).
MAX_DOUBLINGS = 25


def noise_over_training(config: RunConfig, splits: Any, target: Target, steps: int, *, device: torch.device,
                        ratio: float, small_batch: int, large_batch: int, n_batches: int,
                        trace_examples: int, task: "Task | None" = None) -> list[dict[str, Any]]:
    """B_simple at updates 0, S/2 and S of ``config``'s run (which reached the target in S steps);
    ``task``: a user's model (with cross-entropy) instead of the registry's."""
    from batchlab.training.loop import initial_model_and_optimizer

    points = sorted({0, steps // 2, steps})
    outcome = train_to_target([config], splits, target, max(steps, 1), ratio=ratio, device=device,
                              snapshot_at=points, stop_at_target=False,
                              initializer=lambda c, s, d: initial_model_and_optimizer(c, s, d, task))[0]
    rows = []
    for label, update in zip(("start", "middle", "end") if len(points) == 3 else ("start", "end"), points):
        state = outcome.snapshots.get(update)
        if state is None:
            continue
        model = _new_model(config, splits.input_shape, splits.num_classes, task).to(device)
        model.load_state_dict(state)
        report = measure_noise(model, splits.train.x, splits.train.y, [small_batch, large_batch],
                               n_batches=n_batches, seed=config.seed, scan_batches=0, trace_examples=trace_examples)
        scale = report.scale
        rows.append({
            "when": label,
            "update": update,
            "b_simple": None if scale is None else scale.exact_b_simple,
            "two_batch_b_simple": None if scale is None else scale.two_batch_b_simple,
            "grad_sq": None if scale is None else scale.exact_grad_sq,
            "trace": None if scale is None else scale.exact_trace,
            "train_loss": report.full_loss,
        })
    return rows


# Rounds of interleaved repeats: each round times every batch size once.
TIME_ROUNDS = 5
# The interval of a median time (distribution-free, :func:`median_interval`) covers the true
# median with at least this probability.
TIME_CONFIDENCE = 0.9

# Seconds per update of one repeat at a batch size: the real clock, or a fake one in tests.
UpdateTimer = Callable[[int], float]


def median_interval(samples: Sequence[float], confidence: float = TIME_CONFIDENCE) -> tuple[float, float]:
    """A distribution-free interval for the median of ``samples``: the k-th smallest and k-th
    largest value, k the largest with P(the interval misses the median) = 2·P(Bin(n, ½) ≤ k − 1)
    ≤ 1 − ``confidence`` (the binomial sign-test interval; k = 1, the range, when no k does).
    Five samples give the range, which covers the median with probability 1 − 2·2⁻⁵ ≈ 94 %."""
    ordered = sorted(samples)
    n = len(ordered)
    k = 1
    while k + 1 <= n // 2 and 2 * _binomial_cdf(k, n) <= 1 - confidence:
        k += 1
    return ordered[k - 1], ordered[n - k]


def _binomial_cdf(k: int, n: int) -> float:
    """P(Bin(n, ½) ≤ k)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n


def interleaved_times(batch_sizes: Sequence[int], timer: UpdateTimer, rounds: int) -> dict[int, list[float]]:
    """``rounds`` repeats per batch size, taken in rounds (each round times every B once, starting
    one B further on each round), so load that comes and goes falls on every B alike."""
    samples: dict[int, list[float]] = {b: [] for b in batch_sizes}
    order = list(batch_sizes)
    for round_index in range(rounds):
        start = round_index % max(len(order), 1)
        for size in order[start:] + order[:start]:
            samples[size].append(float(timer(size)))
    return samples


def time_updates(template: RunConfig, batch_sizes: Sequence[int], momenta: dict[int, float], n_train: int, *,
                 device: torch.device, budget_s: float, rounds: int = TIME_ROUNDS, task: "Task | None" = None,
                 timer: UpdateTimer | None = None, load: Callable[[], float | None] | None = None,
                 cpu_count: int | None = None) -> dict[str, Any]:
    """Seconds per update of batchlab's resident trainer step at each B, with their spread.

    Every B is prepared first (model built, warmed up, block size chosen within ``budget_s``,
    :func:`batchlab.timing.harness.prepare_point`), then ``rounds`` repeats are taken interleaved
    (:func:`interleaved_times`). Per B: the median, its interval (:func:`median_interval`) and the
    samples. ``busy``: the timing harness's busy-machine note from the 1-minute load average at
    the start and the end, less this process's threads (other processes' load of half the cores
    or more), else None.

    ``timer`` and ``load`` replace the real clock and load average (tests inject them).
    """
    from batchlab.timing.harness import busy_machine_note, machine_load

    load = load or machine_load
    cpu_count = cpu_count or os.cpu_count()
    before = load()
    release = None
    if timer is None:
        timer, release = _harness_timer(template, batch_sizes, momenta, n_train, device, budget_s, rounds, task)
    try:
        samples = interleaved_times(batch_sizes, timer, rounds)
    finally:
        if release is not None:
            release()
    after = load()
    own = torch.get_num_threads() if device.type == "cpu" else 1
    # advise trains right before it times, so the 1-minute average at the start holds its own
    # threads too (the harness's rule subtracts them from the end reading only): take them off both.
    busy = None
    if busy_machine_note(None if before is None else before - own, after, cpu_count, own):
        others = max(load - own for load in (before, after) if load is not None)
        busy = (f"busy machine: other processes kept a load of about {others:.1f} on {cpu_count} cores while "
                f"timing (1-minute load average {_load(before)} at the start, {_load(after)} at the end, less {own} "
                "threads of this process)")
    return {"per_batch": {size: _summary(values) for size, values in samples.items()}, "rounds": rounds,
            "confidence": TIME_CONFIDENCE, "load_average": [before, after], "cpu_count": cpu_count, "busy": busy}


def _load(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def _summary(samples: list[float]) -> dict[str, Any]:
    low, high = median_interval(samples)
    return {"per_update_s": statistics.median(samples), "low_s": low, "high_s": high, "samples_s": samples}


def pool_timings(first: dict[str, Any], again: dict[str, Any]) -> dict[str, Any]:
    """``first`` with the repeats of ``again`` (a second :func:`time_updates` of some of its batch
    sizes) added to theirs, medians and intervals taken over all; busy if either was."""
    per_batch = dict(first["per_batch"])
    for size, timed in again["per_batch"].items():
        per_batch[size] = _summary(per_batch[size]["samples_s"] + timed["samples_s"])
    return first | {"per_batch": per_batch, "busy": first["busy"] or again["busy"],
                    "load_average": [*first["load_average"], *again["load_average"]],
                    "measured_again": sorted(again["per_batch"])}


def _harness_timer(template: RunConfig, batch_sizes: Sequence[int], momenta: dict[int, float], n_train: int,
                   device: torch.device, budget_s: float, rounds: int,
                   task: "Task | None") -> tuple[UpdateTimer, Callable[[], None]]:
    """The real clock: one prepared timing point per B (registry model or ``task``), each call one
    repeat (with one untimed update first, refilling caches the previous B used)."""
    from batchlab.runtime.threads import threads_for
    from batchlab.timing.harness import DEFAULT_WARMUP, prepare_point
    from batchlab.timing.paths import RESIDENT
    from batchlab.timing.timed_task import resolve_timed_task
    from batchlab.timing.workload import make_timing_data

    if task is not None:
        timed = resolve_timed_task(None, task, dataset=None, hidden=None, data_dir=None)
        data = timed.make_data(n_train)
    else:
        timed = resolve_timed_task(template.model, None, dataset=template.dataset, hidden=template.hidden,
                                   data_dir=template.data_dir)
        data = make_timing_data(template.dataset, n_train, template.data_dir)
    points = {size: prepare_point(RESIDENT, timed, size, data, device, rounds, DEFAULT_WARMUP, budget_s,
                                  threads_for(size, device), optimizer=template.optimizer, lr=0.01,
                                  momentum=momenta.get(size, 0.0), seed=0, num_workers=0)
              for size in batch_sizes}

    def repeat(size: int) -> float:
        point = points[size]
        point.repeat(rewarm=True)
        return point.per_update[-1]

    return repeat, lambda: data.release(device)


def _new_model(config: RunConfig, input_shape: Sequence[int], num_classes: int, task: "Task | None") -> torch.nn.Module:
    """A new (unseeded) model: the task's, or the registry's ``config.model``."""
    if task is not None:
        return task.build_model()
    return build_model(config.model, tuple(input_shape), num_classes, config.hidden)


def largest_fitting_batch(template: RunConfig, input_shape: tuple[int, ...], num_classes: int,
                          device: torch.device, task: "Task | None" = None) -> dict[str, Any] | None:
    """The doubling search (module docstring) with the registry's model and cross-entropy, or a
    task's model, loss and training examples' target shape; None on a device that is not CUDA."""
    if device.type != "cuda":
        return None
    from torch.nn import functional as F

    from batchlab.optim import build_optimizer

    torch.manual_seed(template.seed)
    model = _new_model(template, input_shape, num_classes, task).to(device)
    loss_of = F.cross_entropy if task is None else task.objective.loss
    targets = None if task is None else task.data.splits["train"].first(1)[1]
    optimizer = build_optimizer(template.optimizer, model.parameters(), lr=1e-3, momentum=0.9)
    fits, failed = None, None
    size = 1
    for _ in range(MAX_DOUBLINGS + 1):
        try:
            x = torch.randn((size, *input_shape), device=device)
            y = (torch.randint(0, num_classes, (size,), device=device) if targets is None
                 else targets.to(device).expand(size, *targets.shape[1:]).contiguous())
            loss = loss_of(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            torch.cuda.synchronize(device)
            fits = size
        except torch.cuda.OutOfMemoryError:
            failed = size
        finally:
            x = y = loss = None
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
        if failed is not None:
            break
        size *= 2
    return {"largest_batch": fits, "first_out_of_memory": failed, "max_doublings": MAX_DOUBLINGS,
            "device_name": torch.cuda.get_device_name(device)}
