"""``batchlab advise``: which batch size, learning rate and momentum to use for a model on this
machine, from steps to a target measured at every batch size.

The protocol (Shallue et al. 2019, "Measuring the Effects of Data Parallelism on Neural Network
Training"; McCandlish et al. 2018, "An Empirical Model of Large-Batch Training"):

1. **Batch sizes** on a geometric grid: powers of two from 1 to the training-set size N at scale
   ``full``; powers of four from 1 to 1,024 at scale ``quick``.
2. **Tuning at every B**: λ ∈ {0, 0.9}, and for each a log grid of learning rates around the
   square-root scaling rule applied to the *effective* learning rate η/(1 − λ) (Shallue et al.
   §3.4 compare momentum runs by it): η(B, λ) = (1 − λ) · η_ref · √(B / B_ref) · fᵏ,
   k = −m … m (Krizhevsky 2014 and Hoffer et al. 2017 scale η with √B; Goyal et al.'s linear rule
   overshoots at large B, and Shallue et al. found the best η between the two). Default
   η_ref = 0.1 at B_ref = 64. Every (η, λ) runs with ``seeds`` seeds, all of one B trained as one
   pack (:mod:`batchlab.experiments.advise.trace`).
3. **Steps to the target** S: the first evaluated update at which the metric reaches the target
   (:mod:`batchlab.experiments.advise.target`), within an update budget per B of
   ``clamp(⌈budget_examples / B⌉, min_updates, max_updates)``. The best (η, λ) at a B is the one
   whose seeds *all* reached the target with the fewest mean steps; a best η at either end of its
   grid extends that λ's grid beyond the edge (:mod:`batchlab.experiments.advise.lr_search`, by
   :mod:`batchlab.analysis.grid`'s rule) until it is interior, bounded by divergence, or three
   values were added — only then is it flagged. A B where no configuration reached the target is
   reported as not reached — never extrapolated.
4. **The trade-off fit** (:mod:`batchlab.experiments.advise.fit`) of S_min, E_min and B_crit to the best S of
   each B, with its uncertainty; regimes from it.
5. **Noise scale**: B_simple at the start, middle and end of the best run at the reached B
   closest to B_crit (:func:`batchlab.experiments.advise.measure.noise_over_training`).
6. **Time**: one update at each B on this device by the timing harness's rules, repeats
   interleaved across batch sizes in rounds, with the median's interval
   (:func:`batchlab.experiments.advise.measure.time_updates`); T(B) = S(B)·t(B); E(B) = S(B)·B
   examples.
7. **Recommendation**: one answer, B, η and λ with the ``batchlab train`` command that applies
   it, by the rule of :mod:`batchlab.experiments.advise.choose` (the shortest time when the
   ranking by time is sure, else steps and examples, said to be uncertain); as context the
   fastest, the least examples, the largest B in perfect scaling; on a GPU, the largest batch
   that fits.

Before training, a pilot of a few packed updates at each batch size estimates the time of the
runs not yet in the store (:mod:`batchlab.timing.estimate`, the rule gap and largebatch share);
above two minutes the estimate is printed (one line on stderr).

Every configuration's outcome is kept as an ``advise-run`` record keyed by its run id (the id a
``batchlab train`` of the same configuration gets), the target and the evaluation schedule, so a
rerun — after a kill, or with a larger budget — trains only what is missing. The result is an
``advise`` record.

``quick`` (mnist-5k, the lecture's MLP 784-512-512-10, 3,600 training examples): B ∈ {1, 4, 16,
64, 256, 1024}, 3 learning rates a factor 3 apart, λ ∈ {0, 0.9}, 2 seeds: 12 runs per B,
72 in all; target validation accuracy 0.9; budget 2 epochs of examples, at least 150 updates.
At most 12 × (7,200 + 1,800 + 450 + 150 + 150 + 150) = 118,800 model-updates if no run
reached the target (runs leave when they reach it, so far fewer in practice): on an idle 2-core
CPU, with the ~0.35 ms of one B = 1 update (docs/science.md §8) and ~4 MFLOP per example, the
worst case is about 4–5 minutes of training plus ~1 minute of evaluation, timing and noise
measurements — designed for ≤ 10 minutes there.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from batchlab.experiments.advise.choose import python_call, recommend, recommend_measured, train_command
from batchlab.experiments.advise.fit import MIN_POINTS, TradeoffFit, fit_tradeoff, regime
from batchlab.experiments.advise.lr_search import next_learning_rates, search_outcome, seeds_by_lr, still_at_edge
from batchlab.experiments.advise.measure import (
    TIME_ROUNDS,
    UpdateTimer,
    largest_fitting_batch,
    noise_over_training,
    time_updates,
)
from batchlab.experiments.advise.target import Target, best_value, parse_target
from batchlab.experiments.advise.trace import (
    DIVERGED,
    NOT_REACHED,
    REACHED,
    TraceOutcome,
    pilot_seconds,
    train_to_target,
)
from batchlab.training.loop import initial_model_and_optimizer
from batchlab.training.objective import CLASSIFICATION, Objective
from batchlab.config import RunConfig, resolve_batch_size, run_id
from batchlab.data.identity import data_fingerprint, load_splits
from batchlab.store.identity import data_digest, model_digest
from batchlab.runtime.device import resolve_device
from batchlab.errors import ConfigError, UserError
from batchlab.experiments.shape import Envelope, Log, Stopwatch, check_scale, stage_log
from batchlab.timing.estimate import PILOT_UPDATES, estimate_line

if TYPE_CHECKING:
    from batchlab.store import RunStore
    from batchlab.task import Task

MOMENTA = (0.0, 0.9)
RUN_KIND = "advise-run"
RECORD_KIND = "advise"
DEFAULT_REFERENCE_LR = 0.1
DEFAULT_REFERENCE_BATCH = 64


class TargetNotReachedError(UserError):
    """No configuration at any batch size reached the target within its budget."""


@dataclass(frozen=True)
class ScaleDefaults:
    max_batch: int | None  # None: the training-set size
    batch_base: int  # grid ratio: powers of this number
    lr_factor: float
    lr_points: int
    seeds: int
    target: str
    budget_epochs: float
    min_updates: int
    max_updates: int
    eval_ratio: float
    timing_budget_s: float
    noise_batches: int
    noise_examples: int


SCALE_DEFAULTS = {
    "quick": ScaleDefaults(max_batch=1024, batch_base=4, lr_factor=3.0, lr_points=3, seeds=2, target="val_acc=0.9",
                           budget_epochs=2.0, min_updates=150, max_updates=20000, eval_ratio=1.12,
                           timing_budget_s=0.5, noise_batches=16, noise_examples=1000),
    "full": ScaleDefaults(max_batch=None, batch_base=2, lr_factor=2.0, lr_points=5, seeds=3, target="val_acc=0.9",
                          budget_epochs=10.0, min_updates=1000, max_updates=200000, eval_ratio=1.05,
                          timing_budget_s=2.0, noise_batches=32, noise_examples=4000),
}


@dataclass(frozen=True)
class AdvisePlan:
    """Everything ``advise`` will train and measure (module docstring); ``to_dict`` is recorded."""

    scale: str
    template: RunConfig
    n_train: int
    batch_sizes: tuple[int, ...]
    target: Target
    seeds: int
    reference_lr: float
    reference_batch: int
    lr_factor: float
    lr_points: int
    budget_examples: int
    min_updates: int
    max_updates: int
    eval_ratio: float
    timing_budget_s: float
    noise_batches: int
    noise_examples: int
    momenta: tuple[float, ...] = MOMENTA

    def budget(self, batch_size: int) -> int:
        """Update budget at B: clamp(⌈budget_examples / B⌉, min_updates, max_updates)."""
        return max(self.min_updates, min(self.max_updates, math.ceil(self.budget_examples / batch_size)))

    def learning_rates(self, batch_size: int, momentum: float) -> list[float]:
        """η = (1 − λ) · η_ref · √(B / B_ref) · fᵏ for k = −m … m (module docstring, step 2)."""
        center = (1.0 - momentum) * self.reference_lr * math.sqrt(batch_size / self.reference_batch)
        half = (self.lr_points - 1) / 2
        return [center * self.lr_factor ** (k - half) for k in range(self.lr_points)]

    def configs(self, batch_size: int) -> list[RunConfig]:
        """Every run at B: λ, then η, then seed (the order results are kept in)."""
        return [self.template.replace(batch_size=batch_size, lr=lr, momentum=momentum, seed=seed)
                for momentum in self.momenta for lr in self.learning_rates(batch_size, momentum)
                for seed in range(self.seeds)]

    @property
    def model_updates_budget(self) -> int:
        """Model-updates if no run reached the target (the worst case)."""
        per_b = len(self.momenta) * self.lr_points * self.seeds
        return sum(per_b * self.budget(b) for b in self.batch_sizes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["template"] = self.template.to_dict()
        data["target"] = self.target.to_dict()
        data["batch_sizes"] = list(self.batch_sizes)
        data["momenta"] = list(self.momenta)
        data["lr_rule"] = ("eta = (1 - momentum) * reference_lr * sqrt(B / reference_batch) * lr_factor**k: "
                           "square-root scaling of the effective learning rate eta/(1 - momentum)")
        data["model_updates_budget"] = self.model_updates_budget
        return data


def geometric_batch_sizes(base: int, largest: int) -> tuple[int, ...]:
    """1, base, base², … up to ``largest`` (inclusive)."""
    sizes, b = [], 1
    while b <= largest:
        sizes.append(b)
        b *= base
    return tuple(sizes)


def plan_advise(
    scale: str = "quick",
    template: RunConfig | None = None,
    *,
    batch_sizes: Sequence[int] | None = None,
    max_batch: int | None = None,
    target: str | Target | None = None,
    seeds: int | None = None,
    reference_lr: float | None = None,
    reference_batch: int | None = None,
    lr_factor: float | None = None,
    lr_points: int | None = None,
    budget_epochs: float | None = None,
    min_updates: int | None = None,
    eval_ratio: float | None = None,
    task: "Task | None" = None,
) -> AdvisePlan:
    """The plan for ``scale`` and the run template (dataset, model, hidden, device, …), with every
    override checked before anything trains; raises :class:`ConfigError` with one line.

    ``task``: a user's :class:`batchlab.Task` instead of the registry's model and data (the
    template then names neither; :meth:`batchlab.Task.configure`). Its runs must pack (no batch
    norm or dropout); a task whose metric is not accuracy takes a loss target
    (``val_loss``/``train_loss``: its metric's direction is unknown), given explicitly."""
    d = SCALE_DEFAULTS[check_scale(scale)]
    if template is not None and not isinstance(template, RunConfig):
        raise ConfigError("the template must be a batchlab.RunConfig; allowed: RunConfig(dataset=..., model=...)")
    if task is not None:
        return _plan_for_task(scale, d, task, template or RunConfig(), target, overrides={
            "batch_sizes": batch_sizes, "max_batch": max_batch, "seeds": seeds, "reference_lr": reference_lr,
            "reference_batch": reference_batch, "lr_factor": lr_factor, "lr_points": lr_points,
            "budget_epochs": budget_epochs, "min_updates": min_updates, "eval_ratio": eval_ratio})
    template = template or RunConfig(dataset="mnist-5k", model="mlp")
    _check_template(template)
    from batchlab.models.registry import get_model_spec
    from batchlab.sweep.spec import check_runnable, training_set_size
    from batchlab.training.packed import can_pack

    check_runnable(template.replace(batch_size=1))
    packable, why = can_pack(template)
    if not packable:
        raise ConfigError(f"advise trains every B as one pack, and {template.model} cannot be packed ({why}); "
                          "allowed: a model without batch norm or dropout")
    get_model_spec(template.model)
    n_train = training_set_size(template)
    if template.train_subset is not None:
        if template.train_subset > n_train:
            raise ConfigError(f"training subset {template.train_subset} is larger than the training split of "
                              f"{template.dataset} ({n_train} examples); allowed: 1 … {n_train}")
        n_train = template.train_subset
    return _build_plan(scale, d, template, n_train, target, batch_sizes=batch_sizes, max_batch=max_batch,
                       seeds=seeds, reference_lr=reference_lr, reference_batch=reference_batch,
                       lr_factor=lr_factor, lr_points=lr_points, budget_epochs=budget_epochs,
                       min_updates=min_updates, eval_ratio=eval_ratio, has_validation=template.val_fraction > 0)


def _plan_for_task(scale: str, d: ScaleDefaults, task: "Task", template: RunConfig, target: str | Target | None,
                   overrides: dict[str, Any]) -> AdvisePlan:
    """:func:`plan_advise` for a user's task: its identity, packing and target rules."""
    from batchlab.training.objective import ACCURACY

    template = task.configure(template)
    _check_template(template)
    task.check_runnable(template.replace(batch_size=1))
    why = task.why_not_packable(resolve_device(template.device))
    if why is not None:
        raise ConfigError(f"advise trains every B as one pack, and {why.removesuffix(', trained one at a time')}; "
                          "allowed: a model without batch norm or dropout, with data that fits on the device")
    metric = task.objective.metric_name
    if target is None and metric != ACCURACY:
        raise ConfigError(f"the task's metric is {metric}, not accuracy, so there is no default target; allowed: a "
                          "loss target, e.g. --target val_loss=0.05 (target=\"val_loss=0.05\" in Python)")
    plan = _build_plan(scale, d, template, task.n_train, target, has_validation=True, **overrides)
    if plan.target.metric.endswith("_acc") and metric != ACCURACY:
        raise ConfigError(f"target {plan.target.key} needs accuracy, but the task's metric is {metric}; allowed: "
                          "val_loss or train_loss targets")
    return plan


def _build_plan(scale: str, d: ScaleDefaults, template: RunConfig, n_train: int, target: str | Target | None, *,
                batch_sizes: Sequence[int] | None, max_batch: int | None, seeds: int | None,
                reference_lr: float | None, reference_batch: int | None, lr_factor: float | None,
                lr_points: int | None, budget_epochs: float | None, min_updates: int | None,
                eval_ratio: float | None, has_validation: bool) -> AdvisePlan:
    largest = _positive_int("largest batch size", max_batch if max_batch is not None else (d.max_batch or n_train))
    largest = min(largest, n_train)
    sizes = geometric_batch_sizes(d.batch_base, largest) if batch_sizes is None else _batch_grid(batch_sizes, n_train)
    if len(sizes) < 1:
        raise ConfigError("the batch-size grid is empty; allowed: one or more integers 1 … N")
    plan = AdvisePlan(
        scale=scale,
        template=template.replace(max_updates=None, stop_patience=0, epochs=1),
        n_train=n_train,
        batch_sizes=sizes,
        target=parse_target(target if target is not None else d.target),
        seeds=_positive_int("seeds", d.seeds if seeds is None else seeds),
        reference_lr=_positive_number("reference learning rate", DEFAULT_REFERENCE_LR if reference_lr is None
                                      else reference_lr),
        reference_batch=_positive_int("reference batch size", DEFAULT_REFERENCE_BATCH if reference_batch is None
                                      else reference_batch),
        lr_factor=_positive_number("learning-rate factor", d.lr_factor if lr_factor is None else lr_factor),
        lr_points=_positive_int("learning-rate points", d.lr_points if lr_points is None else lr_points),
        budget_examples=math.ceil(_positive_number("budget epochs", d.budget_epochs if budget_epochs is None
                                                   else budget_epochs) * n_train),
        min_updates=_positive_int("minimum updates", d.min_updates if min_updates is None else min_updates),
        max_updates=d.max_updates,
        eval_ratio=d.eval_ratio if eval_ratio is None else eval_ratio,
        timing_budget_s=d.timing_budget_s,
        noise_batches=d.noise_batches,
        noise_examples=d.noise_examples,
    )
    if plan.lr_points > 1 and not plan.lr_factor > 1.0:
        raise ConfigError(f"learning-rate factor {plan.lr_factor:g} is invalid; allowed: a number > 1")
    if plan.target.split == "val" and not has_validation:
        raise ConfigError(f"target {plan.target.key} needs a validation split; allowed: val_fraction > 0 or a "
                          "train_loss/train_acc target")
    from batchlab.experiments.advise.target import evaluation_schedule

    evaluation_schedule(1, plan.eval_ratio)  # checks the ratio
    return plan


def _check_template(template: RunConfig) -> None:
    if template.optimizer != "momentum":
        raise ConfigError(f"advise tunes the lecture's momentum rule; got optimizer {template.optimizer!r}; "
                          "allowed: momentum")
    if template.nesterov or template.weight_decay:
        raise ConfigError("advise tunes η and λ only; allowed: nesterov off and weight_decay 0 in the template")


def _batch_grid(values: Sequence[Any], n_train: int) -> tuple[int, ...]:
    sizes = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                value = int(str(value))
            except ValueError:
                raise ConfigError(f"batch size {value!r} is not an integer; allowed: integers 1 … {n_train}") from None
        if not 1 <= value <= n_train:
            raise ConfigError(f"batch size {value} is outside 1 … {n_train} (the training-set size)")
        if value in sizes:
            raise ConfigError(f"batch size {value} is listed twice; allowed: distinct batch sizes")
        sizes.append(value)
    return tuple(sorted(sizes))


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} {value!r} is invalid; allowed: an integer ≥ 1")
    return value


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} {value!r} is invalid; allowed: a finite number > 0")
    return float(value)


# ------------------------------------------------------------------------------------ running

def run_key(config: RunConfig, device_type: str, fingerprint: Any, plan: AdvisePlan,
            model_fingerprint: dict[str, Any] | None = None) -> str:
    """Key of a configuration's ``advise-run`` record: its run id (with a user's model and data
    fingerprints, as ``batchlab train`` makes it), the target, the schedule."""
    return (f"{run_id(config, device_type, fingerprint, model_fingerprint=model_fingerprint)}|{plan.target.key}|"
            f"every*{plan.eval_ratio:g}")


def reuse(record: dict[str, Any] | None, budget: int) -> dict[str, Any] | None:
    """A stored outcome as it reads under ``budget``, or None when it must be trained (again).

    S ≤ budget stays reached; S beyond it is not reached within this budget; a run that did not
    reach within a budget at least as large is not reached; a divergence within the budget stays.
    """
    if record is None:
        return None
    status, updates = record["status"], int(record["updates"])
    trace = [pair for pair in record["trace"] if pair[0] <= budget]
    if status == REACHED:
        if record["steps"] <= budget:
            return record
        return record | {"status": NOT_REACHED, "steps": None, "updates": budget, "trace": trace, "budget": budget}
    if status == DIVERGED and updates <= budget:
        return record
    if status == NOT_REACHED and int(record["budget"]) >= budget:
        return record | {"updates": budget, "trace": trace, "budget": budget}
    if status == DIVERGED:  # diverged only after this budget
        return record | {"status": NOT_REACHED, "updates": budget, "trace": trace, "budget": budget}
    return None


@dataclass
class AdviseResult:
    """What ``advise`` found; :meth:`to_dict` is the ``advise`` record and advise.json."""

    plan: AdvisePlan
    runs: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    fit: TradeoffFit | None
    fit_note: str | None
    noise: dict[str, Any] | None
    memory: dict[str, Any] | None
    recommendation: dict[str, Any]
    trained_runs: int
    envelope: Envelope
    timing: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(),
            "runs": self.runs,
            "rows": self.rows,
            "fit": None if self.fit is None else self.fit.to_dict(),
            "fit_note": self.fit_note,
            "noise": self.noise,
            "memory": self.memory,
            "recommendation": self.recommendation,
            "trained_runs": self.trained_runs,
            "timing": self.timing,
            **self.envelope.to_dict(),
        }


def record_key(plan: AdvisePlan, task: "Task | None" = None) -> str:
    """The ``advise`` record's key: what was advised (a user's model and data by their short
    fingerprints too), the target, the grid, the seeds and the scale."""
    t = plan.template
    prints = "" if task is None else f"|{model_digest(task.model_fingerprint)}|{data_digest(task.data_fingerprint)}"
    return (f"{t.dataset}|{t.model}{prints}|hidden={t.hidden}|subset={t.train_subset}|{plan.target.key}|"
            f"B={','.join(map(str, plan.batch_sizes))}|seeds={plan.seeds}|scale={plan.scale}")


@dataclass
class _Bench:
    """What every pack of ``advise`` trains with: the data, the device, the run identity's parts,
    the user's task (None: the registry's model) and where outcomes are kept."""

    plan: AdvisePlan
    splits: Any
    device: torch.device
    fingerprint: Any
    task: "Task | None"
    store: "RunStore | None"
    log: Log

    @property
    def objective(self) -> Objective:
        return CLASSIFICATION if self.task is None else self.task.objective

    def initializer(self, config: RunConfig, splits: Any, device: torch.device):
        return initial_model_and_optimizer(config, splits, device, self.task)

    def key(self, config: RunConfig) -> str:
        return run_key(config, self.device.type, self.fingerprint, self.plan,
                       None if self.task is None else self.task.model_fingerprint)

    def pending(self, configs: Sequence[RunConfig]) -> list[RunConfig]:
        """Those of ``configs`` the store holds no usable outcome of."""
        budget = self.plan.budget(configs[0].batch_size) if configs else 0
        return [c for c in configs
                if reuse(self.store.get_record(RUN_KIND, self.key(c)) if self.store is not None else None,
                         budget) is None]

    def outcomes(self, batch_size: int, configs: Sequence[RunConfig], what: str) -> tuple[list[dict[str, Any]], int]:
        """Every configuration's outcome at B: from the store when it holds a usable one, the rest
        trained as one pack and stored one by one; (entries, how many trained)."""
        plan = self.plan
        budget = plan.budget(batch_size)
        keys = [self.key(c) for c in configs]
        found = [reuse(self.store.get_record(RUN_KIND, key) if self.store is not None else None, budget)
                 for key in keys]
        pending = [i for i, f in enumerate(found) if f is None]
        if pending:
            self.log(f"B = {batch_size}: training {len(pending)} of {len(configs)} {what} as one pack, up to "
                     f"{budget} updates each" + (f" ({len(configs) - len(pending)} from the store)"
                                                 if len(pending) < len(configs) else ""))
            trained = train_to_target([configs[i] for i in pending], self.splits, plan.target, budget,
                                      ratio=plan.eval_ratio, device=self.device, initializer=self.initializer,
                                      objective=self.objective)
            for i, outcome in zip(pending, trained):
                found[i] = _run_entry(configs[i], keys[i], outcome)
                if self.store is not None:
                    self.store.put_record(RUN_KIND, keys[i], found[i])
        else:
            self.log(f"B = {batch_size}: all {len(configs)} {what} from the store")
        entries = [dict(f, batch_size=batch_size, lr=c.lr, momentum=c.momentum, seed=c.seed, key=k)
                   for f, c, k in zip(found, configs, keys)]
        return entries, len(pending)


def run_advise(plan: AdvisePlan, store: "RunStore | None", *, splits: Any = None, log: Log | None = None,
               measure_noise: bool = True, time_batches: bool = True, task: "Task | None" = None,
               files: Sequence[str] | None = None, notice: Log | None = None,
               timer: UpdateTimer | None = None, load: Callable[[], float | None] | None = None,
               clock: Callable[[], float] | None = None) -> AdviseResult:
    """Train, fit, time and recommend (module docstring); records go into ``store``.

    ``splits``: data already prepared (a caller's own tensors are identified by their content,
    as in ``batchlab.train``); default: the template's registry data. ``task``: a user's
    :class:`batchlab.Task` (the plan made with it), trained with its model, loss and metric;
    ``files``: the ``--model-file``/``--data-file`` it came from, named in the recommended
    command. Raises :class:`TargetNotReachedError` when no configuration reached the target (the
    runs' outcomes stay stored, so the next try with another target or budget does not repeat
    them; no ``advise`` record and no files are written). ``log``: one line per step (default:
    ``[advise] …`` on stderr); ``notice``: where the estimate of a long run's time goes (one
    line, default ``[advise] …`` on stderr, whatever ``log`` is). ``timer``, ``load`` and
    ``clock`` replace the real time per update, load average and pilot clock (tests inject them).
    """
    log = log or stage_log(RECORD_KIND)
    notice = notice or stage_log(RECORD_KIND)
    stopwatch = Stopwatch()
    device = resolve_device(plan.template.device)
    if task is not None:
        splits = task.splits(device)
        fingerprint = task.data_fingerprint
    else:
        if splits is None:
            splits = load_splits(plan.template, device)
        fingerprint = data_fingerprint(plan.template, splits)
    n_train = len(splits.train)
    for b in plan.batch_sizes:
        resolve_batch_size(b, n_train)
    bench = _Bench(plan, splits, device, fingerprint, task, store, log)
    log(f"{len(plan.batch_sizes)} batch sizes × {len(plan.momenta) * plan.lr_points * plan.seeds} runs "
        f"(η × λ × seed), target {plan.target.key}; at most {plan.model_updates_budget:,} model-updates "
        "before any learning-rate grid is extended")
    estimate = estimate_line(_estimate_seconds(bench, clock), (
        f"for the runs still to train (a pilot of {PILOT_UPDATES} updates at each batch size × the update "
        "budgets; runs that reach the target early leave, so usually less; grid extensions add to it)"))
    if estimate is not None:
        notice(estimate)

    runs: list[dict[str, Any]] = []
    trained = 0
    for batch_size in plan.batch_sizes:
        entries, count = _search_at(bench, batch_size)
        runs += entries
        trained += count

    rows = _rows(plan, runs)
    reached = [row for row in rows if row["reached"]]
    if not reached:
        raise TargetNotReachedError(_nothing_reached(plan, runs))

    fit, fit_note = None, None
    if len(reached) >= MIN_POINTS:
        fit = fit_tradeoff({row["batch_size"]: row["steps_seeds"] for row in reached})
        fit_note = fit.unresolved
    else:
        fit_note = (f"the fit needs the target reached at {MIN_POINTS} or more batch sizes; it was reached at "
                    f"{len(reached)}")
    for row in rows:
        row["regime"] = regime(row["batch_size"], fit)
        row["fit_steps"] = None if fit is None or fit.unresolved else fit.steps(row["batch_size"])

    timing = None
    memory = largest_fitting_batch(plan.template, tuple(splits.input_shape), splits.num_classes, device, task=task)
    if time_batches:
        def measure(batch_sizes: list[int]) -> dict[str, Any]:
            log(f"timing one update at B = {', '.join(map(str, batch_sizes))} ({TIME_ROUNDS} interleaved rounds)")
            return time_updates(plan.template, batch_sizes, {r["batch_size"]: r["momentum"] for r in reached},
                                n_train, device=device, budget_s=plan.timing_budget_s, task=task, timer=timer,
                                load=load)

        recommendation, timing = recommend_measured(rows, fit, memory, measure)
    else:
        recommendation = recommend(rows, fit, memory, None)
    noise = _noise(plan, rows, fit, splits, device, log, task) if measure_noise else None
    choice = recommendation["choice"]
    recommendation["command"] = (python_call(choice, n_train) if task is not None and files is None
                                 else train_command(choice, plan.template.to_dict(), n_train, files))
    result = AdviseResult(
        plan=plan, runs=runs, rows=rows, fit=fit, fit_note=fit_note, noise=noise, memory=memory,
        recommendation=recommendation, trained_runs=trained, envelope=stopwatch.envelope(device),
        timing=None if timing is None else {k: v for k, v in timing.items() if k != "per_batch"},
    )
    if store is not None:
        store.put_record(RECORD_KIND, record_key(plan, task), result.to_dict())
    return result


def _estimate_seconds(bench: _Bench, clock: Callable[[], float] | None) -> float | None:
    """Seconds the plan's first grid may take at most for the runs not in the store, from a pilot
    pack at each B (:func:`batchlab.experiments.advise.trace.pilot_seconds`); None when every
    run is stored."""
    total, any_pending = 0.0, False
    for batch_size in bench.plan.batch_sizes:
        pending = bench.pending(bench.plan.configs(batch_size))
        if not pending:
            continue
        any_pending = True
        total += pilot_seconds(pending, bench.splits, bench.plan.target, bench.plan.budget(batch_size),
                               ratio=bench.plan.eval_ratio, device=bench.device, initializer=bench.initializer,
                               objective=bench.objective, **({} if clock is None else {"clock": clock}))
    return total if any_pending else None


def _search_at(bench: _Bench, batch_size: int) -> tuple[list[dict[str, Any]], int]:
    """The plan's grid at B, then the learning-rate grid of the best λ extended while its best η
    sits on an edge (:mod:`batchlab.experiments.advise.lr_search`)."""
    plan = bench.plan
    entries, trained = bench.outcomes(batch_size, plan.configs(batch_size), "runs")
    while True:
        best = _best_at(plan, batch_size, entries)
        momentum = None if best is None else best["momentum"]
        extra = next_learning_rates(plan, batch_size, entries, momentum)
        if not extra:
            break
        configs = [plan.template.replace(batch_size=batch_size, lr=lr, momentum=momentum, seed=seed)
                   for lr in extra for seed in range(plan.seeds)]
        bench.log(f"B = {batch_size}: best η = {best['lr']:.3g} (λ = {momentum:g}) is on an edge of its grid; "
                  f"trying η = {', '.join(f'{lr:.3g}' for lr in extra)}")
        more, count = bench.outcomes(batch_size, configs, "runs of the extended grid")
        entries += more
        trained += count
    reached = sum(e["status"] == REACHED for e in entries)
    bench.log(f"B = {batch_size}: {reached} of {len(entries)} runs reached {plan.target.key}")
    return entries, trained


def _run_entry(config: RunConfig, key: str, outcome: TraceOutcome) -> dict[str, Any]:
    return outcome.to_dict() | {"run_id": key.split("|")[0], "config": config.to_dict()}


def _best_at(plan: AdvisePlan, batch_size: int, entries: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The best (η, λ) at B: all its seeds reached the target, fewest mean steps (ties: smaller
    η); None when no (η, λ) qualifies."""
    candidates = []
    for momentum in plan.momenta:
        for lr, seeds in seeds_by_lr(entries, momentum).items():
            if all(e["status"] == REACHED for e in seeds):
                steps = [e["steps"] for e in seeds]
                candidates.append({"mean": statistics.fmean(steps), "lr": seeds[0]["lr"], "momentum": momentum,
                                   "steps": steps})
    return min(candidates, key=lambda c: (c["mean"], c["lr"])) if candidates else None


def _rows(plan: AdvisePlan, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per B: the best (η, λ) (:func:`_best_at`) and how its η search ended."""
    rows = []
    for batch_size in plan.batch_sizes:
        at_b = [r for r in runs if r["batch_size"] == batch_size]
        best = _best_at(plan, batch_size, at_b)
        row: dict[str, Any] = {"batch_size": batch_size, "budget": plan.budget(batch_size),
                               "reached": best is not None, "time_per_update_s": None, "time_to_target_s": None,
                               "time_low_s": None, "time_high_s": None}
        if best is not None:
            steps = best["steps"]
            search = search_outcome(plan, batch_size, best["momentum"], at_b)
            row |= {"lr": best["lr"], "momentum": best["momentum"], "steps": best["mean"], "steps_seeds": steps,
                    "steps_low": min(steps), "steps_high": max(steps),
                    "examples": best["mean"] * batch_size, "lr_at_edge": still_at_edge(search),
                    "lr_search": "one learning rate, not searched" if search is None else search.reason}
        else:
            row |= {"lr": None, "momentum": None, "steps": None, "steps_seeds": [], "examples": None,
                    "lr_at_edge": False, "lr_search": None,
                    "best_metric": best_value([v for r in at_b for _, v in r["trace"]], plan.target)}
        rows.append(row)
    return rows


def _nothing_reached(plan: AdvisePlan, runs: list[dict[str, Any]]) -> str:
    best, where = None, None
    for run in runs:
        value = best_value([v for _, v in run["trace"]], plan.target)
        if value is not None and (best is None or (value > best if plan.target.higher_is_better else value < best)):
            best, where = value, run
    seen = "no finite value" if best is None else (
        f"the best {plan.target.metric} seen was {best:.4g} (B = {where['batch_size']}, η = {where['lr']:.3g}, "
        f"λ = {where['momentum']:g})")
    return (f"no configuration reached {plan.target.key}: {len(runs)} runs at B = "
            f"{', '.join(map(str, plan.batch_sizes))} within their update budgets; {seen}; their outcomes are kept "
            "in the store, no advice was written; allowed: a target some configuration reaches, or a larger "
            "--budget-epochs")


def _noise(plan: AdvisePlan, rows: list[dict[str, Any]], fit: TradeoffFit | None, splits: Any,
           device: torch.device, log: Log, task: "Task | None") -> dict[str, Any] | None:
    """B_simple along the best run at the reached B closest (in log) to B_crit, else the middle one.
    The noise measurement differentiates cross-entropy: a task with another loss is skipped."""
    if task is not None and not task.objective.is_classification:
        log(f"noise scale: skipped (it is measured for cross-entropy; the task's loss is {task.objective.loss_name})")
        return None
    reached = [r for r in rows if r["reached"] and r["steps"] >= 1]
    if not reached:
        return None
    if fit is not None and fit.unresolved is None:
        row = min(reached, key=lambda r: abs(math.log(r["batch_size"] / fit.b_crit)))
    else:
        row = reached[len(reached) // 2]
    seed_steps = int(round(row["steps"]))
    config = plan.template.replace(batch_size=row["batch_size"], lr=row["lr"], momentum=row["momentum"], seed=0)
    n = len(splits.train)
    small, large = min(4, n - 1), max(2, min(256, n // 4))
    if not small < large:
        return None
    log(f"noise scale along the best run at B = {row['batch_size']} (updates 0, {seed_steps // 2}, {seed_steps})")
    points = noise_over_training(config, splits, plan.target, seed_steps, device=device, ratio=plan.eval_ratio,
                                 small_batch=small, large_batch=large, n_batches=plan.noise_batches,
                                 trace_examples=plan.noise_examples, task=task)
    return {"batch_size": row["batch_size"], "lr": row["lr"], "momentum": row["momentum"], "seed": 0,
            "small_batch": small, "large_batch": large, "points": points}
