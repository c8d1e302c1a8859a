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
     own loop as its training is (each batch's gather included, as in t_K); the copy's updates
     are the run's own next ones, and the run goes on from them if the pack goes one at a time,
     so deciding throws away a few updates of one run (a few more per turn of step 3) only when
     the pack goes on packed;
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
  3. otherwise the pack makes real packed steps (t_K: step time / K; the first step, vmap's first
     call, left out) in turns with updates of the copy of step 1: a turn is ``PROBE_TURN_STEPS``
     timed packed steps, then ``PROBE_TURN_UNTIMED`` untimed updates of the copy (they bring its
     state back into the cache) and ``PROBE_TURN_TIMED`` timed ones; the first turn's updates
     alone are those of step 1, timed just before (five updates of the copy fewer, which are
     thrown away when the pack goes on packed: ~0.3 ms each for 784-64-10 at B = 16 on a 2-core
     CPU, where the whole choice cost 2-4 % of a 0.55 s sweep). The two ways are timed in
     turns, so a burst of load from elsewhere (on a shared or virtual machine they last seconds)
     falls on both, and each turn gives one ratio r = median t₁ / median t_K. The turns are a
     sequential test (:func:`turns_verdict`) of x = ln r − ln(1 + m): from ``PROBE_MIN_TURNS``
     turns on, the median of x is compared with its standard error, 1.2533 · σ / √n, where σ is
     the spread of one turn (1.4826 × the median absolute deviation once three turns are in, at
     least ``TURN_SPREAD_FLOOR``; ``TURN_SPREAD_PRIOR`` before): **packed** once the median is
     above ``CONFIDENCE_Z`` standard errors, **one at a time** once it is below minus that, from
     where the runs are (same epoch, next batch). Two options far apart are told apart in one or
     two turns, which keeps the probe short where packing loses badly; two close ones take more
     turns. The turns stop at a budget (:func:`probe_over_budget`): what deciding has cost so
     far — its wall time from the copy of step 1 on (the copy's updates, the bandwidth reading,
     stacking, the first packed step and the turns), less what its packed steps' updates would
     have cost one at a time at the median t₁ — may reach ``PROBE_COST_SHARE`` of the pack's
     remaining training at t₁ (the first turn is always taken), and at most
     ``PROBE_MAX_TURNS`` turns fit in the probe's epoch
     (:func:`probe_turn_room`). So a turn that costs much (a packed step of a large model that
     loses, five updates alone of 3-5 ms) is taken only while the pack's training is long enough
     to repay it, and a cheap one (a small model) as often as the question needs. A test still
     open then goes by the median turn: packed when it is above 1 + m. It is left open where the
     two ways are close, so that either choice gives up little, or where the pack's training is
     too short to repay another turn. A single sample per way once chose packing at 1.33 vs
     2.23 ms per model-update for the lecture's MLP at B = 16 on a quiet 2-core CPU, then
     trained at 0.78× the speed of one at a time; a fixed 10 % margin on three pairs of single
     samples stayed one at a time where packing was 1.1× faster (784-64-10, B = 128), and pairs
     of single samples went packed at 1.06-1.13 where packing trained at 0.85×
     (784-512-512-10, B = 128): hence a median of several updates alone in each turn, and as
     many turns as the question needs and the training repays.

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
# Timed updates of a copy of one run, for the traffic bound and as the first turn's updates alone
# (hence as many as a turn times), after PROBE_SINGLE_WARMUP untimed ones (a fresh copy's first
# updates are slow).
PROBE_SINGLE_FIRST = 3
PROBE_SINGLE_WARMUP = 3
# One turn of step 3: PROBE_TURN_STEPS timed packed step(s), then PROBE_TURN_UNTIMED untimed and
# PROBE_TURN_TIMED timed updates of the copy, compared by their medians. After a packed step, the
# first update alone took 1.3-1.5x and the second still 1.05-1.3x the third and later ones (2-core
# CPU, 784-512-512-10 at B = 16 and 784-64-10 at B = 128), which is not what training one run at a
# time pays. A packed step is already the mean of K model-updates; one update alone is not: turns
# of one packed step and one update alone (after one untimed) spread from 0.78 to 1.13 for a pack
# whose turns of several updates alone measured 0.77-0.84 (784-512-512-10, B = 128).
PROBE_TURN_STEPS = 1
PROBE_TURN_UNTIMED = 2
PROBE_TURN_TIMED = PROBE_SINGLE_FIRST
# Packing must be faster than one at a time by this share to be chosen (one at a time, what
# batchlab.train does, is the default a close call falls to).
PACKING_MARGIN = 0.02
# The test of step 3: at least PROBE_MIN_TURNS turns, at most PROBE_MAX_TURNS, and no more once
# deciding has cost PROBE_COST_SHARE of the pack's remaining training (probe_over_budget).
PROBE_MIN_TURNS = 1
PROBE_MAX_TURNS = 12
PROBE_COST_SHARE = 0.015
# Spread (standard deviation) of one turn's ln(t₁ / t_K): assumed before three turns are in (turns
# spread by about 0.1 on a 2-core virtual machine), and never taken below the floor.
TURN_SPREAD_PRIOR = 0.15
TURN_SPREAD_FLOOR = 0.03
# Standard errors the median turn must stand from the margin for the test to decide before its budget.
CONFIDENCE_Z = 2.0
# The median of n samples of a normal law has a standard error of about sqrt(π/2) · σ / √n.
MEDIAN_ERROR_FACTOR = math.sqrt(math.pi / 2)
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
    can take (``bound_s``, :func:`packed_bound_s` at ``bandwidth``; None when not estimated).
    With packed samples, the samples came in turns of ``turn_steps`` packed and ``turn_timed``
    one-at-a-time samples each (:func:`turn_ratios`); ``sequential_s`` then holds the turns' own."""

    packed_s: tuple[float, ...]
    sequential_s: tuple[float, ...]
    bound_s: float | None = None
    bandwidth: float | None = None
    turn_steps: int = 1
    turn_timed: int = 1

    def __post_init__(self) -> None:
        if not self.sequential_s or (not self.packed_s and self.bound_s is None):
            raise ValueError("probe evidence needs samples of one at a time, and packed samples or a bound")
        if self.packed_s and len(self.packed_s) * self.turn_timed != len(self.sequential_s) * self.turn_steps:
            raise ValueError("probe evidence needs whole turns of packed and one-at-a-time samples")

    @property
    def turns(self) -> int:
        return len(self.packed_s) // self.turn_steps

    def to_dict(self) -> dict:
        return {"packed_s": list(self.packed_s), "sequential_s": list(self.sequential_s), "bound_s": self.bound_s,
                "bandwidth_bytes_per_s": self.bandwidth, "turn_steps": self.turn_steps,
                "turn_timed": self.turn_timed}

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


def turn_ratios(evidence: ProbeEvidence) -> list[float]:
    """Each turn's t₁ / t_K: the median of its one-at-a-time samples over the median of its packed
    ones (how many times faster packing was in that turn)."""
    steps, timed = evidence.turn_steps, evidence.turn_timed
    return [statistics.median(evidence.sequential_s[turn * timed:(turn + 1) * timed])
            / statistics.median(evidence.packed_s[turn * steps:(turn + 1) * steps])
            for turn in range(evidence.turns)]


def turn_log_ratios(evidence: ProbeEvidence, margin: float = PACKING_MARGIN) -> list[float]:
    """x = ln(t₁ / t_K) − ln(1 + margin) for each turn: above 0 where packing was faster by more
    than ``margin`` in that turn."""
    return [math.log(ratio) - math.log1p(margin) for ratio in turn_ratios(evidence)]


def turns_verdict(evidence: ProbeEvidence, margin: float = PACKING_MARGIN) -> str | None:
    """Step 3's sequential test on the turns so far: ``packed`` or ``sequential`` once the median of
    :func:`turn_log_ratios` stands ``CONFIDENCE_Z`` standard errors from 0, None while it does not
    (or with fewer than ``PROBE_MIN_TURNS`` turns). The standard error of the median of n turns is
    1.2533 · σ / √n, σ = 1.4826 · MAD of the turns from three turns on (at least
    ``TURN_SPREAD_FLOOR``), ``TURN_SPREAD_PRIOR`` before: robust to a turn hit by a burst of load."""
    x = turn_log_ratios(evidence, margin)
    if len(x) < max(1, PROBE_MIN_TURNS):
        return None
    center = statistics.median(x)
    spread = TURN_SPREAD_PRIOR if len(x) < 3 else max(
        TURN_SPREAD_FLOOR, 1.4826 * statistics.median(abs(value - center) for value in x))
    error = MEDIAN_ERROR_FACTOR * spread / math.sqrt(len(x))
    if center > CONFIDENCE_Z * error:
        return PACKED
    if center < -CONFIDENCE_Z * error:
        return SEQUENTIAL
    return None


def choose_strategy(evidence: ProbeEvidence, margin: float = PACKING_MARGIN) -> str:
    """Step 3 of the rule: the test's verdict, or, where the turns left it open, ``packed`` when
    the median turn is faster packed by more than ``margin``, else ``sequential``."""
    if not evidence.packed_s:
        return SEQUENTIAL
    decided = turns_verdict(evidence, margin)
    if decided is not None:
        return decided
    return PACKED if statistics.median(turn_log_ratios(evidence, margin)) > 0 else SEQUENTIAL


def verdict(evidence: ProbeEvidence, margin: float = PACKING_MARGIN) -> tuple[str, str]:
    """The rule of the module docstring on ``evidence``: the strategy and why, in words. The bound
    decides only before any packed step (step 2); once packed steps were timed, they decide."""
    if not evidence.packed_s and packing_ruled_out(evidence, margin):
        return SEQUENTIAL, (f"trained one at a time (packing cannot be faster by {margin:.0%}: a packed "
                            f"model-update's passes over its parameters take about as long as one update "
                            f"alone)")
    strategy = choose_strategy(evidence, margin)
    if evidence.packed_s:
        turns = evidence.turns
        how = "decided" if turns_verdict(evidence, margin) is not None else "left it open, the median turn decided"
        measured = (f"packing {statistics.median(turn_ratios(evidence)):.2f}× as fast in the median of "
                    f"{turns} turn{'s' if turns != 1 else ''}; the turns {how}")
    else:
        measured = "no packed sample"
    if strategy == PACKED:
        return PACKED, f"packed (faster by more than {margin:.0%}: {measured})"
    return SEQUENTIAL, f"trained one at a time (packing not faster by {margin:.0%}: {measured})"


def probe_turn_room(batches: int) -> int:
    """Turns that fit in the probe's epoch of ``batches`` after the first packed step, at most
    ``PROBE_MAX_TURNS``."""
    return max(0, min(PROBE_MAX_TURNS, (batches - 1) // PROBE_TURN_STEPS))


def probe_over_budget(elapsed_s: float, packed_steps: int, runs: int, alone_s: float, remaining_updates: int,
                      share: float = PROBE_COST_SHARE) -> bool:
    """Whether deciding has cost ``share`` of the pack's remaining training: its ``elapsed_s``
    (everything since the copy of one run was made: the copy's updates, stacking, the packed
    steps), less what its ``packed_steps`` updates of ``runs`` runs (the untimed first one
    included) would have cost one at a time (``alone_s`` each), against ``runs`` ×
    ``remaining_updates`` × ``alone_s``. The copy's updates count as cost even where the run goes
    on from them: which way the pack goes is not known while it decides."""
    spent = elapsed_s - packed_steps * runs * alone_s
    return spent >= share * runs * remaining_updates * alone_s


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
    """Model-updates that deciding costs a pack of ``runs`` at the least: the updates of the copy
    of one run alone, thrown away if the pack goes on packed (step 1's, which are the first
    turn's, then ``PROBE_TURN_UNTIMED + PROBE_TURN_TIMED`` for each further turn of
    ``PROBE_MIN_TURNS``), and the
    packed probe steps (real updates, but slower ones if packing loses; the first one untimed).
    More turns are taken only within
    :func:`probe_over_budget`, a share of the pack's remaining training."""
    further_turns = max(0, PROBE_MIN_TURNS - 1)
    throwaway = PROBE_SINGLE_WARMUP + PROBE_SINGLE_FIRST + (PROBE_TURN_UNTIMED + PROBE_TURN_TIMED) * further_turns
    return throwaway + (PROBE_TURN_STEPS * PROBE_MIN_TURNS + 1) * runs


def planned_updates(config: RunConfig, n_train: int) -> int:
    """Updates one run of ``config`` makes unless it diverges or stops early."""
    batch_size = resolve_batch_size(config.batch_size, n_train)
    per_epoch = len(datasets.batch_index_slices(n_train, batch_size, drop_last=config.drop_last))
    total = config.epochs * per_epoch
    return total if config.max_updates is None else min(total, config.max_updates)
