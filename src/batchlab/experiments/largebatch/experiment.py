"""Large batches without the gap: every method against the same small and large batch, trained here.

One network, one dataset, one epoch budget E, several seeds. The rows:

* ``sb`` — the small-batch baseline: B_S, learning rate η, the lecture's momentum λ;
* ``lb`` — plain large batch: B_L = k·B_S with the same η and λ, for the same epochs: the
  equal-epochs gap (k times fewer updates; mostly an optimization gap);
* ``lb-train-acc`` — plain large batch trained on until it reaches the small batch's final
  training accuracy of the same seed, at most as many updates as SB made (``target_train_acc``,
  ``max_updates``): the generalization gap at equal training accuracy (Keskar et al.'s protocol);
* ``linear-warmup`` — Goyal et al. 2017: η·k, reached by a linear warm-up over the first epochs,
  with their momentum correction (m rescaled by η_new/η_old as the rate rises);
* ``sqrt`` — η·√k (Krizhevsky 2014; Hoffer et al. 2017);
* ``lars`` — You et al. 2017: LARS, η·k with warm-up, trust coefficient as planned;
* ``lamb`` — You et al. 2020: LAMB (its own base rate, √k scaling, warm-up, no momentum);
* ``ghost-bn`` — Hoffer et al. 2017: batch norm over ghost batches of G = B_S inside B_L;
* ``akiba`` — Akiba et al. 2017's recipe (RMSprop warm-up handing over to momentum SGD,
  slow-start schedule, batch norm without moving averages), with η·k;
* ``swap`` — Gupta et al. 2020 (:mod:`batchlab.experiments.largebatch.swap`): phase 1 is ``linear-warmup``
  run until a training-accuracy target (capped at E − E₂ epochs), phase 2 refines W copies for
  E₂ epochs at B_S, phase 3 averages them and recomputes batch norm; each worker's path is
  at most E epochs;
* ``longer`` — Hoffer et al. 2017's "train longer": plain LB for as many updates as SB made in
  E epochs (``max_updates``; k·E epochs).

The methods that keep the epoch budget are judged against the equal-epochs gap, ghost BN and
"train longer" (Hoffer et al.'s "closing the generalization gap") against the generalization gap,
each by paired 95 % intervals over seeds (every row of seed s starts from the same initial
weights; :mod:`batchlab.experiments.largebatch.tables`).

Each (method, seed) is one run in the store (SWAP: 1 + W runs and a ``swap`` record), trained
with :func:`batchlab.training.train`, reused when the store already holds it finished; then
Keskar's sharpness φ (ε = 1e-3, full space) of every minimum found is measured and kept as a
``sharpness`` record; the table and the verdicts come from :mod:`batchlab.experiments.largebatch.tables`,
and the experiment is kept as a ``largebatch`` record.

Scales. ``quick`` (≤ 10 minutes on a 2-core CPU): ``keskar-f1`` with two hidden layers of 128
(it has batch norm, so ghost BN applies) on 4,096 Fashion-MNIST training images (``train_subset``;
mnist-5k's 4,000 when Fashion-MNIST is not on disk), all 10,000 test images, B_S = 32 vs
B_L = 1024 (k = 32, a quarter of the training set), E = 6 epochs, λ = 0.9, 3 seeds (paired: a t interval
from 2 seeds has t₀.₉₇₅ = 12.7, too wide to call anything), SB's η chosen
on a 10 % validation split from {0.01, 0.02, 0.04}, extended at an edge (0.02 before the search).
Why these: at B_L = 512 the plain large batch tested only about 1 point below SB, within the
noise of two seeds, so no method had a gap to close; at 10 epochs SB overfits the 4,096 images.
Per seed that is 768 SB updates, 24 updates for each of the seven LB methods, 768 LB updates
(192 epochs) for "train longer" and ≤ 16 + 4 × 256 for SWAP: about one million training
examples through the network, ~250 evaluations of the training set, and 10 sharpness
measurements on 500 examples. On top of that come up to 768 LB updates for "LB to SB's training
accuracy" and SB's η search (three SB runs per seed, more where the grid is extended). Measured on a
2-core CPU before those two were added: 66 s for both seeds (sharpness included) with nothing else
running, 466 s with one torch thread while other jobs kept the 1-minute load average at 9–14. The
Goyal row with momentum correction tested 77.6 % (2 seeds) where the same runs without it tested
79.6 %: the correction makes the warm-up reach the scaled rate η·32 at full strength, which this
small network takes less well.
``full``: Goyal's and LARS's setting at CIFAR-10 size, ``keskar-c1`` on CIFAR-10 (Fashion-MNIST
when CIFAR-10 is not on disk), B_S = 256 (η = 0.1, Goyal's rate for 256) vs B_L = 4096 (k = 16),
E = 30 epochs, 5 warm-up epochs (Goyal's), W = 4 SWAP workers for 5 epochs, 3 seeds, SB's η
chosen on validation from {0.05, 0.1, 0.2}, extended at an edge. Per seed
that is about 16 × 30 CIFAR-10 epochs of work for "train longer" and 30 for each other row,
≈ 800 epochs of 50,000 images; at the 30,000–60,000 images per second a current GPU
trains this small network at B ≥ 256, expect 15–25 minutes per seed, about an hour for 3 seeds
(an estimate from the update count, not a measurement).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from batchlab import data as datasets
from batchlab.config import RunConfig, run_id
from batchlab.data.identity import load_splits
from batchlab.runtime.device import resolve_device
from batchlab.errors import ConfigError
from batchlab.experiments.gap.measurements import measure_sharpness
from batchlab.experiments.gap.tables import Table
from batchlab.experiments.shape import Envelope, Log, Stopwatch, check_scale, check_seeds, stage_log
from batchlab.analysis.grid import EXTENSION_CAP
from batchlab.experiments.largebatch.own_model import check_task, task_setting
from batchlab.experiments.own_task import check_batch_sizes, check_tensor_data, task_identity
from batchlab.experiments.largebatch.swap import SwapOutcome, phase2_configs, run_swap
from batchlab.experiments.largebatch.tuning import LrSearch, tune_small_batch_lr
from batchlab.experiments.largebatch.tables import (
    LB_KEY,
    LB_TRAIN_KEY,
    SB_KEY,
    MethodNumbers,
    Verdict,
    methods_table,
    verdict_paragraph,
    verdicts,
)
from batchlab.store.identity import with_digest
from batchlab.store.record import resolved_batch_size
from batchlab.timing.estimate import PILOT_UPDATES
from batchlab.training import train
from batchlab.training.pilot import is_stored, training_estimate
from batchlab.training.restore import RestoredRun, restore_run
from batchlab.training.result import FINISHED, RunResult

if TYPE_CHECKING:
    from batchlab.store import RunStore
    from batchlab.task import Task

RECORD_KIND = "largebatch"
SHARPNESS_EPSILON = 1e-3
SHARPNESS_ITERATIONS = 10


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    description: str


METHODS: dict[str, Method] = {m.key: m for m in (
    Method(SB_KEY, "small batch (SB)", "the small-batch baseline"),
    Method(LB_KEY, "large batch (LB), plain", "B_L with the small batch's learning rate, for the same epochs"),
    Method(LB_TRAIN_KEY, "LB to SB's training accuracy",
           "plain LB trained on until it reaches SB's training accuracy, at most SB's updates"),
    Method("linear-warmup", "LB + linear scaling + warm-up",
           "Goyal et al. 2017: η·k with a linear warm-up and momentum correction"),
    Method("sqrt", "LB + √ scaling", "η·√k (Krizhevsky 2014, Hoffer et al. 2017)"),
    Method("lars", "LB + LARS", "You et al. 2017: layer-wise rates, η·k with warm-up"),
    Method("lamb", "LB + LAMB", "You et al. 2020: Adam's direction with layer-wise steps"),
    Method("ghost-bn", "LB + ghost BN", "Hoffer et al. 2017: batch norm over ghost batches of B_S"),
    Method("akiba", "LB + Akiba's recipe", "Akiba et al. 2017: RMSprop warm-up, slow start, BN without averages"),
    Method("swap", "SWAP", "Gupta et al. 2020: LB to a target, W small-batch copies, averaged"),
    Method("longer", "LB, train longer", "Hoffer et al. 2017: as many updates as SB"),
)}
METHOD_KEYS = tuple(k for k in METHODS if k not in (SB_KEY, LB_KEY, LB_TRAIN_KEY))
# SB's training accuracy is rounded down to this many decimals as LB's target, so that the target
# (part of the run's identity) is the same each time SB's stored run is read back.
TARGET_DECIMALS = 4


@dataclass(frozen=True)
class Setting:
    """The network, data and hyperparameters every row shares at one scale (module docstring)."""

    dataset: str
    train_subset: int | None
    model: str
    hidden: tuple[int, ...] | None
    small_batch: int
    large_batch: int
    epochs: int
    lr: float
    momentum: float
    warmup_epochs: float
    lars_trust: float
    lamb_lr: float
    swap_target: float
    swap_workers: int
    swap_epochs: int
    sharpness_examples: int | None
    note: str = ""
    # SB's η grid, searched on validation before the comparison (empty: ``lr`` as given; see
    # batchlab.experiments.largebatch.tuning), its extension cap and the validation split it uses.
    lr_grid: tuple[float, ...] = ()
    lr_extension_cap: int = EXTENSION_CAP
    tuning_val_fraction: float = 0.1
    # Short fingerprints of a user's model and data (batchlab.experiments.largebatch.own_model);
    # None for the registry's, which their names identify.
    model_fingerprint: str | None = None
    data_fingerprint: str | None = None

    def describe(self) -> str:
        data = with_digest(self.dataset, self.data_fingerprint) + (
            f" ({self.train_subset:,} training examples)" if self.train_subset else "")
        model = with_digest(self.model, self.model_fingerprint)
        return (f"{model}{'' if self.hidden is None else ' ' + 'x'.join(map(str, self.hidden))} on {data}, "
                f"SB = {self.small_batch} vs LB = {self.large_batch}, {self.epochs} epochs, η = {self.lr:g}, "
                f"momentum {self.momentum:g}")


def _quick_setting(data_dir: str | None) -> Setting:
    fashion = _present("fashion-mnist", data_dir)
    return Setting(
        dataset="fashion-mnist" if fashion else "mnist-5k", train_subset=4096 if fashion else None,
        model="keskar-f1", hidden=(128, 128), small_batch=32, large_batch=1024, epochs=6, lr=0.02, momentum=0.9,
        warmup_epochs=1.5, lars_trust=0.01, lamb_lr=0.005, swap_target=0.78, swap_workers=4, swap_epochs=2,
        sharpness_examples=500, lr_grid=(0.01, 0.02, 0.04),
        note="" if fashion else "Fashion-MNIST is not on disk (`batchlab data fetch fashion-mnist`), so the quick "
        "scale trains on mnist-5k",
    )


def _full_setting(data_dir: str | None) -> Setting:
    cifar = _present("cifar10", data_dir)
    return Setting(
        dataset="cifar10" if cifar else "fashion-mnist", train_subset=None, model="keskar-c1", hidden=None,
        small_batch=256, large_batch=4096, epochs=30, lr=0.1, momentum=0.9, warmup_epochs=5.0, lars_trust=0.01,
        lamb_lr=0.005, swap_target=0.9, swap_workers=4, swap_epochs=5, sharpness_examples=10000,
        lr_grid=(0.05, 0.1, 0.2),
        note="" if cifar else "CIFAR-10 is not on disk (`batchlab data fetch cifar10`), so the full scale trains "
        "on Fashion-MNIST",
    )


def _present(dataset: str, data_dir: str | None) -> bool:
    return datasets.locate(datasets.get_spec(dataset), data_dir) is not None


@dataclass(frozen=True)
class LargeBatchPlan:
    """Everything ``batchlab largebatch`` will do; ``to_dict`` is what largebatch.json records."""

    scale: str
    seeds: int
    methods: tuple[str, ...]
    setting: Setting
    device: str = "auto"
    data_dir: str | None = None
    # A user's own model and data (batchlab.Task) in place of the setting's registry ones.
    task: Task | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(replace(self, task=None))  # the task by its identity, not its tensors
        data["task"] = task_identity(self.task)
        data["labels"] = {key: METHODS[key].label for key in self.rows}
        return data

    @property
    def rows(self) -> tuple[str, ...]:
        """The table's rows: the three baselines, then the methods in the order of :data:`METHODS`."""
        return (SB_KEY, LB_KEY, LB_TRAIN_KEY, *(k for k in METHOD_KEYS if k in self.methods))

    def base_config(self, seed: int) -> RunConfig:
        """The small-batch run of ``seed``; every row is this with its changes."""
        s = self.setting
        return RunConfig(
            dataset=s.dataset, train_subset=s.train_subset, model=s.model, hidden=s.hidden, optimizer="momentum",
            batch_size=s.small_batch, lr=s.lr, momentum=s.momentum, epochs=s.epochs, seed=seed, val_fraction=0.0,
            split_seed=0, shuffle="epoch", device=self.device, data_dir=self.data_dir,
        )

    def tuning_config(self, seed: int, lr: float) -> RunConfig:
        """SB of ``seed`` at ``lr`` on the training set less a validation split: a run of SB's η
        search (:mod:`batchlab.experiments.largebatch.tuning`)."""
        return self.base_config(seed).replace(lr=lr, val_fraction=self.setting.tuning_val_fraction)

    def config(self, key: str, seed: int, n_train: int) -> RunConfig:
        """The run of row ``key`` (for SWAP: its phase 1) with ``seed`` on ``n_train`` examples."""
        s = self.setting
        base = self.base_config(seed)
        if key == SB_KEY:
            return base
        lb = base.replace(batch_size=s.large_batch)
        scaled = dict(lr_scaling="linear", base_batch=s.small_batch)
        warm = dict(scaled, warmup_epochs=s.warmup_epochs)
        if key == LB_KEY:
            return lb
        if key == "linear-warmup":
            # Goyal et al.'s recipe includes their momentum correction: the lecture's m carries η,
            # so it is rescaled at each step of the warm-up.
            return lb.replace(momentum_correction=True, **warm)
        if key == "sqrt":
            return lb.replace(lr_scaling="sqrt", base_batch=s.small_batch)
        if key == "lars":
            return lb.replace(optimizer="lars", trust_coefficient=s.lars_trust, **warm)
        if key == "lamb":
            return lb.replace(optimizer="lamb", lr=s.lamb_lr, momentum=0.0, lr_scaling="sqrt",
                              base_batch=s.small_batch, warmup_epochs=s.warmup_epochs)
        if key == "ghost-bn":
            return lb.replace(ghost_batch=s.small_batch)
        if key == "akiba":
            return lb.replace(recipe="akiba", **scaled)
        if key == "swap":
            return lb.replace(epochs=s.epochs - s.swap_epochs, target_train_acc=s.swap_target, momentum_correction=True,
                              **warm)
        if key == "longer":
            return self._as_many_updates_as_sb(lb, n_train)
        if key == LB_TRAIN_KEY:
            raise ValueError(f"the {LB_TRAIN_KEY!r} run needs SB's training accuracy: use equal_train_config")
        raise ConfigError(f"unknown method {key!r}; allowed: {', '.join(METHOD_KEYS)}")


    def equal_train_config(self, seed: int, n_train: int, sb_train_acc: float) -> RunConfig:
        """Plain LB of ``seed`` trained until its training accuracy reaches ``sb_train_acc`` (SB's
        final training accuracy of that seed, rounded down to :data:`TARGET_DECIMALS` decimals), at
        most as many updates as SB made: the generalization gap's large batch."""
        target = math.floor(sb_train_acc * 10 ** TARGET_DECIMALS) / 10 ** TARGET_DECIMALS
        lb = self.base_config(seed).replace(batch_size=self.setting.large_batch)
        return self._as_many_updates_as_sb(lb, n_train).replace(target_train_acc=target)

    def _as_many_updates_as_sb(self, lb: RunConfig, n_train: int) -> RunConfig:
        s = self.setting
        sb_updates = s.epochs * math.ceil(n_train / s.small_batch)
        return lb.replace(epochs=math.ceil(sb_updates / math.ceil(n_train / s.large_batch)), max_updates=sb_updates)


def plan_largebatch(
    scale: str = "quick",
    *,
    seeds: int | None = None,
    methods: Sequence[str] | None = None,
    device: str = "auto",
    data_dir: str | None = None,
    task: Task | None = None,
    small_batch: int | None = None,
    large_batch: int | None = None,
) -> LargeBatchPlan:
    """The plan for ``scale`` (module docstring) with the given overrides checked; ``task``: a
    user's classification model and data in place of the scale's network and dataset
    (:mod:`batchlab.experiments.largebatch.own_model`); ``small_batch``, ``large_batch``: B_S and
    B_L in place of the scale's (for data smaller than its B_L, say)."""
    check_scale(scale)
    chosen = list(dict.fromkeys(methods if methods is not None else METHOD_KEYS))
    for key in chosen:
        if key not in METHOD_KEYS:
            raise ConfigError(f"unknown method {key!r}; allowed: {', '.join(METHOD_KEYS)} (sb and lb always run)")
    seeds = check_seeds(3 if seeds is None else seeds)
    setting = _quick_setting(data_dir) if scale == "quick" else _full_setting(data_dir)
    check_batch_sizes(small_batch, large_batch)
    setting = replace(setting, small_batch=small_batch or setting.small_batch,
                      large_batch=large_batch or setting.large_batch)
    if task is not None:
        check_task(task)
        setting = task_setting(setting, task)
        check_setting(setting, task.n_train)
    return LargeBatchPlan(scale, seeds, tuple(k for k in METHOD_KEYS if k in chosen), setting, device, data_dir,
                          task)


def check_setting(setting: Setting, n_train: int) -> None:
    """ConfigError unless SB < LB ≤ the training set and SWAP's phases fit the epoch budget."""
    if not setting.small_batch < setting.large_batch <= n_train:
        raise ConfigError(
            f"batch sizes SB = {setting.small_batch}, LB = {setting.large_batch} on {n_train} training examples; "
            "allowed: SB < LB ≤ the training-set size (--small-batch, --large-batch)"
        )
    if not 1 <= setting.swap_epochs < setting.epochs:
        raise ConfigError(f"SWAP's phase 2 of {setting.swap_epochs} epochs does not fit in {setting.epochs}; "
                          "allowed: 1 … epochs − 1")


# ------------------------------------------------------------------------------------ results


@dataclass
class RunEntry:
    """One (method, seed) of the table: its runs and the numbers of the minimum it found."""

    method: str
    seed: int
    run_ids: list[str]
    status: str
    batch_size: int
    epochs: float
    updates: int
    train_acc: float
    test_acc: float
    seconds: float
    from_store: bool
    sharpness: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status == FINISHED


@dataclass
class LargeBatchResult:
    plan: LargeBatchPlan
    n_train: int
    n_test: int
    runs: list[RunEntry]
    numbers: list[MethodNumbers]
    verdicts: list[Verdict]
    table: Table
    paragraph: str
    envelope: Envelope
    # SB's η search (None: the setting's η as given).
    lr_search: LrSearch | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "lr_search": None if self.lr_search is None else self.lr_search.to_dict(),
            "plan": self.plan.to_dict(),
            "n_train": self.n_train,
            "n_test": self.n_test,
            "runs": [asdict(r) for r in self.runs],
            "numbers": [n.to_dict() for n in self.numbers],
            "verdicts": [v.to_dict() for v in self.verdicts],
            "table": self.table.to_dict(),
            "paragraph": self.paragraph,
            **self.envelope.to_dict(),
        }


def record_key(plan: LargeBatchPlan) -> str:
    """Key of the ``largebatch`` record: what was asked for (a rerun replaces it); batch sizes other
    than the scale's, and a user's model and data by name and fingerprint, so that a comparison of
    other batches or on other files is kept beside it."""
    s = plan.setting
    key = f"{plan.scale}|methods={','.join(plan.methods)}|seeds={plan.seeds}"
    scale = _quick_setting(plan.data_dir) if plan.scale == "quick" else _full_setting(plan.data_dir)
    if (s.small_batch, s.large_batch) != (scale.small_batch, scale.large_batch):
        key += f"|sb={s.small_batch}|lb={s.large_batch}"
    if plan.task is not None:
        key += f"|model={with_digest(s.model, s.model_fingerprint)}|data={with_digest(s.dataset, s.data_fingerprint)}"
    return key


# ---------------------------------------------------------------------------------- running

def prepare(plan: LargeBatchPlan, device: Any) -> tuple[Any, dict[tuple[str, int], RunConfig]]:
    """The data and every run's configuration, all checked before anything trains (a bad setting
    is a ConfigError with nothing stored). SWAP's phase-2 configurations are built too, from
    phase 1's run id, so they are checked as well."""
    splits = plan.task.splits(device) if plan.task is not None else load_splits(plan.base_config(0), device)
    if plan.task is not None:
        check_tensor_data(plan.task, splits, "largebatch")
    n_train = len(splits.train)
    check_setting(plan.setting, n_train)
    # LB to SB's training accuracy is built once SB has trained (its target is SB's result); one
    # with a placeholder target is built here, which checks its settings.
    configs = {(key, seed): plan.config(key, seed, n_train) for seed in range(plan.seeds) for key in plan.rows
               if key != LB_TRAIN_KEY}
    plan.equal_train_config(0, n_train, 1.0)
    for seed in range(plan.seeds):
        if "swap" in plan.rows:
            phase1 = configs[("swap", seed)]
            phase2_configs(phase1, run_id(phase1, device.type), batch_size=plan.setting.small_batch,
                           epochs=plan.setting.swap_epochs, workers=plan.setting.swap_workers)
    return splits, configs


def run_largebatch(plan: LargeBatchPlan, store: RunStore, *, progress: bool | None = False,
                   log: Log | None = None, notice: Log | None = None,
                   clock: Callable[[], float] | None = None) -> LargeBatchResult:
    """Train every row and seed, measure the minima, tabulate, judge; record it in ``store``.
    ``log``: one line per step (default: ``[largebatch] …`` on stderr). On a user's model, the
    estimate of the training still to do goes to ``notice`` before anything trains (one line,
    default ``[largebatch] …`` on stderr, when above :data:`batchlab.timing.estimate.ESTIMATE_NOTE_S`),
    from a pilot read with ``clock`` (tests inject one)."""
    log = log or stage_log(RECORD_KIND)
    notice = notice or stage_log(RECORD_KIND)
    stopwatch = Stopwatch()
    device = resolve_device(plan.device)
    if plan.setting.note:
        log(plan.setting.note)
    splits, configs = prepare(plan, device)  # every setting checked before anything trains
    # The estimate comes before the first run trains: before SB's η search when it has runs to
    # train (then the rows are counted at the setting's η), else after it (it only reads the store).
    tuning = tuning_configs(plan)
    estimated = plan.task is not None and not all(is_stored(c, store, device, None, plan.task) for c in tuning)
    if estimated:
        _estimate(plan, store, device, splits, configs, tuning, notice, clock)
    search = tune_small_batch_lr(plan, store, progress=progress, log=log)
    if search is not None:
        log(f"SB's {search.describe()}")
        if search.best != plan.setting.lr:
            plan = replace(plan, setting=replace(plan.setting, lr=search.best))
            splits, configs = prepare(plan, device)
    if plan.task is not None and not estimated:
        _estimate(plan, store, device, splits, configs, [], notice, clock)
    # The data each training call is given: a task brings its own (the same splits, cached by the task).
    data = None if plan.task is not None else splits
    runs: list[RunEntry] = []
    for seed in range(plan.seeds):
        for key in plan.rows:
            log(f"{METHODS[key].label}, seed {seed} …")
            if key == "swap":
                outcome = run_swap(configs[(key, seed)], store, small_batch=plan.setting.small_batch,
                                   epochs=plan.setting.swap_epochs, workers=plan.setting.swap_workers, splits=data,
                                   progress=progress, task=plan.task)
                entry, minimum = _swap_entry(seed, outcome)
            elif key == LB_TRAIN_KEY:
                sb = next(r for r in runs if r.method == SB_KEY and r.seed == seed)
                if not sb.finished:
                    runs.append(_no_target_entry(seed, plan.setting.large_batch, sb.status))
                    log(f"{METHODS[key].label}, seed {seed}: no target, SB {sb.status}")
                    continue
                result = train(plan.equal_train_config(seed, len(splits.train), sb.train_acc), store=store,
                               splits=data, progress=progress, task=plan.task)
                entry = _entry(key, seed, result)
                entry.extra = {"target_train_acc": result.config.target_train_acc,
                               "reached_target_at": result.summary.get("reached_target_at")}
                minimum = _minimum(plan, store, result, device) if entry.finished else None
            else:
                result = train(configs[(key, seed)], store=store, splits=data, progress=progress, task=plan.task)
                entry = _entry(key, seed, result)
                minimum = _minimum(plan, store, result, device) if entry.finished else None
            if minimum is not None:
                entry.sharpness = _sharpness(plan, store, minimum, len(splits.train), log)
            runs.append(entry)
            log(f"{METHODS[key].label}, seed {seed}: {_describe(entry)}")
    numbers = [_numbers(plan, key, runs) for key in plan.rows]
    found = verdicts(numbers, missed_target=missed_target(runs))
    result = LargeBatchResult(
        plan=plan, n_train=len(splits.train), n_test=len(splits.test), runs=runs, numbers=numbers, verdicts=found,
        table=methods_table(numbers, found, setting=plan.setting.describe()
                            + ("" if search is None else f" ({search.describe()})")),
        paragraph=verdict_paragraph(found), envelope=stopwatch.envelope(device), lr_search=search,
    )
    store.put_record(RECORD_KIND, record_key(plan), result.to_dict())
    return result


def tuning_configs(plan: LargeBatchPlan) -> list[RunConfig]:
    """The runs of SB's η search over the setting's initial grid (none without a grid)."""
    grid = plan.setting.lr_grid
    return [plan.tuning_config(seed, lr) for lr in grid for seed in range(plan.seeds)] if len(grid) >= 2 else []


def _estimate(plan: LargeBatchPlan, store: RunStore, device: Any, splits: Any,
              configs: dict[tuple[str, int], RunConfig], tuning: Sequence[RunConfig], notice: Log,
              clock: Callable[[], float] | None) -> None:
    """One line with the time the runs not yet in the store may take (:mod:`batchlab.training.pilot`):
    ``tuning`` runs, every row's run and, for a seed whose SB run is still to train, LB to SB's
    training accuracy (at most SB's updates) and SWAP's phase 2 (its workers at the small batch)."""
    n_train = len(splits.train)
    todo = [*tuning, *configs.values()]
    for seed in range(plan.seeds):
        if is_stored(configs[(SB_KEY, seed)], store, device, None, plan.task):
            continue
        todo.append(plan.equal_train_config(seed, n_train, 1.0))
        if "swap" in plan.rows:
            phase1 = configs[("swap", seed)]
            todo += phase2_configs(phase1, run_id(phase1, device.type), batch_size=plan.setting.small_batch,
                                   epochs=plan.setting.swap_epochs, workers=plan.setting.swap_workers)
    line = training_estimate(todo, None, device, store=store, task=plan.task, clock=clock, scope=lambda pending: (
        f"to train the {pending} runs not in the store (a pilot of {PILOT_UPDATES} updates at each batch size × "
        "the epoch budgets; runs that reach their target end earlier, so usually less; the sharpness measurements "
        "and any extension of SB's η grid add to it)"))
    if line is not None:
        notice(line)


def _minimum(plan: LargeBatchPlan, store: RunStore, result: RunResult, device: Any) -> RestoredRun:
    """The stored minimum of ``result`` (a user's model rebuilt from the plan's task)."""
    return restore_run(store, result.run_id, device=device, tasks=() if plan.task is None else (plan.task,))


def _sharpness(plan: LargeBatchPlan, store: RunStore, minimum: RestoredRun, n_train: int, log: Log) -> float:
    examples = plan.setting.sharpness_examples
    row, reused = measure_sharpness(store, minimum, epsilon=SHARPNESS_EPSILON, subspace_dim=None,
                                    iterations=SHARPNESS_ITERATIONS, seed=0,
                                    examples=None if examples is None or examples >= n_train else examples)
    if not reused:
        log(f"sharpness of {minimum.run_id}: {row['value']:.4g} ({row['seconds']:.1f} s)")
    return float(row["value"])


def _entry(key: str, seed: int, result: RunResult) -> RunEntry:
    s = result.summary
    nan = float("nan")
    return RunEntry(
        method=key, seed=seed, run_ids=[result.run_id], status=result.status,
        batch_size=resolved_batch_size(result.config.batch_size, s),
        epochs=float(s.get("epochs_completed", len(result.epochs))), updates=int(s.get("updates", 0)),
        train_acc=float(s.get("train_acc", nan)), test_acc=float(s.get("test_acc", nan)),
        seconds=float(s.get("train_time_s") or 0.0), from_store=result.from_store,
    )


def _no_target_entry(seed: int, batch_size: int, sb_status: str) -> RunEntry:
    """LB to SB's training accuracy when SB of that seed did not finish: nothing to train towards."""
    nan = float("nan")
    return RunEntry(method=LB_TRAIN_KEY, seed=seed, run_ids=[], status=f"no target (SB {sb_status})",
                    batch_size=batch_size, epochs=0.0, updates=0, train_acc=nan, test_acc=nan, seconds=0.0,
                    from_store=True)


def missed_target(runs: Sequence[RunEntry]) -> int:
    """Seeds of LB to SB's training accuracy that finished at the update cap below the target."""
    return sum(1 for r in runs if r.method == LB_TRAIN_KEY and r.finished and r.extra.get("reached_target_at") is None)


def _swap_entry(seed: int, outcome: SwapOutcome) -> tuple[RunEntry, RestoredRun | None]:
    """SWAP's row: the averaged network's accuracies; epochs along one worker's path (phase 1 +
    phase 2), updates of all phases and workers, time of all phases one after another."""
    phase1, phase2, average = outcome.phase1, outcome.phase2, outcome.average
    entry = _entry("swap", seed, phase1)
    entry.run_ids = [phase1.run_id, *(r.run_id for r in phase2)]
    # A SWAP stopped at a failed phase has no average to recompute: its runs alone say where it came from.
    entry.from_store = (phase1.from_store and all(r.from_store for r in phase2)
                        and (average is None or average.from_store))
    entry.seconds = outcome.seconds
    entry.updates += sum(int(r.summary.get("updates", 0)) for r in phase2)
    if phase2:
        entry.epochs += float(phase2[0].summary.get("epochs_completed", len(phase2[0].epochs)))
        entry.status = next((r.status for r in phase2 if r.status != FINISHED), FINISHED)
    if average is None:
        entry.train_acc = entry.test_acc = float("nan")
        if entry.status == FINISHED:
            entry.status = "incomplete"
        return entry, None
    entry.run_ids.append(average.weights_id)
    entry.train_acc, entry.test_acc = average.train_acc, average.test_acc
    entry.extra = {"phase1_epochs": len(phase1.epochs), "phase1_train_acc": phase1.summary.get("train_acc"),
                   "phase1_test_acc": phase1.summary.get("test_acc"), "parallel_seconds": outcome.parallel_seconds,
                   "phase2_test_acc": [r.summary.get("test_acc") for r in phase2], "average": average.to_dict()}
    return entry, outcome.averaged


def _describe(entry: RunEntry) -> str:
    if not entry.finished:
        return f"{entry.status} after {entry.epochs:g} epochs"
    origin = "from the store" if entry.from_store else f"{entry.seconds:.1f} s"
    sharp = "" if entry.sharpness is None else f", sharpness {entry.sharpness:.3g}"
    return (f"train acc {entry.train_acc:.4f}, test acc {entry.test_acc:.4f} after {entry.updates} updates "
            f"({entry.epochs:g} epochs{sharp}; {origin})")


def _numbers(plan: LargeBatchPlan, key: str, runs: Sequence[RunEntry]) -> MethodNumbers:
    mine = [r for r in runs if r.method == key]
    done = [r for r in mine if r.finished]
    batch = plan.setting.small_batch if key == SB_KEY else plan.setting.large_batch
    return MethodNumbers(
        key, METHODS[key].label, batch,
        tuple(r.epochs for r in done), tuple(r.updates for r in done), tuple(r.train_acc for r in done),
        tuple(r.test_acc for r in done), tuple(r.sharpness for r in done if r.sharpness is not None),
        tuple(r.seconds for r in done), failed=len(mine) - len(done), seeds=tuple(r.seed for r in done),
    )
