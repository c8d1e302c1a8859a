"""``batchlab train --nproc N``: one data-parallel run on N local processes, from this process.

Uses torchrun's own machinery in-process (``torch.distributed.launcher.elastic_launch``, what
``torchrun --standalone --nproc-per-node N`` runs): a c10d rendezvous on a free local port, N
worker processes running :func:`batchlab.distributed.trainer.train_on_rank`, and with
``max_restarts`` > 0 a restart of all of them when one dies (the run resumes from its last
checkpoint). Everything that can be checked is checked here first — the configuration, the data,
whether the batch splits over N processes — so bad input is one line and exit code 2 before any
process starts or anything is stored.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from batchlab.config import RunConfig
from batchlab.data.identity import load_splits
from batchlab.runtime.device import resolve_device
from batchlab.distributed.plan import plan_data_parallel
from batchlab.distributed.trainer import TaskSource, check_resident, resolve_task
from batchlab.errors import ConfigError, UserError
from batchlab.training.loop import new_session, task_config_and_splits
from batchlab.training.result import RunResult
from batchlab.training.session import open_store

if TYPE_CHECKING:
    from batchlab.store import RunStore


def train_on_processes(
    config: RunConfig,
    nproc: int,
    *,
    max_restarts: int = 0,
    store: "RunStore | str | Path | None" = None,
    force: bool = False,
    progress: bool | None = None,
    keep_weights: bool = True,
    sync_bn: bool | None = None,
    task: TaskSource = None,
) -> RunResult:
    """Train ``config`` with DistributedDataParallel on ``nproc`` processes of this machine and
    return the run's result (process 0's). ``max_restarts``: how many times the processes are
    started again after one fails. ``task``: a user's model and data, as a :class:`batchlab.Task`
    whose functions the new processes can import, or the ``(model file, data file)`` references
    of ``--model-file``/``--data-file`` (see :data:`batchlab.distributed.trainer.TaskSource`).
    Other arguments as :func:`batchlab.train` and
    :func:`batchlab.distributed.plan.plan_data_parallel`. A run the store holds as ended is
    returned without starting any process (unless ``force``).
    """
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
        raise ConfigError(f"max restarts {max_restarts!r} is invalid; allowed: an integer ≥ 0")
    device = resolve_device(config.device)
    if device.type == "cuda" and isinstance(nproc, int) and nproc > torch.cuda.device_count():
        raise ConfigError(
            f"--nproc {nproc} asks for more processes than the {torch.cuda.device_count()} CUDA "
            "device(s) here; allowed: one process per GPU, or --device cpu"
        )
    user_task = resolve_task(task)
    cpu = torch.device("cpu")
    config, splits = task_config_and_splits(config, None if user_task is not None else load_splits(config, cpu),
                                            user_task, cpu)
    check_resident(splits, user_task)
    plan = plan_data_parallel(config, len(splits.train), nproc, device.type, sync_bn, user_task)
    stored = new_session(config, open_store(store), device, splits, user_task, force=force, keep_weights=keep_weights,
                         execution=plan.execution).stored_result()
    if stored is not None:
        return stored

    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    launch = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=max_restarts,
        monitor_interval=0.1,
    )
    # Workers are new processes: they get the store's path and open it themselves (process 0).
    store_path = getattr(store, "path", store)
    options = {"store": store_path, "force": force, "progress": progress, "keep_weights": keep_weights,
               "sync_bn": sync_bn, "task": task}
    outcomes = elastic_launch(launch, _worker)(config, options)
    kind, value = outcomes[0]
    if kind == "error":
        raise UserError(value)
    return value


def train_from_args(config: RunConfig, args: Any) -> RunResult:
    """``batchlab train --nproc N [--max-restarts R] [--sync-bn|--no-sync-bn]``."""
    if args.nproc is None:
        raise ConfigError("--max-restarts restarts the processes of --nproc; allowed: with --nproc N")
    from batchlab.task.options import task_files_from_args

    files = task_files_from_args(args)
    return train_on_processes(config, args.nproc, max_restarts=args.max_restarts or 0, store=args.store,
                              force=args.force, progress=args.progress, keep_weights=not args.no_weights,
                              sync_bn=args.sync_bn, task=files)


def _worker(config: RunConfig, options: dict[str, Any]) -> tuple[str, Any]:
    """One process: its result (process 0) or None, or the one-line message of bad input."""
    from batchlab.distributed.trainer import train_on_rank

    try:
        return "result", train_on_rank(config, **options)
    except UserError as error:
        return "error", str(error)
