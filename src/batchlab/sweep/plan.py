"""What a sweep will do before it does it: which runs are done, which resume, how the rest train.

:func:`plan_sweep` turns a sweep's configurations into a :class:`SweepPlan`:

* every configuration gets the run id a single ``batchlab train`` would give it
  (``run_id(config, device type)``), so packed, single and resumed results are interchangeable;
  configurations with equal ids are trained once;
* what happens to each run is the run session's answer (:func:`~batchlab.training.session.run_status`):
  runs the store already holds as finished or diverged are skipped (unless ``force``); unfinished
  runs with a checkpoint in the store are marked as resuming (the trainers resume them);
* the rest are grouped into :class:`WorkUnit` s. Local executor: per dataset split, by
  :func:`batchlab.training.packed.plan_packs` (runs sharing a ``pack_key`` train in one stacked step
  where that pays on the device); the executor trains exactly these packs, so what ``--dry-run``
  shows is what runs. Ray executor: see :func:`ray_units`.

A user's task (:class:`batchlab.Task`) adds its model's and data's
fingerprints to every run id, and its own data replaces the registry splits.

The local plan loads each dataset split once (``load_splits`` is cached) and checks every batch
size against the real training-set size before anything trains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batchlab.config import RunConfig, resolve_batch_size, run_id
from batchlab.training.packed import AUTO, PACKED, SEQUENTIAL, Pack, can_pack, pack_key, plan_packs
from batchlab.store.decision import Action
from batchlab.training.session import run_status

if TYPE_CHECKING:
    from batchlab.store import RunStore

LOCAL = "local"
RAY = "ray"
EXECUTORS = (LOCAL, RAY)

# Runs an executor hands out together: ``packed`` (one stacked step) or ``sequential`` (one
# after the other), with the ``reason`` for it in words — the trainers' own Pack.
WorkUnit = Pack


@dataclass
class SweepPlan:
    """The runs of a sweep and what will happen to each.

    ``configs``/``run_ids``: every distinct run of the grid, in grid order. ``finished``: run ids
    already ended in the store (skipped). ``resuming``: run ids that continue from a checkpoint.
    ``units``: the work left, in the order it is handed out.
    """

    configs: list[RunConfig]
    run_ids: list[str]
    finished: set[str]
    resuming: set[str]
    units: list[WorkUnit]
    executor: str
    # Prepared data per split key (local executor), handed to the trainers as ``splits=``.
    splits: dict[tuple, Any] = field(default_factory=dict, repr=False)
    # A user's model and data, handed to the trainers as ``task=`` (then ``splits`` stays empty).
    task: Any = field(default=None, repr=False)

    @property
    def to_train(self) -> int:
        return sum(len(unit.configs) for unit in self.units)

    def splits_for(self, config: RunConfig) -> Any:
        return self.splits.get(split_key(config))

    def run_id_of(self, config: RunConfig) -> str:
        """The run id of one of the plan's configs (with the task's fingerprints, when there is one)."""
        return self.run_ids[self.configs.index(config)]

    def describe(self) -> str:
        """The plan in words: counts, then one line per work unit."""
        lines = [
            f"sweep: {len(self.configs)} run(s); skipped (already in store): {len(self.finished)}; "
            f"to train: {self.to_train} ({len(self.resuming)} resume from a checkpoint); "
            f"executor: {self.executor}"
        ]
        if not self.units:
            lines.append("nothing to train")
        for number, unit in enumerate(self.units, start=1):
            lines.append(
                f"  {number:>3}. {unit.strategy:<10} {len(unit.configs):>3} run(s)  {unit.reason}"
            )
        return "\n".join(lines)


def split_key(config: RunConfig) -> tuple:
    """What decides a run's data tensors: runs with equal keys share one prepared split."""
    return (config.dataset, config.data_dir, float(config.val_fraction), config.split_seed, config.train_subset,
            config.device)


def plan_sweep(
    configs: Sequence[RunConfig],
    store: "RunStore | None",
    *,
    executor: str = LOCAL,
    force: bool = False,
    packing: str = AUTO,
    device_type: Callable[[RunConfig], str] | None = None,
    cluster_has_gpus: bool = False,
    task: Any = None,
) -> SweepPlan:
    """Plan ``configs`` (already validated) against ``store`` (a RunStore or None).

    ``device_type`` maps a config to the device type its run id is computed with (default: the
    device it resolves to on this machine). ``cluster_has_gpus`` shapes the Ray units. ``task``:
    the user's model and data every run trains (configs already configured for it).
    """
    from batchlab.runtime.device import resolve_device

    if device_type is None:
        device_type = lambda config: resolve_device(config.device).type  # noqa: E731
    distinct: dict[str, RunConfig] = {}
    for config in configs:
        identity = (run_id(config, device_type(config)) if task is None else
                    run_id(config, device_type(config), task.data_fingerprint, model_fingerprint=task.model_fingerprint))
        distinct.setdefault(identity, config)
    finished: set[str] = set()
    resuming: set[str] = set()
    pending: list[RunConfig] = []
    for identity, config in distinct.items():
        status = run_status(store, identity, force=force)
        if status == Action.ENDED:
            finished.add(identity)
            continue
        if status == Action.RESUME:
            resuming.add(identity)
        pending.append(config)

    splits: dict[tuple, Any] = {}
    if executor == LOCAL:
        units, splits = local_units(pending, packing, task)
    else:
        units = ray_units(pending, cluster_has_gpus, task)
    return SweepPlan(list(distinct.values()), list(distinct), finished, resuming, units, executor, splits, task)


def local_units(configs: Sequence[RunConfig], packing: str, task: Any = None) -> tuple[list[WorkUnit], dict[tuple, Any]]:
    """Packs chosen by :func:`plan_packs` for each data split, and the prepared splits (none
    for a ``task``, which brings its own data).

    Every batch size is checked against its split's real size here, before anything trains.
    """
    from batchlab.data.identity import load_splits
    from batchlab.runtime.device import resolve_device

    groups: dict[tuple, list[RunConfig]] = {}
    for config in configs:
        groups.setdefault(split_key(config), []).append(config)
    units: list[WorkUnit] = []
    splits: dict[tuple, Any] = {}
    for key, group in groups.items():
        if task is not None:
            units += plan_packs(group, strategy=packing, task=task)
            continue
        prepared = load_splits(group[0], resolve_device(group[0].device))
        for config in group:
            resolve_batch_size(config.batch_size, len(prepared.train))
        splits[key] = prepared
        units += plan_packs(group, splits=prepared, strategy=packing)
    return units, splits


def ray_units(configs: Sequence[RunConfig], cluster_has_gpus: bool, task: Any = None) -> list[WorkUnit]:
    """Ray tasks: with GPUs in the cluster, one task per group of packable runs sharing a
    ``pack_key`` (the worker packs them as its GPU memory allows, as the local executor would);
    on CPUs only, one task per run, because there the gain is running many runs side by side on
    many cores, and a packed step measured 0.2×–4× a single one on a CPU (packed_plan.py)."""
    if not cluster_has_gpus:
        return [WorkUnit((config,), SEQUENTIAL, _ray_label(config, "one run per CPU task")) for config in configs]
    units: list[WorkUnit] = []
    groups: dict[tuple, list[RunConfig]] = {}
    for config in configs:
        packable, why_not = can_pack(config, task)
        if not packable:
            units.append(WorkUnit((config,), SEQUENTIAL, f"{_ray_label(config, 'one GPU task')}: {why_not}"))
            continue
        # The device is the worker's, so it is left out of the grouping here on the driver.
        groups.setdefault(pack_key(config.replace(device="cpu")), []).append(config)
    for group in groups.values():
        if len(group) == 1:
            units.append(WorkUnit(tuple(group), SEQUENTIAL, f"{_ray_label(group[0], 'one GPU task')}: nothing to pack it with"))
        else:
            units.append(WorkUnit(tuple(group), PACKED,
                                  f"{_ray_label(group[0], 'one GPU task')}: packed on the worker as its GPU memory allows"))
    return units


def _ray_label(config: RunConfig, where: str) -> str:
    return f"{config.model} B={config.batch_size} on Ray, {where}"
