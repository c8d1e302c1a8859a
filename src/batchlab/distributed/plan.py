"""How one run's global batch is cut over data-parallel processes, checked before training.

Every process walks the same epoch permutation (:func:`batchlab.data.epoch_permutation`, drawn
from (seed, epoch)) in the same global batches of B examples as a one-process run; process r of
N takes the contiguous shard ``[start + r·b//N, start + (r+1)·b//N)`` of a batch of b examples.
Full batches (b = B) therefore split into N equal shards, which is why B must be a multiple of N.

**The last partial batch** (kept unless ``drop_last``) is split by the same rule, so its shards
may differ in size by one. Each process's loss is ``N/b · Σ_shard ℓ_i``; DistributedDataParallel
averages gradients over the N processes, so the update follows ``1/b · Σ_batch ∇ℓ_i``, the mean
loss over the whole batch, exactly as one process computes it (Goyal et al. 2017, §3: the
per-worker loss is scaled so the all-reduced gradient is that of the global mini-batch).

**The run id.** A data-parallel run computes the same updates as one process of batch B; only
the order of float additions in the gradient all-reduce differs (a relative difference near
1e-7 per update, the same order as changing the number of CPU threads, which is not part of the
id either). Such a run therefore shares the one-process run's id — a stored result is reused
across process counts and a checkpoint of either resumes in the other — and the process count is
recorded in the run's environment. Batch norm with statistics per process (over B/N examples, not
B) is a different computation — Hoffer et al. 2017's ghost batch norm with G = B/N — so such a
run's id names it (``execution``). Dropout masks cannot be drawn per shard as one process draws
them for the whole batch, so models with dropout are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batchlab.config import RunConfig, resolve_batch_size
from batchlab.data import batch_index_slices
from batchlab.errors import ConfigError
from batchlab.models.registry import get_model_spec

# How many divisors of B an error message lists before "…".
_SHOWN_DIVISORS = 8


@dataclass(frozen=True)
class DataParallelPlan:
    """What every process needs to know about its share of the run."""

    world_size: int
    batch_size: int
    slices: tuple[tuple[int, int], ...]
    sync_batch_norm: bool
    execution: dict[str, Any] | None

    def shard(self, start: int, end: int, rank: int) -> tuple[int, int]:
        """Process ``rank``'s contiguous part of the global batch ``[start, end)``."""
        size = end - start
        return start + rank * size // self.world_size, start + (rank + 1) * size // self.world_size

    def loss_weight(self, start: int, end: int) -> float:
        """N/b: turns a shard's summed loss into the share whose all-reduced mean is the
        global batch's mean loss."""
        return self.world_size / (end - start)


def plan_data_parallel(
    config: RunConfig, n_train: int, world_size: int, device_type: str, sync_bn: bool | None,
    task: Any = None,
) -> DataParallelPlan:
    """Check that ``config`` can be trained on ``world_size`` processes and say how.

    ``sync_bn`` None means synchronized batch norm where torch provides it (``SyncBatchNorm``,
    CUDA only) and per-process statistics elsewhere; True on the CPU is refused. ``task``: the
    user's model (:class:`batchlab.Task`) when the run trains one, whose layers say whether it
    has batch norm or dropout (else the registry model's).
    Raises :class:`ConfigError` (one line) for anything that cannot be split as described in the
    module docstring.
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ConfigError(f"process count {world_size!r} is invalid; allowed: an integer ≥ 1")
    spec = task if task is not None else get_model_spec(config.model)
    batch_size = resolve_batch_size(config.batch_size, n_train)
    if world_size > batch_size:
        raise ConfigError(
            f"{world_size} processes are more than the batch of {batch_size} examples; "
            f"allowed: a process count that divides the batch ({_divisors(batch_size)})"
        )
    if batch_size % world_size:
        raise ConfigError(
            f"the batch of {batch_size} examples does not split evenly over {world_size} processes; "
            f"allowed: a process count that divides it ({_divisors(batch_size)})"
        )
    if spec.has_dropout and world_size > 1:
        raise ConfigError(
            f"model {config.model} uses dropout, whose masks data-parallel processes cannot draw as "
            "one process draws them; allowed: a model without dropout (mlp, keskar-f1, cnn)"
        )
    for field, flag, what in (("init_from", "--init-from", "start from another run's weights"),
                              ("continue_from", "--continue-from", "continue another run")):
        if getattr(config, field) is not None and world_size > 1:
            raise ConfigError(
                f"a data-parallel run cannot {what} ({field}): its processes may not share the store; "
                f"allowed: {flag} without --nproc"
            )
    if sync_bn and device_type != "cuda" and spec.has_batch_norm and world_size > 1:
        raise ConfigError(
            f"synchronized batch norm needs CUDA (torch's SyncBatchNorm), not {device_type}; "
            "allowed: --no-sync-bn (statistics per process) or a CUDA device"
        )
    sync = bool(spec.has_batch_norm and world_size > 1 and (device_type == "cuda" if sync_bn is None else sync_bn))
    per_process_bn = spec.has_batch_norm and world_size > 1 and not sync
    execution = {"processes": world_size, "batch_norm": "per-process"} if per_process_bn else None
    slices = batch_index_slices(n_train, batch_size, drop_last=config.drop_last)
    return DataParallelPlan(world_size, batch_size, slices, sync, execution)


def _divisors(n: int) -> str:
    found = [d for d in range(1, n + 1) if n % d == 0]
    shown = ", ".join(str(d) for d in found[:_SHOWN_DIVISORS])
    return shown + (", …" if len(found) > _SHOWN_DIVISORS else "")
