"""Which runs can be trained together, and whether packing them pays on this device.

* :func:`pack_key`: runs with equal keys walk the same number of equal-sized batches through the
  same architecture on the same device, so one stacked step can train them all. Everything a run
  may keep to itself — learning rate, λ, Nesterov, weight decay, initialization seed and with it
  its data order — is left out of the key.
* :func:`can_pack`: batch-norm running statistics (ghost batch norm included) and dropout masks
  are state and randomness outside the weights that a vmapped step does not reproduce exactly,
  and only the lecture's momentum (``momentum``, ``sgd``) has a vectorized rule (not LARS, LAMB
  or a recipe's optimizer); other runs train one at a time. Learning-rate schedules pack: each
  run's rate is set per row before every update.
  A user's model (:class:`batchlab.Task`) is checked the same way, plus one vmapped probe step
  (:func:`batchlab.task.model.packability`), and its data must be on the device, not streamed.
* :func:`plan_packs`: on a CUDA device a pack is as large as free memory allows (docs/science.md §8,
  H100, K = 64, B = 1: 14 µs per model-update with the packed step in a CUDA graph, against
  0.94 ms for one model at a time with the data on the GPU). On any other device nothing
  guarantees that packing pays, so the pack is planned ``auto``: the choice is made on the pack's
  first updates while it trains (:mod:`batchlab.training.packed_auto`), by the rule below —
  unless the pack's training is so short that even that would cost more than ~5% of it; then it
  trains one at a time, as ``batchlab.train`` would.

  The rule (:func:`verdict`; margin m = ``PACKING_MARGIN``), per model-update:

  1. *one at a time*, t₁: ``PROBE_SINGLE_FIRST`` updates of a copy of one run of the pack's
     most common update rule (:func:`~batchlab.training.packed_auto.representative_run`: a run
     without momentum updates more cheaply than the rest), with its weights, optimizer state and
     next batches, on the one-run thread count, after ``PROBE_SINGLE_WARMUP`` untimed (a fresh
     copy's first updates are slow), timed by the one-model step's
     own loop as its training is (each batch's gather included, as in t_K); the copy is thrown
     away, so this costs a few updates of one run (at most ``PROBE_SINGLE_UPDATES``, with step 3);
  2. *what packing cannot beat*: the packed step's kernels pass over every run's state n times
     per model-update, n fp32 passes over P (:func:`packed_passes`: 10 for heavy ball — θ read in
     the forward pass, g written in the backward pass, m ← λm − ηg as ``mul_`` then ``addcmul_``,
     θ ← θ + m — more with weight decay or Nesterov), and its working set (θ, g, m of K runs,
     12·P·K bytes) moves at the bandwidth BW of a copy of that size
     (:func:`batchlab.runtime.bandwidth.copy_bandwidth`, on the packed step's thread count). So a
     packed model-update takes at least t_bound = 4·n·P / BW. If t_bound · (1 + m) ≥ median(t₁),
     packing cannot be faster by m: **one at a time, at once**, no packed step made. This is the
     lecture's MLP on a CPU: sixteen runs' state (~130 MB) is far beyond cache while one run's
     stays in it, and what packing saves (K − 1 updates' dispatch) is less than what it adds;
  3. otherwise ``PROBE_PACKED_STEPS`` steps of the pack itself, t_K (step time / K; the first step,
     vmap's first call, left out; fewer once more than half of the samples miss the bar, since the
     median can no longer pass, :func:`median_cannot_win`), each timed one followed by one more
     timed update of the copy of step 1 (after an untimed one that brings its state back into
     the cache), and these t₁ replace step 1's: the two ways are timed in turns, so a burst of
     load from elsewhere (on a shared or virtual machine they last seconds) falls on both, and
     neither is timed on its first updates. The packed steps are real updates of the runs, kept
     either way. **Packed**
     when the fastest and the median of t_K are both below those of t₁ by m
     (t_K · (1 + m) < t₁, :func:`choose_strategy`), else **one at a time** from where the runs
     are (same epoch, next batch). A single sample per way once chose packing at 1.33 vs 2.23 ms
     per model-update for the lecture's MLP at B = 16 on a quiet 2-core CPU, then trained at
     0.78× the speed of one at a time; hence several samples and the fastest-and-median test.

  Each pack records which way it went, the samples and the bound (``Pack.evidence``), and the
  rule that decided, in words (``Pack.reason``; ``pack_choice`` in each run's summary).

  Why measure rather than follow a rule alone: on a 2-core CPU (AMD EPYC VM, torch 2.13; fastest of
  three steps, λ mixed over {0, 0.5, 0.8, 0.9}) packed over one at a time, per model-update, was
  0.86–0.93× at K = 4 and 1.7–2.5× at K = 16 for an MLP 784-32-10, but 0.82–0.99× at K = 4 and
  1.04–1.16× at K = 16 for the lecture's 784-512-512-10 (B ∈ {1, 16, 128}). Small steps gain from
  one vmapped launch instead of K; large ones are bound by memory bandwidth, since one model's
  weights, gradients and momentum (~8 MB) stay in cache between its updates and sixteen side by
  side do not. The answer depends on the model, K, B and the machine; docs/science.md §8 also found
  that vmap did not pay on a 2-core CPU.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from batchlab import data as datasets
from batchlab.config import RunConfig, resolve_batch_size
from batchlab.runtime.device import resolve_device
from batchlab.errors import ConfigError
from batchlab.models.registry import build_model, count_parameters, get_model_spec
from batchlab.optim import get_optimizer_spec
from batchlab.optim.registry import names_with

if TYPE_CHECKING:
    from batchlab.task import Task

PACKED = "packed"
SEQUENTIAL = "sequential"
AUTO = "auto"
STRATEGIES = (AUTO, PACKED, SEQUENTIAL)

# Share of the free GPU memory a pack may plan to use; the rest is headroom for the allocator's
# fragmentation, evaluation and the CUDA graph's private pool.
GPU_MEMORY_SHARE = 0.7
# Float tensors of P elements a packed run needs per step: parameters, gradients, momentum, and
# up to three temporaries of the update when a pack mixes rules (−ηg, the new buffer, θ + m).
STATE_COPIES = 6
# Activation memory of one example is counted this many times: the forward outputs saved for the
# backward pass, their gradients, and slack for temporaries inside the layers.
ACTIVATION_COPIES = 3
# Timed updates of a throwaway copy of one run (each turn after one untimed): PROBE_SINGLE_FIRST
# for the traffic bound, then one after each timed packed step, to compare with it; and real packed steps at the
# start of training (the first one, vmap's first call, left out of the samples).
PROBE_PACKED_STEPS = 4
PROBE_SINGLE_FIRST = 3
PROBE_SINGLE_UPDATES = PROBE_SINGLE_FIRST + PROBE_PACKED_STEPS - 1
# Untimed updates of the fresh copy before its first timed one (later turns: one).
PROBE_SINGLE_WARMUP = 3
# Packing must be at least this much faster (fastest and median sample alike) to be chosen.
PACKING_MARGIN = 0.10
# Copies of P in a packed run's working set: θ, g, m.
WORKING_SET_COPIES = 3
FLOAT32_BYTES = 4
# A pack is planned ``auto`` only when its training is at least this many times what deciding can
# cost, so the decision costs at most ~5% of a sweep that then goes one at a time.
MEASUREMENT_SHARE_LIMIT = 20


@dataclass(frozen=True)
class ProbeEvidence:
    """Seconds per model-update measured while a pack decided: one at a time (``sequential_s``),
    packed (``packed_s``; empty when the bound decided first), and the least a packed model-update
    can take (``bound_s``, :func:`packed_bound_s` at ``bandwidth``; None when not estimated)."""

    packed_s: tuple[float, ...]
    sequential_s: tuple[float, ...]
    bound_s: float | None = None
    bandwidth: float | None = None

    def __post_init__(self) -> None:
        if not self.sequential_s or (not self.packed_s and self.bound_s is None):
            raise ValueError("probe evidence needs samples of one at a time, and packed samples or a bound")

    def to_dict(self) -> dict:
        return {"packed_s": list(self.packed_s), "sequential_s": list(self.sequential_s), "bound_s": self.bound_s,
                "bandwidth_bytes_per_s": self.bandwidth}

    def describe(self) -> str:
        def way(samples: tuple[float, ...]) -> str:
            return f"fastest {min(samples) * 1e3:.3f}, median {statistics.median(samples) * 1e3:.3f}"

        parts = []
        if self.packed_s:
            parts.append(f"packed: {way(self.packed_s)}")
        parts.append(f"one at a time: {way(self.sequential_s)}")
        if self.bound_s is not None:
            parts.append(f"packed at least {self.bound_s * 1e3:.3f} (its passes over P at "
                         f"{(self.bandwidth or 0.0) / 1e9:.1f} GB/s)")
        return f"ms per model-update, {'; '.join(parts)} ({len(self.packed_s)} and {len(self.sequential_s)} samples)"


@dataclass(frozen=True)
class Pack:
    """Runs that train the same way: together in one stacked step (``packed``), one at a time
    (``sequential``) or either, decided on its first updates while training (``auto``), with the
    ``reason`` for that choice in words and, once a choice was measured, the samples (``evidence``)."""

    configs: tuple[RunConfig, ...]
    strategy: str
    reason: str
    evidence: ProbeEvidence | None = None


def pack_key(config: RunConfig, task: "Task | None" = None) -> tuple:
    """What runs must share to be trained in one pack (see the module docstring)."""
    default_hidden = None if task is not None else get_model_spec(config.model).default_hidden
    optimizer = "momentum" if get_optimizer_spec(config.optimizer).packable else config.optimizer
    return (
        config.dataset,
        config.data_dir,
        config.model,
        tuple(config.hidden or default_hidden or ()),
        config.batch_size,
        config.shuffle,
        config.drop_last,
        config.epochs,
        config.max_updates,
        config.stop_patience,
        float(config.val_fraction),
        config.split_seed,
        str(resolve_device(config.device)),
        optimizer,
    )


def can_pack(config: RunConfig, task: "Task | None" = None) -> tuple[bool, str]:
    """Whether ``config`` can join a pack, and if not, why it trains one at a time (for a
    ``task``'s model: on the device the config names)."""
    if config.recipe is not None:
        return False, f"recipe {config.recipe} has no packed update rule: trained one at a time"
    if config.ghost_batch is not None:
        return False, f"ghost batch norm (G={config.ghost_batch}) is not packed: trained one at a time"
    if task is not None:
        why_not = task.why_not_packable(resolve_device(config.device))
        if why_not is not None:
            return False, why_not
    else:
        spec = get_model_spec(config.model)
        if spec.has_batch_norm:
            return False, f"{config.model} has batch-norm running statistics: trained one at a time"
        if spec.has_dropout:
            return False, f"{config.model} has dropout: trained one at a time"
    if config.momentum_correction:
        return False, "Goyal's momentum correction is not in the packed update rule: trained one at a time"
    if not get_optimizer_spec(config.optimizer).packable:
        packable = names_with("packable")
        return False, (
            f"optimizer {config.optimizer} has no packed update rule (packable: {packable}): "
            "trained one at a time"
        )
    return True, ""


def plan_packs(
    configs: Sequence[RunConfig],
    device: str | torch.device | None = None,
    *,
    splits: "datasets.Splits | None" = None,
    strategy: str = AUTO,
    task: "Task | None" = None,
) -> list[Pack]:
    """Group ``configs`` into packs and choose how each is trained.

    Args:
        configs: the runs (already de-duplicated by the caller if it wants that).
        device: the device the runs train on; None means each config's own ``device``.
        splits: the data, already prepared (else loaded per dataset when the plan needs its size).
        strategy: ``auto`` (CUDA: pack; other devices: a pack planned ``auto``, which decides on
            its first updates while training — see the module docstring), ``packed``
            (pack every packable group, split only by GPU memory) or ``sequential``.
        task: the user's model and data the configs train (already configured for it).

    Packs come in the order of their first config; unpackable runs are packs of one.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown packing strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")
    groups: dict[tuple, list[RunConfig]] = {}
    entries: list[Pack | tuple] = []  # a lone run's pack, or the key of a group, in first-seen order
    for config in configs:
        packable, why_not = can_pack(config, task)
        if not packable:
            entries.append(Pack((config,), SEQUENTIAL, why_not))
            continue
        key = pack_key(config, task)
        if key not in groups:
            groups[key] = []
            entries.append(key)
        groups[key].append(config)

    plan: list[Pack] = []
    for entry in entries:
        if isinstance(entry, Pack):
            plan.append(entry)
            continue
        group = groups[entry]
        target = resolve_device(device if device is not None else group[0].device)
        plan.extend(_plan_group(group, target, splits, strategy, task))
    return plan


def _plan_group(group: list[RunConfig], device: torch.device, splits, strategy: str, task=None) -> list[Pack]:
    label = pack_label(group[0], len(group))
    if strategy == SEQUENTIAL:
        return [Pack(tuple(group), SEQUENTIAL, f"{label}: trained one at a time, as asked")]
    if len(group) == 1:
        return [Pack(tuple(group), SEQUENTIAL, f"{label}: nothing to pack it with, trained alone")]
    if task is not None:
        splits = task.splits(device)
    elif splits is None:
        splits = _load_splits(group[0], device)
    if device.type == "cuda":
        return _split_by_gpu_memory(group, device, splits, task)
    if strategy == PACKED:
        return [Pack(tuple(group), PACKED, f"{label}: packed, as asked")]
    work = len(group) * planned_updates(group[0], len(splits.train))
    if work < MEASUREMENT_SHARE_LIMIT * measurement_cost(len(group)):
        # Deciding would cost more than a few percent of the training itself; one at a time is
        # what batchlab.train does, so choosing it can never make the sweep slower than that.
        return [Pack(tuple(group), SEQUENTIAL, (
            f"{label}: trained one at a time; {work} model-updates in all are too few to be worth "
            f"measuring whether packing pays on this {device.type}"))]
    return [Pack(tuple(group), AUTO, (
        f"{label}: packed or one at a time, decided on its first updates on this {device.type}"))]


def packing_ruled_out(evidence: ProbeEvidence, margin: float = PACKING_MARGIN) -> bool:
    """Step 2 of the rule: a packed model-update cannot take less than ``bound_s``, so packing
    cannot be faster by ``margin`` when bound_s · (1 + margin) ≥ the median update alone."""
    return evidence.bound_s is not None and evidence.bound_s * (1 + margin) >= statistics.median(evidence.sequential_s)


def median_cannot_win(packed_s: Sequence[float], sequential_s: Sequence[float], planned: int,
                      margin: float = PACKING_MARGIN) -> bool:
    """True once more than half of the ``planned`` packed samples miss the bar
    t · (1 + margin) < median(t_sequential): the median of all of them cannot pass any more, so the
    probe stops early (it never stops a pack that could still win)."""
    bar = statistics.median(sequential_s)
    return 2 * sum(t * (1 + margin) >= bar for t in packed_s) > planned


def choose_strategy(evidence: ProbeEvidence, margin: float = PACKING_MARGIN) -> str:
    """Step 3 of the rule: ``packed`` when packing's fastest and median samples are both at least
    ``margin`` faster than one at a time's (t_packed · (1 + margin) < t_sequential for each), else
    ``sequential``: a close call or a split verdict trains one at a time, which is never slower
    than ``batchlab.train``."""
    if not evidence.packed_s:
        return SEQUENTIAL
    wins = (
        min(evidence.packed_s) * (1 + margin) < min(evidence.sequential_s)
        and statistics.median(evidence.packed_s) * (1 + margin) < statistics.median(evidence.sequential_s)
    )
    return PACKED if wins else SEQUENTIAL


def verdict(evidence: ProbeEvidence, margin: float = PACKING_MARGIN) -> tuple[str, str]:
    """The rule of the module docstring on ``evidence``: the strategy and why, in words."""
    if packing_ruled_out(evidence, margin):
        return SEQUENTIAL, (f"trained one at a time (packing cannot be faster by {margin:.0%}: a packed "
                            f"model-update's passes over its parameters take about as long as one update "
                            f"alone)")
    if choose_strategy(evidence, margin) == PACKED:
        return PACKED, f"packed (faster by more than {margin:.0%})"
    return SEQUENTIAL, f"trained one at a time (packing not faster by {margin:.0%} in fastest and median)"


def packed_passes(configs: Sequence[RunConfig]) -> int:
    """fp32 passes over P that the packed step's kernels make per model-update, counted low (the
    weights' reads for the input gradients and the reset of λ = 0 rows are left out).

    From :class:`~batchlab.training.packed_step.PackedStep` and
    :func:`batchlab.optim.functional.momentum_rows_`: the forward pass reads θ (1), the backward
    pass writes g (1), m ← λm − ηg is ``mul_`` (reads and writes m: 2) then ``addcmul_`` (reads m
    and g, writes m: 3), θ ← θ + m reads θ and m and writes θ (3): 10. Weight decay in any run
    adds g + wd·θ into a new tensor (3); Nesterov in any run adds a second ``addcmul_`` over θ (3).
    """
    passes = 10
    if any(config.weight_decay != 0.0 for config in configs):
        passes += 3
    if any(config.nesterov for config in configs):
        passes += 3
    return passes


def packed_bound_s(parameters: int, bandwidth: float, passes: int) -> float:
    """The least time of one packed model-update: ``passes`` fp32 passes over P at ``bandwidth``."""
    return passes * FLOAT32_BYTES * parameters / bandwidth


def working_set_bytes(parameters: int, runs: int) -> int:
    """θ, g and m of ``runs`` runs of P parameters, in bytes."""
    return WORKING_SET_COPIES * FLOAT32_BYTES * parameters * runs


def pack_label(config: RunConfig, count: int) -> str:
    """A pack's name in its reason: ``16 runs of mlp B=1``."""
    return f"{count} run{'s' if count != 1 else ''} of {config.model} B={config.batch_size}"


def _load_splits(config: RunConfig, device: torch.device) -> "datasets.Splits":
    from batchlab.data.identity import load_splits

    return load_splits(config, device)


def _split_by_gpu_memory(group: list[RunConfig], device: torch.device, splits, task=None) -> list[Pack]:
    """Cut ``group`` into packs of at most the number of runs that fit in free GPU memory, with
    sizes as equal as possible (100 runs with room for 64 become 50 + 50)."""
    batch_size = resolve_batch_size(group[0].batch_size, len(splits.train))
    free_bytes, _ = torch.cuda.mem_get_info(device)
    example = splits.train.x[:1].cpu() if task is not None else None  # a user's inputs may not be float
    per_run = bytes_per_packed_run(group[0], splits.input_shape, splits.num_classes, batch_size, task=task,
                                   example=example)
    fitting = max(1, int(GPU_MEMORY_SHARE * free_bytes // per_run))
    count = math.ceil(len(group) / fitting)
    size = math.ceil(len(group) / count)
    reason = (
        f"{pack_label(group[0], len(group))}: packed {size} at a time on {device} "
        f"({free_bytes / 2**30:.1f} GiB free, ~{per_run / 2**20:.1f} MiB per run)"
    )
    return [Pack(tuple(group[i : i + size]), PACKED, reason) for i in range(0, len(group), size)]


def bytes_per_packed_run(
    config: RunConfig, input_shape, num_classes: int, batch_size: int, *, task: "Task | None" = None,
    example: torch.Tensor | None = None,
) -> int:
    """Estimated device memory of one run in a pack, in bytes (float32)::

        4 · (STATE_COPIES · P + batch_size · ACTIVATION_COPIES · A)

    P: parameter count; A: elements of the input and of every module's output for one example,
    counted on a CPU copy of the model (a task's model, on ``example``, one input of its data).
    """
    with torch.random.fork_rng(devices=[]):
        model = _throwaway_model(config, input_shape, num_classes, task)
    parameters = count_parameters(model)
    activations = activation_elements_per_example(model, input_shape, example)
    return 4 * (STATE_COPIES * parameters + batch_size * ACTIVATION_COPIES * activations)


def activation_elements_per_example(model: nn.Module, input_shape, example: torch.Tensor | None = None) -> int:
    """Elements of the input plus the outputs of all leaf modules, for one example (zeros of
    ``input_shape``, or ``example``, a batch of one)."""
    total = [math.prod(input_shape)]

    def count(_module: nn.Module, _inputs, output: torch.Tensor) -> None:
        total[0] += output[0].numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [leaf.register_forward_hook(count) for leaf in leaves]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape) if example is None else example)
    finally:
        for handle in handles:
            handle.remove()
    return total[0]


def _throwaway_model(config: RunConfig, input_shape, num_classes: int, task: "Task | None") -> nn.Module:
    """A model of the run's architecture whose weights do not matter (the caller forks the RNG)."""
    if task is not None:
        return task.build_model()
    return build_model(config.model, input_shape, num_classes, config.hidden)


def measurement_cost(runs: int) -> int:
    """Model-updates that deciding can cost a pack of ``runs``: the throwaway updates of one run
    alone, and the packed probe steps (real updates, but slower ones if packing loses)."""
    return PROBE_SINGLE_UPDATES + PROBE_SINGLE_WARMUP + (PROBE_PACKED_STEPS - 1) + PROBE_PACKED_STEPS * runs


def planned_updates(config: RunConfig, n_train: int) -> int:
    """Updates one run of ``config`` makes unless it diverges or stops early."""
    batch_size = resolve_batch_size(config.batch_size, n_train)
    per_epoch = len(datasets.batch_index_slices(n_train, batch_size, drop_last=config.drop_last))
    total = config.epochs * per_epoch
    return total if config.max_updates is None else min(total, config.max_updates)
