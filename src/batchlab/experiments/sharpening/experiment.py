"""``batchlab sharpening``: λ_max every k updates for each batch size and learning rate, against
the stability bound of the optimizer.

What it tests (the exact statements; ``docs/science.md`` §4 gives the sources):

1. **Progressive sharpening** (Cohen et al., ICLR 2021, §3): with full-batch (and, more weakly,
   large-batch) gradient descent, λ_max of the training loss rises during training. Measured as
   each run's *rise*: its largest λ_max over the trajectory divided by λ_max at initialization.
2. **Edge of stability** (Cohen et al. 2021, §3 and Appendix on momentum): λ_max rises until it
   reaches the stability bound of the optimizer (2/η for gradient descent, 2(1 + λ)/η for the
   lecture's heavy-ball momentum, :func:`batchlab.geometry.stability.stability_bound`) and then
   hovers at it instead of going past; mini-batch SGD stays below it. A run *reached the edge*
   when its largest λ_max is at least :data:`EDGE_FRACTION` of its bound.
3. **η/B sets the sharpness reached** (Jastrzębski et al., "Three Factors Influencing Minima in
   SGD", 2018; also "On the Relation Between the Sharpest Directions of DNN Loss and the SGD Step
   Length", ICLR 2019): the larger the ratio of learning rate to batch size, the lower the
   sharpness of the region SGD ends in. Measured as λ_max at the end (the median over the last
   quarter of a run's points, which smooths the mini-batch noise) against η/B over the runs that
   finished: the share of pairs of runs with different η/B ordered as stated (the larger η/B,
   the lower λ_max), and Spearman's rank correlation.

Plan per scale (the same optimizer, the lecture's momentum, for every run; each B's runs trained
as one pack, :mod:`batchlab.experiments.sharpening.trajectory`):

* ``quick`` (about a minute on 2 CPU cores): mnist-5k without a validation split (4,000 training
  examples), the MLP 784-64-64-10 (narrower than the lecture's 784-512-512-10 so that a
  Hessian-vector product is cheap), SB = 32 and LB = 400 (10 % of the training set, Keskar et
  al.'s LB), η ∈ {0.03, 0.1, 0.3}, λ = 0.9, 200 updates, λ_max every 10 updates on 1,000 fixed
  training examples;
* ``full``: the lecture's MLP 784-512-512-10, η ∈ {0.01, 0.03, 0.1, 0.3}, 1,000 updates, λ_max
  every 20 updates on 2,000 examples (not run here; from the quick scale's product counts and a
  Hessian-vector product about 20 times as costly, an estimated tens of minutes on a CPU).

The result is one ``sharpening`` record in the run store (its key names what was asked for, so
a rerun replaces it).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from batchlab.config import RunConfig, check_seed, check_widths, parse_batch_size, resolve_batch_size
from batchlab.data.identity import load_splits
from batchlab.errors import ConfigError
from batchlab.experiments.sharpening.trajectory import Trajectory, probe_subset, sharpness_trajectories
from batchlab.experiments.shape import Envelope, Log, Stopwatch, check_scale, stage_log
from batchlab.geometry.stability import stability_bound
from batchlab.runtime.device import resolve_device
from batchlab.store.status import FINISHED

if TYPE_CHECKING:
    from batchlab.store import RunStore

RECORD_KIND = "sharpening"
# A run reached the edge of stability when its largest λ_max is at least this share of its bound.
EDGE_FRACTION = 0.9
# λ_max "at the end": the median over this last share of a run's points.
END_SHARE = 0.25


@dataclass(frozen=True)
class SharpeningPlan:
    """Everything ``batchlab sharpening`` will do; ``to_dict`` is what its record keeps as settings."""

    scale: str
    dataset: str
    hidden: tuple[int, ...]
    batch_sizes: tuple[int | str, ...]
    lrs: tuple[float, ...]
    momentum: float
    updates: int
    every: int
    probe_examples: int
    seed: int = 0
    device: str = "auto"
    data_dir: str | None = None

    def config(self, batch_size: int | str, lr: float) -> RunConfig:
        """The run at ``(batch_size, lr)``: the lecture's momentum, no validation split."""
        return RunConfig(dataset=self.dataset, model="mlp", hidden=self.hidden, optimizer="momentum",
                         batch_size=batch_size, lr=lr, momentum=self.momentum, seed=self.seed, val_fraction=0.0,
                         split_seed=0, device=self.device, data_dir=self.data_dir)

    def describe(self) -> str:
        widths = "-".join(str(w) for w in self.hidden)
        return (f"MLP 784-{widths}-10 on {self.dataset}, the lecture's momentum (λ = {self.momentum:g}), "
                f"B ∈ {{{', '.join(str(b) for b in self.batch_sizes)}}}, η ∈ {{{', '.join(f'{x:g}' for x in self.lrs)}}}, "
                f"{self.updates} updates, λ_max every {self.every} updates on {self.probe_examples:,} fixed training "
                f"examples, seed {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(hidden=list(self.hidden), batch_sizes=list(self.batch_sizes), lrs=list(self.lrs))
        return data


_SCALES = {
    "quick": SharpeningPlan("quick", "mnist-5k", (64, 64), (32, 400), (0.03, 0.1, 0.3), 0.9, 200, 10, 1000),
    "full": SharpeningPlan("full", "mnist-5k", (512, 512), (32, 400), (0.01, 0.03, 0.1, 0.3), 0.9, 1000, 20, 2000),
}


def plan_sharpening(
    scale: str = "quick",
    *,
    batch_sizes: Sequence[int | str] | None = None,
    lrs: Sequence[float] | None = None,
    momentum: float | None = None,
    updates: int | None = None,
    every: int | None = None,
    probe_examples: int | None = None,
    hidden: Sequence[int] | None = None,
    seed: int | None = None,
    device: str = "auto",
    data_dir: str | None = None,
) -> SharpeningPlan:
    """The plan at ``scale`` with any override, each checked (a ConfigError before anything trains)."""
    plan = _SCALES[check_scale(scale, tuple(_SCALES))]
    changes: dict[str, Any] = {"device": device, "data_dir": data_dir}
    if batch_sizes is not None:
        if not batch_sizes:
            raise ConfigError("no batch size given; allowed: integers ≥ 1 or 'full'")
        changes["batch_sizes"] = tuple(dict.fromkeys(parse_batch_size(b) for b in batch_sizes))
    if lrs is not None:
        if not lrs or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not (math.isfinite(x) and x > 0)
                          for x in lrs):
            raise ConfigError(f"learning rates {list(lrs)} are invalid; allowed: numbers > 0")
        changes["lrs"] = tuple(sorted(dict.fromkeys(float(x) for x in lrs)))
    if momentum is not None:
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
            raise ConfigError(f"momentum {momentum!r} is invalid; allowed: 0 ≤ λ < 1")
        changes["momentum"] = float(momentum)
    for name, value in (("updates", updates), ("every", every), ("probe_examples", probe_examples)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name.replace('_', ' ')} {value!r} is invalid; allowed: an integer ≥ 1")
            changes[name] = value
    if hidden is not None:
        changes["hidden"] = tuple(check_widths(list(hidden)))
    if seed is not None:
        changes["seed"] = check_seed(seed)
    plan = replace(plan, **changes)
    if plan.every > plan.updates:
        raise ConfigError(f"every {plan.every} is more than the {plan.updates} updates; allowed: 1 … {plan.updates}")
    return plan


def record_key(plan: SharpeningPlan) -> str:
    """Key of the ``sharpening`` record: what was asked for (a rerun replaces it)."""
    return (f"{plan.scale}|{plan.dataset}|hidden={','.join(map(str, plan.hidden))}|B={','.join(map(str, plan.batch_sizes))}"
            f"|lr={','.join(f'{x:g}' for x in plan.lrs)}|momentum={plan.momentum:g}|updates={plan.updates}"
            f"|every={plan.every}|probe={plan.probe_examples}|seed={plan.seed}")


# ---------------------------------------------------------------------------------- findings


def end_sharpness(points: Sequence[Sequence[Any]]) -> float | None:
    """λ_max at the end of a run: the median over the last :data:`END_SHARE` of its measured points."""
    values = [p[1] for p in points if p[1] is not None]
    if not values:
        return None
    return statistics.median(values[-max(1, math.ceil(END_SHARE * len(values))):])


def run_summary(run: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one run's trajectory the tables and findings use: λ_max at the start, its
    peak and where, at the end, the rise (peak / start) and the peak's share of the bound."""
    measured = [p for p in run["points"] if p[1] is not None]
    if not measured:
        return {"start": None, "peak": None, "peak_update": None, "end": None, "rise": None, "peak_over_bound": None}
    peak = max(measured, key=lambda p: p[1])
    start = measured[0][1] if measured[0][0] == 0 else None
    bound = run["bound"]
    return {"start": start, "peak": peak[1], "peak_update": peak[0], "end": end_sharpness(measured),
            "rise": None if not start else peak[1] / start,
            "peak_over_bound": None if not bound else peak[1] / bound}


def ordering(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Jastrzębski et al.'s statement on the finished runs: how many pairs with different η/B have
    the lower λ_max at the end on the side of the larger η/B, and Spearman's ρ of (η/B, λ_max end)."""
    points = [(r["lr_over_b"], r["summary"]["end"]) for r in runs
              if r["status"] == FINISHED and r["summary"]["end"] is not None]
    pairs = agreeing = 0
    for i, (ratio_i, end_i) in enumerate(points):
        for ratio_j, end_j in points[i + 1:]:
            if ratio_i != ratio_j:
                pairs += 1
                agreeing += (ratio_i > ratio_j) == (end_i < end_j)
    rho = _spearman([p[0] for p in points], [p[1] for p in points]) if len(points) >= 3 else None
    return {"runs": len(points), "pairs": pairs, "ordered": agreeing, "spearman": rho}


def _spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    from scipy.stats import spearmanr

    value = float(spearmanr(x, y).statistic)
    return None if math.isnan(value) else value


def findings(runs: Sequence[dict[str, Any]]) -> list[str]:
    """The three statements of the module docstring, each as a sentence from the numbers."""
    finished = [r for r in runs if r["status"] == FINISHED and r["summary"]["peak"] is not None]
    out = []
    if finished:
        rises = ", ".join(f"B = {r['batch_size']}, η = {r['lr']:g}: ×{r['summary']['rise']:.2g} by update "
                          f"{r['summary']['peak_update']}" for r in finished if r["summary"]["rise"] is not None)
        risen = sum((r["summary"]["rise"] or 0) > 1 for r in finished)
        out.append(f"Progressive sharpening (Cohen et al. 2021): λ_max rose above its initial value in {risen} of "
                   f"{len(finished)} finished runs (largest λ_max over its start: {rises}).")
        edge = [r for r in finished if r["summary"]["peak_over_bound"] is not None
                and r["summary"]["peak_over_bound"] >= EDGE_FRACTION]
        shares = ", ".join(f"B = {r['batch_size']}, η = {r['lr']:g}: {r['summary']['peak_over_bound']:.0%}"
                           for r in finished if r["summary"]["peak_over_bound"] is not None)
        out.append(f"Edge of stability (Cohen et al. 2021): {len(edge)} of {len(finished)} finished runs reached "
                   f"{EDGE_FRACTION:.0%} of the bound 2(1 + λ)/η (largest λ_max as a share of the bound: {shares}).")
    order = ordering(runs)
    if order["pairs"]:
        rho = "" if order["spearman"] is None else f"; Spearman's ρ of η/B and λ_max = {order['spearman']:.2f}"
        verdict = "as stated" if order["ordered"] == order["pairs"] else (
            "mostly as stated" if order["ordered"] > order["pairs"] / 2 else "not as stated")
        out.append(f"η/B sets the sharpness reached (Jastrzębski et al. 2018): of {order['pairs']} pairs of finished "
                   f"runs with different η/B, {order['ordered']} end with the lower λ_max on the side of the larger "
                   f"η/B — {verdict}{rho} (λ_max at the end: the median of the last {END_SHARE:.0%} of the points).")
    failed = [r for r in runs if r["status"] != FINISHED]
    if failed:
        out.append("Left out of these findings (drawn up to where they stopped): " + "; ".join(
            f"B = {r['batch_size']}, η = {r['lr']:g}: {r['status']} ({r['reason']})" for r in failed) + ".")
    return out


# ---------------------------------------------------------------------------------- running


@dataclass
class SharpeningResult:
    """The experiment's record: the plan, the probe, every run's trajectory and the findings."""

    plan: SharpeningPlan
    n_train: int
    runs: list[dict[str, Any]]
    findings: list[str]
    envelope: Envelope

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": RECORD_KIND,
            "plan": self.plan.to_dict(),
            "setting": self.plan.describe(),
            "n_train": self.n_train,
            "probe": {"examples": self.plan.probe_examples, "seed": self.plan.seed,
                      "rule": "λ_max of the mean cross-entropy on fixed training examples, by Lanczos to a relative "
                              "residual of 1e-3, warm-started from the previous eigenvector"},
            "edge_fraction": EDGE_FRACTION,
            "runs": self.runs,
            "ordering": ordering(self.runs),
            "findings": self.findings,
            **self.envelope.to_dict(),
        }


def run_entry(trajectory: Trajectory, batch_size: int, plan: SharpeningPlan) -> dict[str, Any]:
    """One run of the record: its settings, its bound, its status and its points
    ``[update, λ_max, residual, probe loss, products]``."""
    config = trajectory.config
    bound = stability_bound(config.optimizer, config.lr, config.momentum)
    run = {
        "batch_size": batch_size, "lr": config.lr, "momentum": config.momentum, "seed": config.seed,
        "lr_over_b": config.lr / batch_size, "bound": bound.value, "bound_rule": bound.rule,
        "status": str(trajectory.status), "reason": trajectory.reason,
        "initial": None if trajectory.initial is None else list(trajectory.initial),
        "final": None if trajectory.final is None else list(trajectory.final),
        "points": [p.to_list() for p in trajectory.points],
        "products": sum(p.products for p in trajectory.points),
    }
    run["summary"] = run_summary(run)
    return run


def run_sharpening(plan: SharpeningPlan, store: RunStore | None = None, *, log: Log | None = None,
                   progress: bool | None = None) -> SharpeningResult:
    """Train and measure every (B, η) of ``plan`` (module docstring); record the result in ``store``."""
    del progress  # one log line per batch size; the runs are short
    log = log or stage_log(RECORD_KIND)
    stopwatch = Stopwatch()
    device = resolve_device(plan.device)
    splits = load_splits(plan.config(plan.batch_sizes[0], plan.lrs[0]), device)
    n_train = len(splits.train)
    probe = probe_subset(splits.train, plan.probe_examples, plan.seed)
    sizes = {b: resolve_batch_size(b, n_train) for b in plan.batch_sizes}  # every B checked before training
    runs: list[dict[str, Any]] = []
    for batch_size, size in sizes.items():
        log(f"B = {batch_size}: η ∈ {{{', '.join(f'{x:g}' for x in plan.lrs)}}}, {plan.updates} updates …")
        trajectories = sharpness_trajectories([plan.config(batch_size, lr) for lr in plan.lrs], splits,
                                              updates=plan.updates, every=plan.every, probe=probe, device=device,
                                              log=log)
        runs += [run_entry(t, size, plan) for t in trajectories]
    result = SharpeningResult(plan, n_train, runs, findings(runs), stopwatch.envelope(device))
    if store is not None:
        store.put_record(RECORD_KIND, record_key(plan), result.to_dict())
    return result
