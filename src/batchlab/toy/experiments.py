"""The lecture's momentum claims, run on the toy surfaces and checked against what happened.

The lecture (Hung-yi Lee, "Batch and Momentum") says plain gradient descent stops at a critical
point -- a saddle, or the first small local minimum -- while momentum ``m <- lambda m - eta g;
theta <- theta + m`` "rolls like a ball" through saddles and over a small hill into a better
minimum. :func:`lecture_toy_experiments` runs, on every surface, gradient descent (lambda = 0) and
momentum with a few lambda at one learning rate eta, then a sweep over lambda that shows where
momentum helps and where it does not, and states each claim with whether it held on these runs
(:class:`ClaimCheck`). Nothing is asserted in advance: change eta, lambda, noise or steps and the
findings report what the new runs did.

What the default settings show (eta per surface, ``batchlab toy`` prints the measured table):

* ``ball`` (1-D): GD crawls over the flat stretch and stops in the shallow minimum; lambda >= 0.8
  rolls over the hill into the global minimum, lambda <= 0.75 does not; at very large lambda the
  ball swings between wall and hill for hundreds of steps, and lambda = 0.95 even ends in the
  shallow minimum again.
* ``saddle``: started exactly on the stable manifold (y = 0) GD *and* momentum stop at the saddle
  -- in exact arithmetic momentum does not help there, because the gradient has no component that
  leads away. A tiny offset (y0 = 1e-6) or a little gradient noise lets both escape; momentum
  escapes in fewer steps, and the larger lambda the sooner, though a large lambda then needs longer
  to settle in the minimum.
* ``valley`` (ill-conditioned): every run ends in the one minimum; momentum gets there in fewer
  steps, too large a lambda (0.97, 0.99) in more steps than GD.
* ``two-minima``: GD ends in the shallow minimum near the start, momentum from lambda ~0.6 in the
  deeper one; large lambda still gets there, but needs many times the steps (0.99: ~2800 vs 83 at 0.7).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from batchlab.errors import ConfigError
from batchlab.toy.surfaces import Surface, get_surface, surface_names
from batchlab.toy.trajectory import (
    DEFAULT_STEPS,
    DIVERGED,
    Trajectory,
    escape_step,
    run_trajectory,
    validate_settings,
)

DEFAULT_MOMENTA = (0.5, 0.9)
DEFAULT_SWEEP = (0.0, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99)
DEFAULT_SADDLE_OFFSET = 1e-6
DEFAULT_SADDLE_NOISE = 1e-3
# Escaping a saddle: moving this far from it along the loss-lowering direction (half-way to the
# minima of the saddle surface, which lie at distance 1).
SADDLE_ESCAPE_RADIUS = 0.5

# Sweep verdicts, each relative to gradient descent (lambda = 0) in the same scenario.
BETTER = "better minimum"
WORSE = "worse minimum"
FASTER = "same end, faster"
SLOWER = "same end, slower"
SAME = "same"


@dataclass(frozen=True)
class Scenario:
    """A start point and a gradient-noise level on one surface."""

    key: str
    description: str
    start: tuple[float, ...]
    noise_std: float


@dataclass(frozen=True)
class ToyRun:
    """One toy run as a row of the table: where it stopped, its loss, and how many steps it took.

    ``escape_step`` is the first step at which a run on the ``saddle`` surface was farther than
    :data:`SADDLE_ESCAPE_RADIUS` from the saddle along its loss-lowering direction (``None``: never,
    or not a saddle study).
    """

    surface: str
    scenario: str
    method: str
    momentum: float
    lr: float
    noise_std: float
    seed: int
    start: tuple[float, ...]
    end: tuple[float, ...]
    ended_at: str
    loss: float
    steps: int
    converged: bool
    diverged: bool
    escape_step: int | None

    @classmethod
    def from_trajectory(cls, trajectory: Trajectory, scenario: str, escape: int | None) -> ToyRun:
        return cls(
            surface=trajectory.surface,
            scenario=scenario,
            method="GD" if trajectory.momentum == 0 else "momentum",
            momentum=trajectory.momentum,
            lr=trajectory.lr,
            noise_std=trajectory.noise_std,
            seed=trajectory.seed,
            start=tuple(float(v) for v in trajectory.start),
            end=tuple(float(v) for v in trajectory.final_point),
            ended_at=trajectory.ended_at,
            loss=trajectory.final_loss,
            steps=trajectory.steps,
            converged=trajectory.converged,
            diverged=trajectory.diverged,
            escape_step=escape,
        )

    def to_dict(self) -> dict:
        return {
            "surface": self.surface,
            "scenario": self.scenario,
            "method": self.method,
            "momentum": self.momentum,
            "lr": self.lr,
            "noise_std": self.noise_std,
            "seed": self.seed,
            "start": list(self.start),
            "end": [v if math.isfinite(v) else None for v in self.end],
            "ended_at": self.ended_at,
            "loss": self.loss if math.isfinite(self.loss) else None,
            "steps": self.steps,
            "converged": self.converged,
            "diverged": self.diverged,
            "escape_step": self.escape_step,
        }


@dataclass(frozen=True)
class SweepPoint:
    """One lambda of the sweep with its verdict against gradient descent (lambda = 0)."""

    record: ToyRun
    verdict: str

    def to_dict(self) -> dict:
        return {**self.record.to_dict(), "verdict": self.verdict}


@dataclass(frozen=True)
class ClaimCheck:
    """A claim of the lecture (or about where momentum does not help) and whether it held."""

    surface: str
    claim: str
    holds: bool
    evidence: str

    def to_dict(self) -> dict:
        return {"surface": self.surface, "claim": self.claim, "holds": self.holds, "evidence": self.evidence}


@dataclass
class SurfaceStudy:
    """Everything run on one surface.

    ``runs``: GD and each lambda in every scenario; ``trajectories`` holds their full paths, keyed
    ``(scenario, lambda)``; ``sweep``: the lambda sweep in ``sweep_scenario`` with a verdict each;
    ``time_metric`` names what "faster" means in the sweep (``"steps"`` to come to rest, or
    ``"escape_step"`` to leave the saddle); ``shown_scenario`` is the one the figures draw.
    """

    surface: Surface
    scenarios: list[Scenario]
    runs: list[ToyRun]
    trajectories: dict[tuple[str, float], Trajectory]
    sweep_scenario: str
    time_metric: str
    sweep: list[SweepPoint]
    findings: list[ClaimCheck] = field(default_factory=list)
    shown_scenario: str = ""

    def run(self, scenario: str, momentum: float) -> ToyRun:
        for record in self.runs:
            if record.scenario == scenario and record.momentum == momentum:
                return record
        raise KeyError((scenario, momentum))

    def shown_trajectories(self) -> dict[str, Trajectory]:
        """Label -> trajectory for the scenario the figures draw, GD first."""
        chosen = [t for (key, _), t in self.trajectories.items() if key == self.shown_scenario]
        return {t.label: t for t in sorted(chosen, key=lambda t: t.momentum)}

    def sweep_summary(self) -> dict[str, list[float]]:
        """Verdict -> the lambda values (> 0) of the sweep that earned it."""
        summary: dict[str, list[float]] = {}
        for point in self.sweep:
            if point.record.momentum > 0:
                summary.setdefault(point.verdict, []).append(point.record.momentum)
        return summary

    def to_dict(self, include_paths: bool = False) -> dict:
        data = {
            "surface": self.surface.describe(),
            "scenarios": [
                {"key": s.key, "description": s.description, "start": list(s.start), "noise_std": s.noise_std}
                for s in self.scenarios
            ],
            "runs": [r.to_dict() for r in self.runs],
            "sweep": {
                "scenario": self.sweep_scenario,
                "time_metric": self.time_metric,
                "points": [p.to_dict() for p in self.sweep],
                "summary": self.sweep_summary(),
            },
            "findings": [f.to_dict() for f in self.findings],
        }
        if include_paths:
            data["paths"] = [
                {"scenario": key, "momentum": momentum, "points": _json_numbers(t.points),
                 "losses": _json_numbers(t.losses)}
                for (key, momentum), t in self.trajectories.items()
            ]
        return data


def _json_numbers(values: np.ndarray) -> list:
    """Nested lists of floats with every non-finite value (a diverged run) as ``None``."""
    return np.where(np.isfinite(values), values, None).tolist()


@dataclass
class ToyReport:
    """The result of :func:`lecture_toy_experiments`: settings, one study per surface."""

    settings: dict
    studies: list[SurfaceStudy]

    @property
    def runs(self) -> list[ToyRun]:
        return [r for s in self.studies for r in s.runs]

    @property
    def findings(self) -> list[ClaimCheck]:
        return [f for s in self.studies for f in s.findings]

    def study(self, surface: str) -> SurfaceStudy:
        for study in self.studies:
            if study.surface.name == surface:
                return study
        raise KeyError(surface)

    def to_dict(self, include_paths: bool = False) -> dict:
        """JSON-serializable: settings, and per surface its description, runs, sweep, findings
        (and the full paths when ``include_paths``). Non-finite numbers become ``None``."""
        return {
            "settings": dict(self.settings),
            "surfaces": [s.to_dict(include_paths) for s in self.studies],
            "findings_held": sum(f.holds for f in self.findings),
            "findings_total": len(self.findings),
        }


def lecture_toy_experiments(
    surfaces: Sequence[str] | None = None,
    lr: float | None = None,
    momenta: Sequence[float] = DEFAULT_MOMENTA,
    steps: int = DEFAULT_STEPS,
    noise_std: float = 0.0,
    seed: int = 0,
    sweep: Sequence[float] = DEFAULT_SWEEP,
    saddle_offset: float = DEFAULT_SADDLE_OFFSET,
    saddle_noise: float = DEFAULT_SADDLE_NOISE,
) -> ToyReport:
    """Run GD and momentum on each surface and check the lecture's claims on the results.

    Arguments:
        surfaces: registry names (default: all, see :func:`batchlab.toy.surface_names`).
        lr: eta for every surface (default: each surface's own ``lr``, chosen so that plain GD is
            stable on it).
        momenta: the lambda values run besides GD (lambda = 0 is always run, as the baseline).
        steps: the most updates per run; runs stop earlier once at rest.
        noise_std: Gaussian gradient noise added in every scenario (default none).
        seed: seed of the gradient noise; every run of a study uses the same seed, so runs that
            differ only in lambda see the same noise.
        sweep: the lambda grid swept on each surface to find where momentum helps.
        saddle_offset: the saddle surface's "tiny offset" scenario starts this far off the stable
            manifold.
        saddle_noise: the saddle surface's "noise" scenario adds gradient noise of this size
            (or ``noise_std``, if larger).

    Returns a :class:`ToyReport`; ``report.to_dict()`` is JSON-ready; the figures are made by
    :func:`batchlab.toy.plots.study_figure`. Bad values raise :class:`ConfigError`.
    """
    names = list(dict.fromkeys(surface_names() if surfaces is None else surfaces))
    if not names:
        raise ConfigError(f"no surface given; known: {', '.join(surface_names())}")
    chosen = [get_surface(name) for name in names]
    lambdas = sorted({0.0, *(float(m) for m in momenta)})
    grid = sorted({0.0, *(float(m) for m in sweep)})
    for surface in chosen:  # every value checked before anything runs
        for value in lambdas + grid:
            validate_settings(lr if lr is not None else surface.lr, value, steps, noise_std)
    if not saddle_offset > 0:
        raise ConfigError(f"saddle offset must be > 0; got {saddle_offset}")
    if not (math.isfinite(saddle_noise) and saddle_noise > 0):
        raise ConfigError(f"saddle noise must be a finite number > 0; got {saddle_noise}")

    studies = []
    for surface in chosen:
        plan = _PLANS[surface.name]
        scenarios = plan.scenarios(surface, noise_std, saddle_offset, max(saddle_noise, noise_std))
        study = _run_study(surface, plan, scenarios, lr, lambdas, grid, steps, seed)
        study.findings = plan.findings(study)
        studies.append(study)

    settings = {
        "surfaces": names,
        "lr": {s.name: (lr if lr is not None else s.lr) for s in chosen},
        "momenta": lambdas,
        "steps": steps,
        "noise_std": noise_std,
        "seed": seed,
        "sweep": grid,
        "saddle_offset": saddle_offset,
        "saddle_noise": max(saddle_noise, noise_std),
        "saddle_escape_radius": SADDLE_ESCAPE_RADIUS,
        "rule": "m_0 = 0; m_t = λ m_{t-1} - η g_{t-1}; θ_t = θ_{t-1} + m_t",
    }
    return ToyReport(settings=settings, studies=studies)


# ----------------------------------------------------------------------------- running a study


@dataclass(frozen=True)
class _Plan:
    """What to run on one surface and which claims to check."""

    scenarios: Callable[[Surface, float, float, float], list[Scenario]]
    sweep_scenario: str
    shown_scenario: str
    time_metric: str
    findings: Callable[[SurfaceStudy], list[ClaimCheck]]


def _run_study(
    surface: Surface,
    plan: _Plan,
    scenarios: list[Scenario],
    lr: float | None,
    lambdas: list[float],
    grid: list[float],
    steps: int,
    seed: int,
) -> SurfaceStudy:
    saddle = surface.saddles[0] if plan.time_metric == "escape_step" else None

    def run(scenario: Scenario, momentum: float) -> tuple[Trajectory, ToyRun]:
        trajectory = run_trajectory(
            surface, scenario.start, lr, momentum=momentum, steps=steps, noise_std=scenario.noise_std, seed=seed
        )
        escape = None if saddle is None else escape_step(trajectory, surface, saddle, SADDLE_ESCAPE_RADIUS)
        return trajectory, ToyRun.from_trajectory(trajectory, scenario.key, escape)

    runs, trajectories = [], {}
    for scenario in scenarios:
        for momentum in lambdas:
            trajectory, record = run(scenario, momentum)
            runs.append(record)
            trajectories[(scenario.key, momentum)] = trajectory

    sweep_scenario = next(s for s in scenarios if s.key == plan.sweep_scenario)
    sweep_records = []
    for momentum in grid:
        already_run = [r for r in runs if r.scenario == sweep_scenario.key and r.momentum == momentum]
        sweep_records.append(already_run[0] if already_run else run(sweep_scenario, momentum)[1])
    baseline = sweep_records[0]
    sweep = [SweepPoint(r, _verdict(surface, r, baseline, plan.time_metric)) for r in sweep_records]
    return SurfaceStudy(
        surface=surface,
        scenarios=scenarios,
        runs=runs,
        trajectories=trajectories,
        sweep_scenario=sweep_scenario.key,
        time_metric=plan.time_metric,
        sweep=sweep,
        shown_scenario=plan.shown_scenario,
    )


def _basin_loss(surface: Surface, record: ToyRun) -> float:
    if record.ended_at == DIVERGED:
        return math.inf
    return surface.critical_point(record.ended_at).loss


def _time(record: ToyRun, metric: str) -> float:
    """Steps to the goal of the sweep; infinite when the run never got there."""
    if metric == "escape_step":
        return math.inf if record.escape_step is None else record.escape_step
    return record.steps if record.converged else math.inf


def _verdict(surface: Surface, record: ToyRun, baseline: ToyRun, metric: str) -> str:
    """Against GD: a lower basin is better, a higher one (or divergence) worse; in the same basin
    the run is faster or slower by the study's time metric."""
    mine, theirs = _basin_loss(surface, record), _basin_loss(surface, baseline)
    if mine < theirs - 1e-9:
        return BETTER
    if mine > theirs + 1e-9:
        return WORSE
    if _time(record, metric) < _time(baseline, metric):
        return FASTER
    if _time(record, metric) > _time(baseline, metric):
        return SLOWER
    return SAME


# ----------------------------------------------------------------------------- claims, checked


def _lambdas(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values) if values else "none"


def _outcome(record: ToyRun) -> str:
    if record.diverged:
        return f"λ={record.momentum:g}: diverged after {record.steps} steps"
    rest = "" if record.converged else f" (still moving after {record.steps} steps)"
    return f"λ={record.momentum:g}: {record.ended_at}, loss {record.loss:.4g}, {record.steps} steps{rest}"


def _rests_in(record: ToyRun, basin: str) -> bool:
    """The run came to rest (not merely ran out of steps) at the named critical point."""
    return record.converged and record.ended_at == basin


def _better_minimum_findings(trap: str, goal: str) -> Callable[[SurfaceStudy], list[ClaimCheck]]:
    """Claims for a surface with a shallow minimum near the start and a better one further on."""

    def findings(study: SurfaceStudy) -> list[ClaimCheck]:
        name = study.surface.name
        scenario = study.sweep_scenario
        gd = study.run(scenario, 0.0)
        rolling = [r for r in study.runs if r.scenario == scenario and r.momentum > 0]
        swept = [p.record for p in study.sweep if p.record.momentum > 0]
        reached = [r for r in swept if _rests_in(r, goal)]
        first_reaching = min((r.momentum for r in reached), default=math.inf)
        trapped = [r.momentum for r in swept if _rests_in(r, trap)]
        too_little = [m for m in trapped if m < first_reaching]
        thrown_back = [m for m in trapped if m > first_reaching]
        overshoot = f", λ ∈ {{{_lambdas(thrown_back)}}} overshoot and end in the {trap} again" if thrown_back else ""
        largest = study.sweep[-1].record
        best = min(reached, key=lambda r: (r.steps, r.momentum)) if reached else None
        return [
            ClaimCheck(name, f"Gradient descent stops in the {trap}", _rests_in(gd, trap), _outcome(gd)),
            ClaimCheck(
                name,
                f"Momentum rolls over the hill into the {goal}",
                any(_rests_in(r, goal) for r in rolling),
                "; ".join(_outcome(r) for r in rolling) or "no momentum run",
            ),
            ClaimCheck(
                name,
                f"Too little momentum does not help: small λ stops in the {trap} like GD",
                _rests_in(gd, trap) and bool(too_little),
                f"sweep: λ ∈ {{{_lambdas(too_little)}}} end in the {trap}, "
                f"λ ∈ {{{_lambdas([r.momentum for r in reached])}}} in the {goal}{overshoot}",
            ),
            ClaimCheck(
                name,
                "Too much momentum costs: the largest λ ends in a worse place or needs more steps than the best λ",
                best is not None
                and (_basin_loss(study.surface, largest) > _basin_loss(study.surface, best) + 1e-9
                     or largest.steps > best.steps),
                f"largest {_outcome(largest)}; " + (f"best {_outcome(best)}" if best else f"no λ reached the {goal}"),
            ),
        ]

    return findings


def _saddle_findings(study: SurfaceStudy) -> list[ClaimCheck]:
    name = study.surface.name

    def escapes(scenario: str) -> tuple[ToyRun, list[ToyRun]]:
        records = [r for r in study.runs if r.scenario == scenario]
        return records[0], records[1:]

    def escape_text(records: Sequence[ToyRun]) -> str:
        return "; ".join(
            f"λ={r.momentum:g}: " + ("never left" if r.escape_step is None else f"left after {r.escape_step} steps")
            for r in records
        )

    def escaped_sooner(gd: ToyRun, rolling: list[ToyRun]) -> bool:
        return (
            gd.escape_step is not None
            and bool(rolling)
            and all(r.escape_step is not None and r.escape_step < gd.escape_step for r in rolling)
        )

    gd, rolling = escapes("on-manifold")
    offset = next(s for s in study.scenarios if s.key == "offset")
    noisy = next(s for s in study.scenarios if s.key == "noise")
    gd_offset, rolling_offset = escapes("offset")
    gd_noise, rolling_noise = escapes("noise")
    escape_times = [_time(p.record, "escape_step") for p in study.sweep]
    largest, baseline = study.sweep[-1].record, study.sweep[0].record
    return [
        ClaimCheck(
            name,
            "Started exactly on the saddle's stable manifold (y = 0), gradient descent stops at the saddle",
            _rests_in(gd, "saddle"),
            _outcome(gd),
        ),
        ClaimCheck(
            name,
            "So does momentum: on y = 0 the gradient never points off the manifold, so no λ escapes",
            bool(rolling) and all(_rests_in(r, "saddle") for r in rolling),
            "; ".join(_outcome(r) for r in rolling) or "no momentum run",
        ),
        ClaimCheck(
            name,
            f"A tiny offset (y0 = {offset.start[1]:g}) lets both escape, momentum in fewer steps",
            escaped_sooner(gd_offset, rolling_offset),
            escape_text([gd_offset, *rolling_offset]),
        ),
        ClaimCheck(
            name,
            f"Gradient noise (σ = {noisy.noise_std:g}) lets both escape, momentum in fewer steps",
            escaped_sooner(gd_noise, rolling_noise),
            escape_text([gd_noise, *rolling_noise]),
        ),
        ClaimCheck(
            name,
            "The larger λ, the sooner the escape (offset start, sweep over λ)",
            all(a >= b for a, b in zip(escape_times, escape_times[1:])) and math.isfinite(escape_times[-1]),
            escape_text([p.record for p in study.sweep]),
        ),
        ClaimCheck(
            name,
            "But too much momentum then needs more steps than GD to come to rest in the minimum",
            largest.steps > baseline.steps or not largest.converged,
            f"largest {_outcome(largest)}; GD {_outcome(baseline)}",
        ),
    ]


def _valley_findings(study: SurfaceStudy) -> list[ClaimCheck]:
    name = study.surface.name
    gd = study.run("start", 0.0)
    rolling = [r for r in study.runs if r.scenario == "start" and r.momentum > 0]
    slower = [p.record for p in study.sweep if p.verdict in (SLOWER, WORSE)]
    all_runs = [gd, *rolling]
    return [
        ClaimCheck(
            name,
            "GD and momentum all come to rest in the same (only) minimum",
            all(r.ended_at == "minimum" and r.converged for r in all_runs),
            "; ".join(_outcome(r) for r in all_runs),
        ),
        ClaimCheck(
            name,
            "Momentum gets there in fewer steps than GD",
            bool(rolling) and all(r.converged and r.steps < gd.steps for r in rolling),
            "; ".join(_outcome(r) for r in all_runs),
        ),
        ClaimCheck(
            name,
            "Too much momentum is slower than GD",
            bool(slower),
            f"sweep: slower than GD ({gd.steps} steps) for λ ∈ {{{_lambdas([r.momentum for r in slower])}}}"
            + (f"; largest {_outcome(study.sweep[-1].record)}" if study.sweep else ""),
        ),
    ]


def _single_start(surface: Surface, noise: float, offset: float, saddle_noise: float) -> list[Scenario]:
    return [Scenario("start", f"from {_point(surface.start)}", tuple(surface.start), noise)]


def _saddle_scenarios(surface: Surface, noise: float, offset: float, saddle_noise: float) -> list[Scenario]:
    x0 = surface.start[0]
    return [
        Scenario("on-manifold", f"from ({x0:g}, 0), on the stable manifold", (x0, 0.0), noise),
        Scenario("offset", f"from ({x0:g}, {offset:g}), a tiny offset", (x0, offset), noise),
        Scenario("noise", f"from ({x0:g}, 0) with gradient noise σ={saddle_noise:g}", (x0, 0.0), saddle_noise),
    ]


def _point(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")" if len(values) > 1 else f"x={values[0]:g}"


_PLANS: dict[str, _Plan] = {
    "ball": _Plan(_single_start, "start", "start", "steps", _better_minimum_findings("shallow minimum", "global minimum")),
    "saddle": _Plan(_saddle_scenarios, "offset", "offset", "escape_step", _saddle_findings),
    "valley": _Plan(_single_start, "start", "start", "steps", _valley_findings),
    "two-minima": _Plan(_single_start, "start", "start", "steps", _better_minimum_findings("shallow minimum", "deep minimum")),
}

