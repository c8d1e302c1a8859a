"""One process of a data-parallel run: ``train_on_rank(config) -> RunResult | None``.

Started by torchrun (``torchrun --nproc-per-node N -m batchlab.distributed …``) or by
:func:`batchlab.distributed.launch.train_on_processes`; reads its place from torchrun's
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``).

* Every process loads the data onto its own device (gloo on the CPU, NCCL on ``cuda:LOCAL_RANK``),
  builds the model from the run's seed exactly as a one-process run does
  (:func:`batchlab.training.loop.initial_model_and_optimizer`) and wraps it in
  ``DistributedDataParallel``; batch norm becomes ``SyncBatchNorm`` when the plan says so.
* Each epoch every process draws the same permutation from (seed, epoch) and takes its shard of
  each global batch (:mod:`batchlab.distributed.plan`), so the updates are the one-process
  run's updates of batch B.
* **Process 0 owns the store**: it alone claims, logs, checkpoints and finishes the run through
  :class:`~batchlab.training.session.RunSession`, and evaluates on the full splits after each
  epoch; it tells the others what the claim found (a stored result, a checkpoint to resume
  from, an error) and whether the run ends after each epoch. Checkpoints have the one-process
  format (the unwrapped model's state dict), so either kind of run resumes the other's.
* When a process dies, torchrun (``--max-restarts``) starts all of them again; process 0's new
  claim takes the run over from the dead one and resumes from the last checkpoint.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from batchlab import data as datasets
from batchlab.config import RunConfig
from batchlab.data.identity import load_splits
from batchlab.runtime.device import resolve_device, synchronize
from batchlab.distributed.plan import DataParallelPlan, plan_data_parallel
from batchlab.runtime.environment import describe_environment
from batchlab.errors import ConfigError, UserError
from batchlab.training.driver import EpochWork, checkpoint_payload, drive, restore
from batchlab.training.loop import (
    evaluate,
    initial_model_and_optimizer,
    new_session,
    set_learning_rate,
    task_config_and_splits,
)
from batchlab.training.objective import CLASSIFICATION
from batchlab.training.methods import run_shape
from batchlab.training.progress import EpochProgress
from batchlab.training.result import RunResult
from batchlab.training.session import RunSession, open_store
from batchlab.training.update_timer import UpdateTimer

if TYPE_CHECKING:
    from batchlab.store import RunStore
    from batchlab.task import Task


class Place:
    """Where this process sits in the job, as torchrun's environment says."""

    def __init__(self) -> None:
        missing = [name for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK") if name not in os.environ]
        if missing:
            raise ConfigError(
                f"not started by torchrun ({', '.join(missing)} unset); allowed: "
                "`torchrun --nproc-per-node N -m batchlab.distributed …` or `batchlab train --nproc N …`"
            )
        self.rank = int(os.environ["RANK"])
        self.world_size = int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ["LOCAL_RANK"])
        self.local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size))
        self.restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0))
        self.machines = int(os.environ.get("GROUP_WORLD_SIZE", 1))


def rank_device(name: str, place: Place) -> torch.device:
    """The process's device: the CPU, or GPU ``LOCAL_RANK`` of this machine (one GPU each)."""
    device = resolve_device(name)
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count()
    if place.local_rank >= count:
        raise ConfigError(
            f"{place.local_world_size} processes on this machine but {count} CUDA device(s); "
            f"allowed: at most {count} processes per machine on CUDA"
        )
    return torch.device("cuda", place.local_rank)


def train_on_rank(
    config: RunConfig,
    *,
    store: "RunStore | str | Path | None" = None,
    force: bool = False,
    progress: bool | None = None,
    keep_weights: bool = True,
    sync_bn: bool | None = None,
    task: "TaskSource" = None,
) -> RunResult | None:
    """Train this process's share of ``config``; process 0 returns the run's result, the others
    None. Arguments as :func:`batchlab.train` (``store`` is opened by process 0 only);
    ``sync_bn`` as :func:`batchlab.distributed.plan.plan_data_parallel`; ``task`` a user's model
    and data (:func:`resolve_task`), whose data must fit on the device (streamed data is refused).

    Bad input (configuration, data, a split that does not divide) raises :class:`UserError` on
    every process before the process group forms and before the store is touched.
    """
    place = Place()
    device = rank_device(config.device, place)
    if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # The processes of one machine share its cores: each takes its part, so none waits on another.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // place.local_world_size))
    user_task = resolve_task(task)
    config, splits = task_config_and_splits(config, None if user_task is not None else load_splits(config, device),
                                            user_task, device)
    check_resident(splits, user_task)
    plan = plan_data_parallel(config, len(splits.train), place.world_size, device.type, sync_bn, user_task)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    _init_process_group("nccl" if device.type == "cuda" else "gloo", place)
    try:
        result = _train(config, plan, place, device, splits, store=store, force=force, progress=progress,
                        keep_weights=keep_weights, task=user_task)
        # Leave together: a process that tore its group down while process 0 was still storing the
        # run has aborted under load ("terminate called without an active exception").
        dist.barrier()
        return result
    finally:
        dist.destroy_process_group()


# A user's task as the launcher hands it to the processes: a :class:`batchlab.Task` whose functions
# live in importable modules, or the ``(model file, data file)`` references of ``--model-file`` /
# ``--data-file``, which each process imports itself (a module imported from a path has no name a
# new process could import it by).
TaskSource = Any


def resolve_task(source: TaskSource) -> "Task | None":
    """The :class:`batchlab.Task` of ``source`` (None: a registry run)."""
    if source is None or not isinstance(source, tuple):
        return source
    from batchlab.task.files import task_from_files

    return task_from_files(*source)


def check_resident(splits: "datasets.Splits", task: "Task | None") -> None:
    """Data-parallel shards index the training tensors on the device: streamed data is refused."""
    if task is not None and not isinstance(splits.train, datasets.TensorSplit):
        raise ConfigError(f"user model {task.name}: its data is streamed (too large for the device), which a "
                          "data-parallel run cannot shard; allowed: data that fits on the device, or no --nproc")


def _init_process_group(backend: str, place: Place) -> None:
    """Join the job's process group.

    torchrun's agent lends its own key-value store to the workers (``TORCHELASTIC_USE_AGENT_STORE``)
    and, in torch 2.5 and later, keeps that store across restarts, so restarted workers can read
    the addresses of the previous attempt's dead workers and fail to connect (PyTorch issue
    #135712). On one machine every worker of an attempt has the same ``TORCHELASTIC_RESTART_COUNT``,
    so a restarted attempt keeps its keys apart under that count. Across machines the count is
    per machine; there, restarts need ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` on every torchrun,
    which gives each attempt a fresh store.
    """
    shared = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    if not (shared and place.restart > 0 and place.machines == 1):
        dist.init_process_group(backend)
        return
    agent_store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), place.world_size,
                                is_master=False)
    dist.init_process_group(backend, store=dist.PrefixStore(f"batchlab-attempt-{place.restart}", agent_store),
                            rank=place.rank, world_size=place.world_size)


def _train(
    config: RunConfig,
    plan: DataParallelPlan,
    place: Place,
    device: torch.device,
    splits: "datasets.Splits",
    *,
    store: "RunStore | str | Path | None",
    force: bool,
    progress: bool | None,
    keep_weights: bool,
    task: "Task | None" = None,
) -> RunResult | None:
    owner = place.rank == 0
    session = new_session(config, open_store(store) if owner else None, device, splits, task, force=force,
                          keep_weights=keep_weights, execution=plan.execution)
    objective = task.objective if task is not None else CLASSIFICATION
    # The global batch's shape and learning-rate schedule, exactly as one process has them.
    shape = run_shape(config, len(splits.train))
    model, optimizer = initial_model_and_optimizer(config, splits, device, task, shape=shape)
    if plan.sync_batch_norm:
        # The converted layers keep the same parameter objects, so the optimizer stays valid.
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)

    ended, stored = _agree_on_start(session, owner, _environment(device, plan, place))
    if ended:
        return stored
    restore(model, optimizer, session.checkpoint)
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    step = RankStep(ddp, model, optimizer, splits.train, objective, shape, config, plan, place.rank)
    reporter = EpochProgress(config.epochs, enabled=progress if owner else False,
                             label=f"{config.model} B={plan.batch_size} N={plan.world_size}")
    shape_keys = {"batch_size": plan.batch_size, "n_train": len(splits.train), "updates_per_epoch": len(plan.slices)}
    results = drive(step, [session], splits, objective, reporter, shape=shape_keys, owner=owner)
    return results[0] if owner else None


class RankStep:
    """One process's share of a data-parallel run, for the epoch driver
    (:mod:`batchlab.training.driver`): each update takes this process's shard of the global batch
    (:mod:`batchlab.distributed.plan`), whose gradients DDP averages over the processes.

    Only process 0 evaluates (the driver does not ask the others), and it tells the others which
    runs end after each epoch (:meth:`agree`).
    """

    def __init__(self, ddp: DistributedDataParallel, model: nn.Module, optimizer: torch.optim.Optimizer,
                 train: "datasets.TensorSplit", objective, shape, config: RunConfig, plan: DataParallelPlan,
                 rank: int) -> None:
        self.ddp, self.model, self.optimizer, self.train, self.objective = ddp, model, optimizer, train, objective
        self.shape, self.config, self.plan, self.rank = shape, config, plan, rank
        self.device = next(model.parameters()).device
        self.timer = UpdateTimer(self.device)

    def train_epoch(self, epoch: int, updates: int, limit: int | None) -> EpochWork:
        config, plan, ddp, optimizer, timer = self.config, self.plan, self.ddp, self.optimizer, self.timer
        x_all, y_all = self.train.x, self.train.y
        slices = plan.slices if limit is None else plan.slices[:max(0, limit)]
        ddp.train()
        order = datasets.epoch_permutation(len(self.train), epoch - 1, config.seed, config.shuffle).to(self.device)
        losses: list[torch.Tensor] = []
        synchronize(self.device)
        epoch_start = time.perf_counter()
        for update, (batch_start, batch_end) in enumerate(slices, start=updates):
            timer.start()
            low, high = plan.shard(batch_start, batch_end, self.rank)
            index = order[low:high]
            set_learning_rate(optimizer, self.shape.schedule.lr_at(update))
            # The objective's batch mean times the shard's size: the shard's summed loss.
            shard_loss = self.objective.loss(ddp(x_all[index]), y_all[index]) * len(index)
            loss = shard_loss * plan.loss_weight(batch_start, batch_end)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # DDP all-reduces (averages) the gradients here
            optimizer.step()
            timer.stop()
            losses.append(loss.detach())
        # The epoch's loss sum and its first update's loss, reduced together: Σ over processes of
        # N/b·Σ_shard ℓ is N times each batch's mean loss.
        sums = torch.stack([torch.stack(losses).sum(), losses[0]]) if losses else torch.zeros(2, device=self.device)
        dist.all_reduce(sums)
        synchronize(self.device)
        seconds = time.perf_counter() - epoch_start
        timer.flush()
        loss_sum, first = (sums / plan.world_size).tolist()
        return EpochWork(len(slices), seconds, [loss_sum], [first] if updates == 0 and losses else None)

    def evaluate(self, split, rows=None) -> list[tuple[float, float]]:
        return [evaluate(self.model, split, objective=self.objective)]

    def checkpoint(self, row: int, epoch: int, updates: int) -> dict[str, Any]:
        # The unwrapped model's state dict: the one-process format, so either kind resumes the other.
        return checkpoint_payload(epoch, updates, self.model.state_dict(), self.optimizer.state_dict())

    def weights(self, row: int) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def keep(self, rows: list[int]) -> None:
        """One run: it never goes on without itself."""

    def agree(self, ending: list[bool]) -> list[bool]:
        return [_broadcast(ending[0])]

    def timing(self) -> dict[str, Any]:
        return self.timer.summary()


def _agree_on_start(
    session: RunSession, owner: bool, environment: dict[str, Any]
) -> tuple[bool, RunResult | None]:
    """Process 0 claims the run (:meth:`RunSession.claim`, the one run decision); every process
    learns the outcome and takes process 0's session state (its checkpoint, where it resumes).
    Returns ``(ended, stored)``: whether the run needs no training, and on process 0 the stored
    result. A :class:`UserError` of the claim is raised on every process."""
    message: list[Any] = [None]
    stored = None
    if owner:
        try:
            stored = session.claim(environment)
            message = [{"error": None, "stored": stored is not None, "checkpoint": session.checkpoint,
                        "start_epoch": session.start_epoch, "updates": session.updates}]
        except UserError as error:
            message = [{"error": str(error)}]
            dist.broadcast_object_list(message, src=0)
            raise
    dist.broadcast_object_list(message, src=0)
    outcome = message[0]
    if outcome["error"] is not None:
        raise UserError(outcome["error"])
    if not owner and not outcome["stored"]:
        session.checkpoint, session.start_epoch, session.updates = (
            outcome["checkpoint"], outcome["start_epoch"], outcome["updates"])
    return outcome["stored"], stored


def _broadcast(flag: bool) -> bool:
    """Process 0's ``flag``, on every process."""
    tensor = torch.tensor([int(flag)], dtype=torch.int64,
                          device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def _environment(device: torch.device, plan: DataParallelPlan, place: Place) -> dict[str, Any]:
    """Process 0's environment, plus how the run was spread over processes."""
    return describe_environment(device) | {
        "data_parallel": {
            "processes": place.world_size,
            "processes_per_machine": place.local_world_size,
            "backend": dist.get_backend(),
            "sync_batch_norm": plan.sync_batch_norm,
            "restart": place.restart,
        }
    }
