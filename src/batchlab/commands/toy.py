"""``batchlab toy``: the lecture's rolling ball -- GD and momentum on small error surfaces.

Prints a table of where each run stopped, the lambda sweep's verdicts and the lecture's claims with
whether they held; writes ``toy.json`` and one PNG + SVG figure per surface into ``--out``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from batchlab.commands._experiment import finish
from batchlab.commands._options import output_dir, seed_value
from batchlab.errors import ConfigError

if TYPE_CHECKING:
    from batchlab.toy.experiments import ToyRun, ToyReport

DEFAULT_OUT = Path("batchlab-report") / "toy"
ALL = "all"
# The command line's defaults, written here so that `--help` needs no NumPy; equal to
# batchlab.toy.experiments.DEFAULT_MOMENTA and batchlab.toy.trajectory.DEFAULT_STEPS (a test checks).
DEFAULT_MOMENTA = (0.5, 0.9)
DEFAULT_STEPS = 5000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "toy",
        help="momentum on toy error surfaces: does the ball roll through saddles and over small hills?",
        description="Run gradient descent and the lecture's momentum (m ← λm − ηg, θ ← θ + m) on small "
        "error surfaces (a ball on a slope with a small hill, a saddle, a valley, two minima…), sweep λ to show where momentum helps and "
        "where it does not, and check the lecture's claims on the runs. Writes toy.json and a PNG "
        "and SVG figure per surface.",
        epilog="Example: batchlab toy --surface ball --momentum 0.5 0.9 --out batchlab-report/toy",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--surface", nargs="+", default=[ALL], metavar="NAME",
                        help="one or more surface names, or all (default: all); an unknown name lists the known ones")
    parser.add_argument("--lr", type=float, default=None, metavar="ETA",
                        help="learning rate η for every surface (default: each surface's own)")
    parser.add_argument("--momentum", type=float, nargs="+", default=list(DEFAULT_MOMENTA), metavar="λ",
                        help="momentum values run besides GD (λ = 0 is always run), each in [0, 1) "
                        f"(default: {' '.join(f'{m:g}' for m in DEFAULT_MOMENTA)})")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, metavar="N",
                        help=f"most updates per run; a run stops earlier once at rest (default: {DEFAULT_STEPS})")
    parser.add_argument("--noise", type=float, default=0.0, metavar="S",
                        help="std of Gaussian gradient noise added to every run (default: 0)")
    parser.add_argument("--seed", type=seed_value, default=0, metavar="K", help="seed of the gradient noise (default: 0)")
    parser.add_argument("--out", type=output_dir, default=str(DEFAULT_OUT), metavar="DIR",
                        help=f"where toy.json and the figures go (default: {DEFAULT_OUT})")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    parser.set_defaults(handler=run_toy)


def chosen_surfaces(names: Sequence[str]) -> list[str]:
    """``all`` -> every registered surface; otherwise the names given, each checked, in order."""
    from batchlab.toy.surfaces import surface_names

    known = surface_names()
    if ALL in names:
        return list(known)
    for name in names:
        if name not in known:
            raise ConfigError(f"unknown surface {name!r}; known: {', '.join(known)}, or all")
    return list(dict.fromkeys(names))


def run_toy(args: argparse.Namespace) -> int:
    from batchlab.toy.experiments import lecture_toy_experiments

    report = lecture_toy_experiments(
        surfaces=chosen_surfaces(args.surface),
        lr=args.lr,
        momenta=args.momentum,
        steps=args.steps,
        noise_std=args.noise,
        seed=args.seed,
    )
    written = write_outputs(report, args.out)
    return finish(args.format, report.to_dict(), lambda: format_report(report), written=written)


def write_outputs(report: ToyReport, out: Path) -> list[Path]:
    """``toy.json`` and ``toy-<surface>.png/.svg`` into ``out``, each written atomically."""
    from batchlab.files import save_figure, write_json
    from batchlab.toy.plots import toy_figures  # matplotlib only when figures are made

    out.mkdir(parents=True, exist_ok=True)
    written = [write_json(out / "toy.json", report.to_dict())]
    for name, figure in toy_figures(report).items():
        written.extend(save_figure(figure, out / name))
    return written


def format_report(report: ToyReport) -> str:
    """The runs as one table, then per surface the λ sweep's verdicts and the checked claims."""
    headers = ["surface", "scenario", "method", "λ", "η", "noise", "end point", "ended at", "loss", "steps",
               "at rest", "left saddle"]
    rows = []
    for study in report.studies:
        tracks_escape = study.time_metric == "escape_step"
        for run in study.runs:
            rows.append(_row(run, tracks_escape))
    lines = [_table(headers, rows), ""]
    for study in report.studies:
        lines.append(f"{study.surface.name}: {study.surface.title}")
        for scenario in study.scenarios:
            lines.append(f"  scenario {scenario.key}: {scenario.description}")
        metric = "steps to leave the saddle" if study.time_metric == "escape_step" else "steps to come to rest"
        verdicts = "; ".join(f"{verdict}: λ = {', '.join(f'{m:g}' for m in lambdas)}"
                             for verdict, lambdas in study.sweep_summary().items())
        lines.append(f"  λ sweep ({study.sweep_scenario}, judged against GD by basin, then {metric}): {verdicts}")
        for finding in study.findings:
            lines.append(f"  [{'holds' if finding.holds else 'FAILS'}] {finding.claim}: {finding.evidence}")
        lines.append("")
    held = sum(f.holds for f in report.findings)
    lines.append(f"{held} of {len(report.findings)} claims held on these runs.")
    return "\n".join(lines)


def _row(run: ToyRun, tracks_escape: bool) -> list[str]:
    if not tracks_escape:
        escape = "-"
    else:
        escape = "never" if run.escape_step is None else f"step {run.escape_step}"
    return [
        run.surface,
        run.scenario,
        run.method,
        f"{run.momentum:g}",
        f"{run.lr:g}",
        f"{run.noise_std:g}",
        "(" + ", ".join(_number(v) for v in run.end) + ")",
        run.ended_at,
        _number(run.loss),
        str(run.steps),
        "yes" if run.converged else "no",
        escape,
    ]


def _number(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def render(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([render(headers), render(["-" * w for w in widths]), *(render(r) for r in rows)])
