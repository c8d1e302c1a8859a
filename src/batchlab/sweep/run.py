"""``run_sweep(spec, store) -> Results``: validate, plan, train what is left, collect everything.

1. Every configuration of the grid is expanded and validated (:meth:`SweepSpec.configs`) before
   anything trains, so a bad value fails the whole sweep upfront with one line.
2. The plan (:func:`~batchlab.sweep.plan.plan_sweep`) skips runs the store already holds as
   ended and groups the rest into work units.
3. An executor trains the units: ``local`` in this process, ``ray`` as Ray tasks. Each run is
   stored under the run id a single ``batchlab train`` would give it.
4. The results come back in grid order, skipped runs read from the store.

Crash-proof by construction: the store is SQLite in WAL mode and every write is one committed
transaction; each run logs every epoch and keeps a checkpoint of its last epoch; run ids are
primary keys. So a sweep killed at any instant (SIGKILL included) and started again with the
same arguments skips what ended, resumes the rest from their checkpoints, and stores no run twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchlab.config import RunConfig
from batchlab.errors import ConfigError
from batchlab.sweep.plan import EXECUTORS, LOCAL, RAY, SweepPlan, WorkUnit, plan_sweep
from batchlab.sweep.progress import SweepProgress
from batchlab.sweep.results import Results
from batchlab.sweep.spec import SweepSpec
from batchlab.training.packed import AUTO, STRATEGIES
from batchlab.training.result import RunResult

if TYPE_CHECKING:
    from batchlab.store import RunStore


def run_sweep(
    spec: SweepSpec | Sequence[RunConfig],
    store: RunStore | str | Path | None,
    *,
    executor: str = LOCAL,
    ray_address: str | None = None,
    ray_cpus: int | None = None,
    progress: bool | None = None,
    force: bool = False,
    packing: str = AUTO,
    keep_weights: bool = True,
    keep_state: bool = False,
    on_plan: Callable[[SweepPlan], None] | None = None,
    task: Any = None,
) -> Results:
    """Train every run of ``spec`` that ``store`` does not already hold; return all of them.

    Args:
        spec: a :class:`SweepSpec` (or a list of RunConfigs).
        store: a :class:`batchlab.store.RunStore`, a path to one, or None (nothing recorded,
            nothing resumed).
        executor: ``local`` (this process) or ``ray`` (Ray tasks; see ray_executor.py).
        ray_address: join this Ray cluster instead of starting a local instance.
        ray_cpus: CPUs of the local Ray instance (default: all of this machine's).
        progress: a bar of runs done with ETA (True), one plain line per run (False), or a bar
            only on a terminal (None).
        force: train every run again, replacing what the store holds.
        packing: ``auto``, ``packed`` or ``sequential`` (local executor; see
            :func:`batchlab.training.packed.plan_packs`).
        keep_weights: keep each run's final weights beside the store.
        keep_state: also keep each finished run's final training state (optimizer state, counts,
            history), so that a run with ``continue_from`` trains it on exactly
            (:mod:`batchlab.training.continuation`); on every executor and packing.
        on_plan: called with the plan before anything trains (the CLI prints it).
        task: a user's own model and data (:class:`batchlab.Task`) for every run (local
            executor only).
    """
    configs = _validated(spec, task)
    _check_choices(executor, packing)
    with _opened(store) as run_store, _cluster(executor, ray_address, ray_cpus) as cluster:
        plan = _plan(configs, run_store, executor, force, packing, cluster, task)
        if on_plan is not None:
            on_plan(plan)
        reporter = SweepProgress(len(plan.run_ids), len(plan.finished), enabled=progress)
        trained: dict[str, RunResult] = {}
        failed: list[tuple[str, str]] = []
        try:
            for result in _execute(plan, run_store, executor, cluster, reporter, keep_weights, keep_state, force,
                                   failed):
                trained[result.run_id] = result
                reporter.run_ended(result)
        finally:
            reporter.close()
        return Results(_in_grid_order(plan, trained, run_store), run_store, skipped=len(plan.finished), failed=failed)


def plan_only(
    spec: SweepSpec | Sequence[RunConfig],
    store: RunStore | str | Path | None,
    *,
    executor: str = LOCAL,
    ray_address: str | None = None,
    ray_cpus: int | None = None,
    force: bool = False,
    packing: str = AUTO,
    task: Any = None,
) -> SweepPlan:
    """The plan :func:`run_sweep` would follow, without training anything (``--dry-run``)."""
    configs = _validated(spec, task)
    _check_choices(executor, packing)
    with _opened(store, create=False) as run_store, _cluster(executor, ray_address, ray_cpus) as cluster:
        return _plan(configs, run_store, executor, force, packing, cluster, task)


def _validated(spec: SweepSpec | Sequence[RunConfig], task: Any = None) -> list[RunConfig]:
    if isinstance(spec, SweepSpec):
        return spec.configs(task)
    configs = list(spec)
    if not all(isinstance(config, RunConfig) for config in configs):
        raise ConfigError("a sweep is a SweepSpec or a list of RunConfig; allowed: batchlab.sweep.SweepSpec(...)")
    from batchlab.sweep.spec import check_runnable

    if task is not None:
        configs = [task.configure(config) for config in configs]
    for config in configs:
        (check_runnable if task is None else task.check_runnable)(config)
    return configs


def _check_choices(executor: str, packing: str) -> None:
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; allowed: {', '.join(EXECUTORS)}")
    if packing not in STRATEGIES:
        raise ConfigError(f"unknown packing {packing!r}; allowed: {', '.join(STRATEGIES)}")


@contextlib.contextmanager
def _opened(store: RunStore | str | Path | None, *, create: bool = True) -> Iterator[RunStore | None]:
    """The store as a RunStore (opened here from a path, and closed again), or None.

    A dry run does not create a store that is not there yet."""
    if store is None or not isinstance(store, (str, Path)):
        yield store
        return
    from batchlab.store import RunStore

    if not create and not Path(store).expanduser().exists():
        yield None
        return
    run_store = RunStore(store)
    try:
        yield run_store
    finally:
        run_store.close()


@contextlib.contextmanager
def _cluster(executor: str, address: str | None, num_cpus: int | None) -> Iterator[Any]:
    if executor != RAY:
        yield None
        return
    from batchlab.sweep.ray_executor import RayCluster

    with RayCluster(address, num_cpus) as cluster:
        yield cluster


def _plan(configs: list[RunConfig], store: RunStore | None, executor: str, force: bool, packing: str, cluster: Any,
          task: Any = None) -> SweepPlan:
    from batchlab.training.continuation import check_continue_source
    from batchlab.training.methods import check_init_source

    for config in configs:  # a run starting from another must find it before anything trains
        check_init_source(config, store)
        check_continue_source(config, store)
    if cluster is None:
        return plan_sweep(configs, store, executor=executor, force=force, packing=packing, task=task)
    return plan_sweep(configs, store, executor=executor, force=force, packing=packing,
                      device_type=cluster.device_type, cluster_has_gpus=cluster.has_gpus, task=task)


def _execute(
    plan: SweepPlan,
    store: RunStore | None,
    executor: str,
    cluster: Any,
    reporter: SweepProgress,
    keep_weights: bool,
    keep_state: bool,
    force: bool,
    failed: list[tuple[str, str]],
) -> Iterator[RunResult]:
    # Each run's own per-epoch display follows the sweep's: bars under a bar, lines in a log.
    run_progress = not reporter.plain
    if executor == LOCAL:
        from batchlab.sweep.local_executor import run_local

        return run_local(plan, store, progress=run_progress, keep_weights=keep_weights, keep_state=keep_state,
                         force=force)
    from batchlab.sweep.ray_executor import run_ray

    def on_failure(unit: WorkUnit, message: str) -> None:
        for config in unit.configs:
            identity = plan.run_id_of(config)
            failed.append((identity, message))
            reporter.note(f"run {identity} B={config.batch_size} failed on Ray: {message}")

    return run_ray(plan, store, cluster=cluster, keep_weights=keep_weights, keep_state=keep_state, force=force,
                   on_failure=on_failure)


def _in_grid_order(plan: SweepPlan, trained: dict[str, RunResult], store: RunStore | None) -> list[RunResult]:
    from batchlab.training.session import result_from_record

    ordered = []
    for identity in plan.run_ids:
        if identity in trained:
            ordered.append(trained.pop(identity))
        elif identity in plan.finished and store is not None:
            record = store.get(identity)
            if record is not None:
                ordered.append(result_from_record(record, store))
    # A worker that computed another id than the plan expected (another device type) still counts.
    ordered.extend(trained.values())
    return ordered
