"""Time per update and per epoch against batch size: :func:`measure_point` and :func:`timing_sweep`.

The rule for one point (a data path, a batch size B, a device):

1. build the model (seeded) and the path; for ``cuda-graph`` this includes the capture, whose time
   is reported apart as ``capture_s``;
2. warm up: ``warmup`` untimed updates (at least one; fewer if they take more than a quarter of the
   budget), so lazy initialization is not timed;
3. estimate the time of one update, and from it how many updates k fit into ``budget_s`` spread
   over ``repeats`` repeats;
4. if a whole epoch fits (k ≥ ceil(N / B)), each repeat is one measured epoch, started fresh (its
   shuffle included), and the time per epoch is the median of these epochs; otherwise each repeat is
   a block of k consecutive updates and the time per epoch is the median time per update ×
   ceil(N / B), flagged ``extrapolated``;
5. the time per update of a repeat is the block's time / its number of updates; the point keeps
   every repeat, their median, quartiles, min and max. At least five repeats are always taken, even
   when a single update outlasts the budget.

:func:`timing_sweep` prepares every point of a device (steps 1–3), then takes the repeats in rounds:
each round times every data path and batch size once, each round starting one point further on, and
one untimed update before each repeat refills the caches the previous point used. Load from other
processes that comes and goes then falls on all points alike instead of on whichever was timed then.

Everything from step 1 on runs with a fixed intra-op thread count, reported in the point
(``threads``), as ``torch.utils.benchmark.Timer(num_threads=...)`` does: by default the count
batchlab's trainer uses for that batch size (:func:`batchlab.runtime.threads.threads_for`: one thread for
small CPU batches), or the count asked for.

The defaults time the lecture's network (784-512-512-10, the lecture's momentum, λ = 0.9) on
N = 60,000 examples, the size of MNIST's training set in the lecture's table (docs/science.md §1).
A user's :class:`batchlab.Task` (``task=``) is timed by the same rule, with its own model, loss and
training examples (N: their number by default); :mod:`batchlab.timing.timed_task` says what names
each measurement.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from batchlab.config import resolve_batch_size
from batchlab.runtime.device import device_name, resolve_device
from batchlab.runtime.environment import describe_environment
from batchlab.errors import ConfigError
from batchlab.optim import get_optimizer_spec
from batchlab.optim.registry import names_with
from batchlab.runtime.threads import ONE_THREAD_BELOW_BATCH, check_thread_count, intra_op_threads, threads_for
from batchlab.timing.clock import estimate_update_seconds, time_updates, warm_up
from batchlab.timing.paths import CUDA_GRAPH, PATHS, build_path, check_path
from batchlab.timing.table import TimingPoint, TimingTable, footnotes
from batchlab.timing.timed_task import TimedTask, resolve_timed_task
from batchlab.timing.workload import TimingData

if TYPE_CHECKING:
    from batchlab.task import Task

DEFAULT_BATCH_SIZES = (1, 10, 100, 1000, 10000, 60000)
DEFAULT_N_EXAMPLES = 60000
DEFAULT_MODEL = "mlp"
DEFAULT_DATASET = "mnist-5k"
DEFAULT_REPEATS = 5
MIN_REPEATS = 5
DEFAULT_WARMUP = 3
DEFAULT_BUDGET_S = 2.0
# The CPU's budget when a GPU is timed in the same sweep: the CPU series is there for the
# lecture's "without parallelism" contrast, not for precision.
DEFAULT_CPU_BUDGET_WITH_GPU_S = 0.5
# Learning rate and λ of the timed updates. Timing does not depend on the values, but a diverging
# run fills tensors with inf/NaN, and a small rate keeps the arithmetic ordinary.
TIMING_LR = 0.01
TIMING_MOMENTUM = 0.9
# Share of the budget that warm-up may use before it stops early.
WARMUP_SHARE = 0.25


def measure_point(
    path: str,
    model_name: str | None,
    batch_size: int | str,
    n_examples: int,
    device: torch.device | str,
    repeats: int = DEFAULT_REPEATS,
    warmup: int = DEFAULT_WARMUP,
    budget_s: float = DEFAULT_BUDGET_S,
    *,
    dataset: str | None = None,
    data: TimingData | None = None,
    data_dir: Path | str | None = None,
    optimizer: str = "momentum",
    lr: float = TIMING_LR,
    momentum: float | None = None,
    seed: int = 0,
    num_workers: int = 0,
    hidden: tuple[int, ...] | None = None,
    threads: int | None = None,
    task: "Task | None" = None,
) -> TimingPoint:
    """Median time per update (with spread over ``repeats``) and time per epoch of one data path.

    What is timed: the registry's ``model_name`` on ``dataset`` (default: ``data``'s dataset, else
    mnist-5k), or a user's ``task`` (its model, loss and training examples; ``model_name`` then
    None or the task's own ``model_id``, and no ``dataset``, ``hidden`` or ``data_dir``:
    :mod:`batchlab.timing.timed_task`). The timed training set has N = max(B, ``n_examples``)
    examples (``"full"`` means B = N): the first N of ``data`` (or of the dataset or the task),
    made up to N when it has fewer (see :mod:`batchlab.timing.workload`). ``momentum=None`` means λ = 0.9 for an optimizer with
    momentum, else 0. ``threads=None`` times with the trainer's thread rule
    (:func:`batchlab.runtime.threads.threads_for`), else with ``threads`` intra-op threads. Raises
    :class:`ConfigError` for bad settings, including ``cuda-graph`` on a device that is not CUDA.
    """
    device = resolve_device(device)
    check_path(path, device)
    check_settings(repeats, warmup, budget_s, num_workers)
    if threads is not None:
        check_thread_count(threads)
    n_examples = _positive_int("number of examples", n_examples)
    batch_size = resolve_batch_size(batch_size, n_examples, larger="keep")
    n = max(batch_size, n_examples)
    if momentum is None:
        momentum = TIMING_MOMENTUM if get_optimizer_spec(optimizer).uses_momentum else 0.0
    timed = resolve_timed_task(model_name, task, dataset=dataset, hidden=hidden, data_dir=data_dir,
                               default_model=DEFAULT_MODEL,
                               default_dataset=data.dataset if data is not None else DEFAULT_DATASET)
    data = _data_of_size(data, timed, n)
    threads = threads_for(batch_size, device) if threads is None else threads
    prepared = prepare_point(path, timed, batch_size, data, device, repeats, warmup, budget_s, threads,
                        optimizer=optimizer, lr=lr, momentum=momentum, seed=seed, num_workers=num_workers)
    for _ in range(repeats):
        prepared.repeat(rewarm=False)
    return prepared.point()


@dataclass
class _PreparedPoint:
    """A built, warmed-up point (steps 1–3) whose repeats (step 4) can be taken one at a time, so a
    sweep can interleave the repeats of all its points."""

    path: str
    timed: TimedTask
    batch_size: int
    data: TimingData
    device: torch.device
    threads: int
    budget_s: float
    optimizer: str
    num_workers: int
    runner: Any
    warmup_updates: int
    estimate_s: float
    block: int
    per_update: list[float] = field(default_factory=list)
    epoch_times: list[float] = field(default_factory=list)

    @property
    def whole_epochs(self) -> bool:
        return self.block >= self.runner.updates_per_epoch

    def repeat(self, rewarm: bool) -> None:
        """One timed repeat under the point's thread count. ``rewarm`` first takes one untimed update
        (when it costs less than the warm-up share of the budget spread over five repeats), so caches
        another point filled in between are refilled outside the timed block."""
        with intra_op_threads(self.threads):
            if rewarm and self.estimate_s < self.budget_s * WARMUP_SHARE / MIN_REPEATS:
                time_updates(self.runner, 1, self.device)
            updates_per_epoch = self.runner.updates_per_epoch
            if self.whole_epochs:
                elapsed = time_updates(self.runner, updates_per_epoch, self.device, from_new_epoch=True)
                self.epoch_times.append(elapsed)
                self.per_update.append(elapsed / updates_per_epoch)
            else:
                self.per_update.append(time_updates(self.runner, self.block, self.device) / self.block)

    def point(self) -> TimingPoint:
        """Step 5: the point from the repeats taken."""
        updates_per_epoch = self.runner.updates_per_epoch
        per_epoch = (statistics.median(self.epoch_times) if self.whole_epochs
                     else statistics.median(self.per_update) * updates_per_epoch)
        notes = []
        if self.data.synthetic:
            notes.append(f"synthetic data: {self.data.reason}")
        if not self.whole_epochs:
            notes.append(f"extrapolated: {self.block} of {updates_per_epoch} updates per repeat fit the "
                         f"{self.budget_s:g} s budget")
        return TimingPoint(
            path=self.path,
            device=str(self.device),
            device_name=device_name(self.device),
            model=self.timed.model,
            dataset=self.data.dataset,
            network=self.timed.network,
            loss=self.timed.loss_name,
            model_fingerprint=self.timed.model_fingerprint,
            data_fingerprint=self.timed.data_fingerprint,
            optimizer=self.optimizer,
            batch_size=self.batch_size,
            n_examples=self.data.n,
            updates_per_epoch=updates_per_epoch,
            per_update_s=tuple(self.per_update),
            updates_per_repeat=updates_per_epoch if self.whole_epochs else self.block,
            warmup_updates=self.warmup_updates,
            per_epoch_s=per_epoch,
            extrapolated=not self.whole_epochs,
            synthetic_data=self.data.synthetic,
            num_workers=self.num_workers if self.path == "dataloader" else 0,
            capture_s=self.runner.capture_s,
            threads=self.threads,
            notes=tuple(notes),
        )


def prepare_point(
    path: str,
    timed: TimedTask,
    batch_size: int,
    data: TimingData,
    device: torch.device,
    repeats: int,
    warmup: int,
    budget_s: float,
    threads: int,
    *,
    optimizer: str,
    lr: float,
    momentum: float,
    seed: int,
    num_workers: int,
) -> _PreparedPoint:
    """Steps 1–3 of the module docstring, for checked settings, under ``threads`` intra-op threads;
    the caller takes the repeats (:meth:`_PreparedPoint.repeat`), interleaved with other points'."""
    with intra_op_threads(threads):
        runner = build_path(
            path, timed, data, batch_size, device,
            optimizer=optimizer, lr=lr, momentum=momentum, seed=seed, num_workers=num_workers,
        )
        warmup_updates = warm_up(runner, warmup, device, max_seconds=budget_s * WARMUP_SHARE)
        estimate = estimate_update_seconds(runner, device)
    block = updates_in_budget(estimate, budget_s, repeats, runner.updates_per_epoch)
    return _PreparedPoint(path, timed, batch_size, data, device, threads, budget_s, optimizer, num_workers,
                          runner, warmup_updates, estimate, block)


def updates_in_budget(update_s: float, budget_s: float, repeats: int, updates_per_epoch: int) -> int:
    """How many updates one repeat may time: ⌊budget / (repeats × time per update)⌋, at least 1
    and at most an epoch."""
    if update_s <= 0:
        return updates_per_epoch
    fit = math.floor(budget_s / (repeats * update_s))
    return max(1, min(fit, updates_per_epoch))


def timing_sweep(
    paths: Sequence[str] | None = None,
    batch_sizes: Sequence[int | str] = DEFAULT_BATCH_SIZES,
    device: str = "auto",
    *,
    model: str | None = None,
    dataset: str | None = None,
    n_examples: int | None = None,
    repeats: int = DEFAULT_REPEATS,
    warmup: int = DEFAULT_WARMUP,
    budget_s: float = DEFAULT_BUDGET_S,
    cpu_budget_s: float | None = None,
    data_dir: Path | str | None = None,
    optimizer: str = "momentum",
    num_workers: int = 0,
    seed: int = 0,
    hidden: tuple[int, ...] | None = None,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
    task: "Task | None" = None,
) -> TimingTable:
    """Time every (device, path, batch size) and gather the points in a :class:`TimingTable`.

    What is timed: the registry's ``model`` (default mlp, with ``hidden`` widths) on ``dataset``
    (default mnist-5k), or a user's ``task`` (its model, loss and training examples; then none of
    ``model``, ``dataset``, ``hidden``, ``data_dir``: :mod:`batchlab.timing.timed_task`), every
    point by the same rules. ``n_examples`` is N, the examples of a timed epoch (default: the
    lecture's 60,000 for a registry dataset, the task's training examples for a task).

    ``device="auto"`` times the GPU and the CPU when a GPU is present (the CPU with ``cpu_budget_s``,
    default 0.5 s per point), else the CPU only. ``paths=None`` means every path a timed device
    can run; a path a device cannot run (``cuda-graph`` on the CPU), and a batch size a model
    cannot train on (B = 1 with batch normalization), is listed in ``skipped`` with the reason. Batch sizes above ``n_examples`` are capped at it; ``"full"`` is ``n_examples``.
    ``threads=None`` times each point with the trainer's thread rule, else with ``threads``.
    """
    check_settings(repeats, warmup, budget_s, num_workers)
    if threads is not None:
        check_thread_count(threads)
    timed = resolve_timed_task(model, task, dataset=dataset, hidden=hidden, data_dir=data_dir,
                               default_model=DEFAULT_MODEL, default_dataset=DEFAULT_DATASET)
    if n_examples is None:
        n_examples = DEFAULT_N_EXAMPLES if task is None else task.n_train
    n_examples = _positive_int("number of examples", n_examples)
    if get_optimizer_spec(optimizer).needs_epoch_length:
        raise ConfigError(f"optimizer {optimizer!r} needs a run's epoch length and is not timed on its own; "
                          f"allowed: {names_with('needs_epoch_length', False)}")
    devices = sweep_devices(device)
    chosen_paths = check_paths(paths, devices)
    sizes, capped = resolve_batch_sizes(batch_sizes, n_examples)
    if cpu_budget_s is None:
        cpu_budget_s = DEFAULT_CPU_BUDGET_WITH_GPU_S if any(d.type == "cuda" for d in devices) else budget_s
    data = timed.make_data(n_examples)
    load_before = machine_load()

    table = TimingTable(
        settings={
            **timed.identity(),
            "hidden": list(timed.hidden) if timed.hidden else None,
            "n_examples": n_examples,
            "batch_sizes": sizes,
            "paths": list(chosen_paths),
            "devices": [str(d) for d in devices],
            "repeats": repeats,
            "warmup": warmup,
            "budget_s": budget_s,
            "cpu_budget_s": cpu_budget_s,
            "optimizer": optimizer,
            "lr": TIMING_LR,
            "momentum": TIMING_MOMENTUM if get_optimizer_spec(optimizer).uses_momentum else 0.0,
            "num_workers": num_workers,
            "seed": seed,
            "threads": threads if threads is not None else f"rule: 1 on the CPU below B = {ONE_THREAD_BELOW_BATCH}",
        }
    )
    momentum = TIMING_MOMENTUM if get_optimizer_spec(optimizer).uses_momentum else 0.0
    prepared: list[_PreparedPoint] = []
    for dev in devices:
        table.environments[str(dev)] = describe_environment(dev, update_threads=threads)
        point_budget = cpu_budget_s if dev.type == "cpu" else budget_s
        for path in chosen_paths:
            if path == CUDA_GRAPH and dev.type != "cuda":
                table.skipped.append(
                    {"path": path, "device": str(dev), "reason": "cuda-graph needs a CUDA device"}
                )
                continue
            for size in sizes:
                conflict = timed.batch_norm_conflict(n_examples, size)
                if conflict:
                    table.skipped.append({"path": path, "device": str(dev), "batch_size": size, "reason": conflict})
                    continue
                prepared.append(prepare_point(
                    path, timed, size, _data_of_size(data, timed, max(size, n_examples)), dev, repeats,
                    warmup, point_budget, threads_for(size, dev) if threads is None else threads,
                    optimizer=optimizer, lr=TIMING_LR, momentum=momentum, seed=seed, num_workers=num_workers,
                ))
        # Interleaved repeats: round r times every point once, starting one point further on each round,
        # so load that comes and goes hits every path and batch size alike.
        for round_index in range(repeats):
            start = round_index % max(len(prepared), 1)
            for item in prepared[start:] + prepared[:start]:
                item.repeat(rewarm=True)
        for item in prepared:
            point = item.point()
            table.points.append(point)
            if progress is not None:
                progress(
                    f"{point.series:<24} B={point.batch_size:<6} {point.per_update_median_s * 1e3:10.3f} ms/update"
                    f"{' (extrapolated epoch)' if point.extrapolated else ''}"
                )
        prepared.clear()
        data.release(dev)

    table.notes = footnotes(table.points)
    load_after = machine_load()
    table.settings["load_average"] = {"before": load_before, "after": load_after, "cpu_count": os.cpu_count()}
    busy = busy_machine_note(load_before, load_after, os.cpu_count())
    if busy and any(d.type == "cpu" for d in devices):
        table.notes.append(busy)
    if data.synthetic:
        table.notes.append(f"Why synthetic: {data.reason}.")
    if capped:
        table.notes.append(
            f"Batch sizes {', '.join(str(b) for b in capped)} exceed the {n_examples:,} timed examples "
            f"and were capped at {n_examples:,}."
        )
    table.notes.extend(
        f"{s['path']} ({s['device']}{', B = ' + str(s['batch_size']) if 'batch_size' in s else ''}): skipped, "
        f"{s['reason']}." for s in table.skipped
    )
    return table


def machine_load() -> float | None:
    """The 1-minute load average (runnable processes), or None where the system has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def busy_machine_note(
    before: float | None, after: float | None, cpu_count: int | None, own_threads: int | None = None
) -> str | None:
    """A warning when other processes competed for the CPUs while timing, else None.

    The 1-minute load average counts runnable threads. Before timing it is the other processes'
    load; after timing it includes the timing's own threads (``own_threads``, PyTorch's intra-op
    threads), which are subtracted. Other load of half the cores or more (at least one core) is
    called busy: CPU times are then inflated, often far beyond the share of the cores taken,
    because PyTorch's threads wait for each other at every operation.
    """
    own = torch.get_num_threads() if own_threads is None else own_threads
    others = [load for load in (before, None if after is None else after - own) if load is not None]
    if not others or not cpu_count or max(others) < max(1.0, 0.5 * cpu_count):
        return None
    return (
        f"Busy machine: other processes kept a load of about {max(others):.1f} on {cpu_count} cores "
        f"while timing (load average {_load(before)} before, {_load(after)} after, {own} of it this "
        "timing's threads); "
        "CPU times are inflated."
    )


def _load(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def sweep_devices(name: str) -> list[torch.device]:
    """``auto`` → the GPU and the CPU when a GPU is present, else the CPU; any other name → itself."""
    if name == "auto":
        if torch.cuda.is_available():
            return [torch.device("cuda"), torch.device("cpu")]
        return [torch.device("cpu")]
    return [resolve_device(name)]


def check_paths(paths: Sequence[str] | None, devices: Sequence[torch.device]) -> tuple[str, ...]:
    """The paths to time; unknown names, and cuda-graph without a CUDA device, are errors."""
    has_cuda = any(d.type == "cuda" for d in devices)
    if paths is None or len(paths) == 0:
        return tuple(p for p in PATHS if has_cuda or p != CUDA_GRAPH)
    for path in paths:
        if path not in PATHS:
            raise ConfigError(f"unknown timing path {path!r}; allowed: {', '.join(PATHS)}")
    if CUDA_GRAPH in paths and not has_cuda:
        allowed = ", ".join(p for p in PATHS if p != CUDA_GRAPH)
        where = "on this machine" if not torch.cuda.is_available() else "with this --device (use cuda or auto)"
        raise ConfigError(f"cuda-graph needs a CUDA device; allowed {where}: {allowed}")
    return tuple(dict.fromkeys(paths))


def resolve_batch_sizes(batch_sizes: Sequence[int | str], n_examples: int) -> tuple[list[int], list[int]]:
    """Sorted distinct batch sizes (``"full"`` → N) and the ones that were capped at N."""
    if not batch_sizes:
        raise ConfigError("no batch sizes given; allowed: integers ≥ 1 or 'full', e.g. 1 10 100")
    sizes: set[int] = set()
    capped: list[int] = []
    for value in batch_sizes:
        size = resolve_batch_size(value, n_examples, larger="keep")
        if size > n_examples:
            capped.append(size)
            size = n_examples
        sizes.add(size)
    return sorted(sizes), sorted(set(capped))


def check_settings(repeats: int, warmup: int, budget_s: float, num_workers: int) -> None:
    """Validate the measurement settings (one-line :class:`ConfigError` each)."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < MIN_REPEATS:
        raise ConfigError(
            f"repeats {repeats!r} is too few; allowed: an integer ≥ {MIN_REPEATS} (a median with a spread)"
        )
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
        raise ConfigError(f"warm-up {warmup!r} is invalid; allowed: an integer ≥ 1 (untimed updates first)")
    if isinstance(budget_s, bool) or not isinstance(budget_s, (int, float)) or not budget_s > 0 or math.isinf(budget_s):
        raise ConfigError(f"budget {budget_s!r} s is invalid; allowed: a positive number of seconds")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"num_workers {num_workers!r} is invalid; allowed: an integer ≥ 0")


def _positive_int(what: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} {value!r} is invalid; allowed: an integer ≥ 1")
    return value


def _data_of_size(data: TimingData | None, timed: TimedTask, n: int) -> TimingData:
    """``data`` cut to its first ``n`` examples, or new data of ``timed`` when it is missing or too small."""
    if data is None or data.n < n:
        return timed.make_data(n)
    if data.n == n:
        return data
    return TimingData(data.dataset, data.x[:n], data.y[:n], data.num_classes, data.synthetic, data.reason)
