"""The Ray executor: work units run as Ray tasks on a local Ray instance or an existing cluster.

* One task per work unit (see :func:`batchlab.sweep.plan.ray_units`), with ``num_gpus=1`` when
  the cluster has GPUs, else ``num_cpus=1``. A task whose worker process dies is retried by Ray
  (``max_retries`` = :data:`MAX_RETRIES`); an exception raised by training is not retried (it
  would fail the same way) and is reported as a failed unit.
* Workers never write the run store: a store is one SQLite file that the workers of a cluster
  may not share. A task trains its runs into a private scratch store in a temporary folder and
  returns each run's :class:`RunResult`, final weights (CPU tensors) and, with ``keep_state``, final
  training state. The driver alone writes the sweep's store — ``start_run``, every epoch's
  metrics, the weights, the final state, ``finish_run`` — and
  skips a run the store already holds as ended, so a retried task never records a run twice.
* A run that starts from another run's weights (``init_from``) or trains another run on
  (``continue_from``) gets that run shipped with it: the driver reads the source's record, final
  weights and final training state (when kept) from the store, and the task writes them into its
  scratch store before training, so the run starts where it would locally.
* A user's model and data (``--model-file``/``--data-file``) travel with the tasks as one
  object in Ray's object store (:class:`ShippedTask`): the task pickled by cloudpickle, the
  modules imported from the files' own paths by value (no worker could import them by their
  generated names), and the files' neighbours as source. The neighbours shipped are exactly the
  modules the files imported from their own folders while the task was built on the driver
  (:func:`batchlab.task.files.neighbour_modules`: ``helpers.py``, ``utils/layers.py``, …, not the
  whole folder, and never packages installed below it), at most :data:`NEIGHBOUR_BYTES_LIMIT`
  bytes in all. A worker writes them into its scratch folder, puts that folder first on
  ``sys.path`` and only then unpickles the task, so ``from helpers import make_layers`` in a file
  (or in ``make_model``) works there as it did on the driver.
* Resume granularity on Ray is the run: the driver ships each unfinished run's last checkpoint
  from the store (say, of a local sweep that was interrupted) to the task, which resumes from
  it; but checkpoints written while a task trains stay in its scratch store, so a run whose task
  dies, or whose driver is killed, starts again from that shipped checkpoint (or from epoch 1).

Ray is imported only here and only when asked for; without it the one-line error is
:data:`RAY_MISSING`.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchlab.config import RunConfig
from batchlab.errors import ConfigError, UserError
from batchlab.sweep.plan import SweepPlan, WorkUnit
from batchlab.sweep.ray_connect import join_cluster
from batchlab.training.packed import AUTO, PACKED, SEQUENTIAL
from batchlab.training.result import RunResult

if TYPE_CHECKING:
    from batchlab.store import RunStore

RAY_MISSING = "--executor ray needs the ray extra: pip install 'batchlab[ray]'"
# Attempts after the first when a task's worker process dies (node lost, killed, out of memory).
MAX_RETRIES = 3
# The most source a user's task may bring from its files' folders (the neighbour modules).
NEIGHBOUR_BYTES_LIMIT = 16 * 2**20


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(RAY_MISSING) from None
    return ray


class RayCluster:
    """Ray for the length of a sweep: joins ``address`` when given, else starts a local instance
    with ``num_cpus`` CPUs (all of this machine's by default, no dashboard). An instance that was
    already running in this process is used as it is and left running."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.started = False
        self.has_gpus = False

    def __enter__(self) -> "RayCluster":
        if self.address:
            # Short timeouts set before Ray is imported, quiet, one-line error (see ray_connect).
            self.started = join_cluster(self.address)
        ray = import_ray()
        if not ray.is_initialized():
            ray.init(num_cpus=self.num_cpus, include_dashboard=False, logging_level=logging.WARNING)
            self.started = True
        self.has_gpus = ray.cluster_resources().get("GPU", 0) >= 1
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.started:
            import_ray().shutdown()
            self.started = False

    def device_type(self, config: RunConfig) -> str:
        """The device type a worker will train ``config`` on, which its run id is computed with:
        ``auto`` is ``cuda`` on a cluster with GPUs (tasks then ask for one), else ``cpu``."""
        if config.device == "auto":
            return "cuda" if self.has_gpus else "cpu"
        import torch

        try:
            return torch.device(config.device).type
        except (RuntimeError, TypeError):
            raise ConfigError(f"unknown device {config.device!r}; allowed: auto, cpu, cuda, cuda:N, mps") from None


def train_unit(
    configs: tuple[RunConfig, ...],
    strategy: str,
    checkpoints: dict[str, dict],
    keep_weights: bool,
    task: Any = None,
    init_sources: dict[str, tuple[RunResult, dict | None, dict | None]] | None = None,
    keep_state: bool = False,
) -> list[tuple[RunResult, dict | None, dict | None]]:
    """Train one work unit on a Ray worker; returns each run's result, final weights and final
    training state (None when not kept: ``keep_weights``, ``keep_state``).

    The runs are trained into a scratch store in a temporary folder, seeded with the checkpoints
    the driver sent, so they resume exactly as they would locally; nothing of it outlives the task.
    ``task`` is the user's model and data as shipped (:class:`ShippedTask`), or None for
    registry runs; ``init_sources`` the finished runs (result, final weights and final training
    state, each None when not kept) that runs of the unit start from or continue.
    """
    from batchlab.store import RunStore
    from batchlab.training import train
    from batchlab.training.packed import train_pack
    from batchlab.training.session import record_trained_elsewhere

    with tempfile.TemporaryDirectory(prefix="batchlab-ray-") as scratch, ExitStack() as stack:
        if task is not None:
            task = stack.enter_context(task.unpacked(Path(scratch) / "neighbours"))
        store = RunStore(Path(scratch) / "runs.db")
        try:
            for source, weights, state in (init_sources or {}).values():
                record_trained_elsewhere(store, source, weights)
                if state is not None:
                    store.save_final_state(source.run_id, state)
            for identity, payload in checkpoints.items():
                store.save_checkpoint(identity, payload)
            if strategy == PACKED:
                # The worker's own device decides the packing (GPU memory, or a measurement).
                results = list(train_pack(configs, store=store, progress=False, strategy=AUTO, task=task,
                                          keep_state=keep_state))
            else:
                results = [train(config, store=store, progress=False, task=task, keep_state=keep_state)
                           for config in configs]
            return [
                (result, store.load_weights(result.run_id) if keep_weights and store.has_weights(result.run_id) else None,
                 store.load_final_state(result.run_id) if keep_state else None)
                for result in results
            ]
        finally:
            store.close()


def run_ray(
    plan: SweepPlan,
    store: RunStore | None,
    *,
    cluster: RayCluster,
    keep_weights: bool = True,
    keep_state: bool = False,
    force: bool = False,
    on_failure: Callable[[WorkUnit, str], None] | None = None,
) -> Iterator[RunResult]:
    """Submit every unit of ``plan`` as a Ray task and record results as tasks finish.

    ``on_failure(unit, message)`` is called for a unit whose task failed for good; the sweep goes
    on with the others.
    """
    ray = import_ray()
    resources = {"num_gpus": 1} if cluster.has_gpus else {"num_cpus": 1}
    remote = ray.remote(max_retries=MAX_RETRIES, **resources)(train_unit)
    # A user's task goes into Ray's object store once; every unit's worker reads that one copy.
    task = None if plan.task is None else ray.put(_shippable(ray, plan.task))
    pending: dict[Any, WorkUnit] = {}
    for unit in plan.units:
        checkpoints = _checkpoints(unit, store, plan) if store is not None and not force else {}
        strategy = PACKED if unit.strategy == PACKED else SEQUENTIAL
        pending[remote.remote(unit.configs, strategy, checkpoints, keep_weights, task, _init_sources(unit, store),
                              keep_state)] = unit
    recorded: set[str] = set()
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            unit = pending.pop(done[0])
            try:
                outputs = ray.get(done[0])
            except ray.exceptions.RayError as error:
                if on_failure is not None:
                    on_failure(unit, _failure_message(error))
                continue
            for result, weights, state in outputs:
                yield record_result(store, result, weights, force=force and result.run_id not in recorded, state=state)
                recorded.add(result.run_id)
    finally:
        # Interrupted (Ctrl-C, an error while recording): on a cluster that outlives this driver,
        # tasks left running would train for nobody.
        for ref in pending:
            ray.cancel(ref, force=True)


def record_result(store: RunStore | None, result: RunResult, weights: dict | None, *, force: bool = False,
                  state: dict | None = None) -> RunResult:
    """Write a run trained on a worker into ``store`` with its final weights and training state
    (:func:`record_trained_elsewhere`: a run the store already holds as ended is left alone and
    returned as stored, unless ``force``)."""
    from batchlab.training.session import record_trained_elsewhere

    return record_trained_elsewhere(store, result, weights, force=force, state=state)


@dataclass(frozen=True)
class ShippedTask:
    """A user's task on its way to the workers (see the module docstring): ``pickled``, the task
    by cloudpickle; ``neighbours``, the source of each module its files imported from their
    folders, by path relative to the folder."""

    pickled: bytes
    neighbours: dict[str, bytes]

    @contextmanager
    def unpacked(self, folder: Path) -> Iterator[Any]:
        """The task, for the block: the neighbours written under ``folder``, that folder first on
        ``sys.path`` (before the task is unpickled, and while it trains, for imports its functions
        make when called), and ``sys.path`` as before afterwards."""
        from ray import cloudpickle

        from batchlab.task.files import folders_first_on_path

        for relative, source in self.neighbours.items():
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source)
        with folders_first_on_path([folder]):
            yield cloudpickle.loads(self.pickled)


def _shippable(ray: Any, task: Any) -> ShippedTask:
    """``task`` ready to travel: the modules that ``--model-file``/``--data-file`` imported from
    their paths marked to travel by value, and the neighbour modules those files imported beside
    them as source (see the module docstring). A task whose functions live in an importable module
    needs that module importable on every worker (the same working directory on a local instance;
    Ray's ``runtime_env`` on a cluster)."""
    from batchlab.task.files import USER_MODULE_PREFIX, neighbour_modules, user_file_folders

    for name, module in list(sys.modules.items()):
        if name.startswith(USER_MODULE_PREFIX):
            ray.cloudpickle.register_pickle_by_value(module)
    neighbours = {relative: path.read_bytes() for relative, path in neighbour_modules(user_file_folders()).items()}
    size = sum(len(source) for source in neighbours.values())
    if size > NEIGHBOUR_BYTES_LIMIT:
        raise ConfigError(f"the modules your model and data files import from their folders hold {size / 2**20:.0f} "
                          f"MiB of source, too much to ship to Ray workers; allowed: at most "
                          f"{NEIGHBOUR_BYTES_LIMIT // 2**20} MiB (install large code as a package on the workers)")
    return ShippedTask(ray.cloudpickle.dumps(task), neighbours)


def _init_sources(unit: WorkUnit, store: RunStore | None) -> dict[str, tuple[RunResult, dict | None, dict | None]]:
    """The runs the unit's runs start from (``init_from``) or continue (``continue_from``), each
    as its stored result, final weights and final training state (None when not kept); checked
    to exist and be finished when the sweep was planned."""
    from batchlab.training.session import result_from_record

    sources: dict[str, tuple[RunResult, dict | None, dict | None]] = {}
    if store is None:
        return sources
    for config in unit.configs:
        for source in (config.init_from, config.continue_from):
            if source is not None and source not in sources:
                weights = store.load_weights(source) if store.has_weights(source) else None
                sources[source] = (result_from_record(store.get(source), store), weights,
                                   store.load_final_state(source))
    return sources


def _checkpoints(unit: WorkUnit, store: RunStore, plan: SweepPlan) -> dict[str, dict]:
    found = {}
    for config in unit.configs:
        identity = plan.run_id_of(config)
        checkpoint = store.load_checkpoint(identity)
        if checkpoint is not None:
            found[identity] = checkpoint
    return found


def _failure_message(error: BaseException) -> str:
    """One line: the exception raised inside the task when there is one (Ray's own message
    starts with the task's process name instead), else Ray's first line."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        error = cause
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
