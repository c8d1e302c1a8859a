"""``batchlab landscape RUN_A RUN_B``: Keskar's 1-D parametric plot between two stored minima,
and optionally Li et al.'s 2-D filter-normalized contour around one of them."""

from __future__ import annotations

import argparse
from pathlib import Path

from batchlab.commands._deferred import RecordsAfterSuccess
from batchlab.commands._experiment import finish
from batchlab.commands._options import (
    add_device_option,
    add_progress_option,
    add_store_option,
    output_dir,
    seed_value,
    stage_printer,
)
from batchlab.task.options import add_task_options, user_task_files
from batchlab.errors import ConfigError

DEFAULT_OUT = Path("batchlab-report") / "landscape"
# The command line's defaults, written here so that `--help` needs no torch; equal to
# batchlab.geometry.landscape's (a test checks).
BN_MODES = ("interpolate", "recompute")
DEFAULT_BN_MODE = "recompute"
DEFAULT_ALPHA_RANGE = (-1.0, 2.0, 31)
DEFAULT_GRID_STEPS = 21
DEFAULT_SPAN = 1.0
# Bounds that keep one call to seconds or minutes: each α costs a pass over the examples and
# each contour point another; beyond |α| = 10 the line leaves any region the two minima describe.
ALPHA_LIMIT = 10.0
MAX_ALPHAS = 1001
MAX_GRID = 201


def register(subparsers: argparse._SubParsersAction) -> None:
    start, stop, count = DEFAULT_ALPHA_RANGE
    parser = subparsers.add_parser(
        "landscape",
        help="loss along the line between two stored minima (Keskar's Figure 3) and a 2-D contour",
        description="Reopen two stored runs of the same network and data and evaluate the network "
        "(1 − α)·A + α·B for α on a grid (Keskar et al. 2017, Figure 3: A = the small-batch minimum, "
        "B = the large-batch one): training and test cross-entropy and accuracy (or the loss and metric your model file names). Batch-norm running "
        "statistics are recomputed at every α by a pass over the training examples (default), or "
        "interpolated with the weights as in Keskar et al.'s own code (--bn interpolate; exact at "
        "α = 0 and 1, but extrapolated variances can fall below zero and are then set to 0). --contour RUN "
        "adds Li et al.'s 2-D contour of the training loss around RUN's minimum along two random "
        "filter-normalized directions. Prints the table, writes PNG and SVG figures and a JSON file "
        "to --out and stores each result as a 'landscape' record.",
        epilog="Example: batchlab landscape 3f2a9c0d11e4b5a6 8c1d0e2f3a4b5c6d --store batchlab-runs/runs.db "
        "--alphas -1 2 31 --examples 2000 --contour 3f2a9c0d11e4b5a6",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_a", metavar="RUN_A", help="run id at α = 0 (Keskar: the small-batch minimum)")
    parser.add_argument("run_b", metavar="RUN_B", help="run id at α = 1 (Keskar: the large-batch minimum)")
    add_store_option(parser)
    parser.add_argument("--alphas", nargs=3, type=float, default=[start, stop, count], metavar=("START", "STOP", "COUNT"),
                        help=f"α from START to STOP in COUNT points, START and STOP within [−{ALPHA_LIMIT:g}, "
                        f"{ALPHA_LIMIT:g}], COUNT 2 … {MAX_ALPHAS} (default: {start:g} {stop:g} {count})")
    parser.add_argument("--bn", choices=BN_MODES, default=DEFAULT_BN_MODE,
                        help="batch-norm running statistics: recompute them at every α from the training "
                        "examples (default) or interpolate them with the weights (Keskar et al.'s code)")
    parser.add_argument("--examples", type=int, default=None,
                        help="training examples used (a seeded random subset; default: the whole training split)")
    parser.add_argument("--test-examples", type=int, default=None,
                        help="test examples used (a seeded random subset; default: the whole test split)")
    parser.add_argument("--contour", metavar="RUN", default=None,
                        help="also draw the 2-D filter-normalized contour around this run's minimum")
    parser.add_argument("--grid", type=int, default=DEFAULT_GRID_STEPS,
                        help=f"contour grid points per axis, 2 … {MAX_GRID} (default: {DEFAULT_GRID_STEPS})")
    parser.add_argument("--span", type=float, default=DEFAULT_SPAN,
                        help=f"contour covers [−SPAN, SPAN]² in units of the directions (default: {DEFAULT_SPAN:g})")
    parser.add_argument("--seed", type=seed_value, default=0,
                        help="seed of the example subsets, the contour's directions and dropout in --bn recompute (default: 0)")
    parser.add_argument("--force", action="store_true", help="compute again even if the store holds the result")
    parser.add_argument("--out", type=output_dir, default=str(DEFAULT_OUT), metavar="DIR", help=f"where figures and JSON go (default: {DEFAULT_OUT})")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    add_task_options(parser, measured=True)
    add_device_option(parser)
    add_progress_option(parser, "a line per stage with the seconds so far")
    parser.set_defaults(handler=run_landscape)


def alphas_from_args(values: list[float]) -> list[float]:
    from batchlab.geometry.landscape import alpha_grid

    start, stop, count = values
    for name, value in (("start", start), ("stop", stop)):
        if not -ALPHA_LIMIT <= value <= ALPHA_LIMIT:  # also refuses nan
            raise ConfigError(f"--alphas {name} {value:g} is out of range; allowed: "
                              f"−{ALPHA_LIMIT:g} ≤ α ≤ {ALPHA_LIMIT:g}, e.g. --alphas -1 2 31")
    if not float(count).is_integer() or not 2 <= count <= MAX_ALPHAS:
        problem = "is out of range" if float(count).is_integer() else "is not an integer"
        raise ConfigError(f"number of alphas {count:g} {problem}; allowed: an integer 2 … {MAX_ALPHAS}, "
                          "e.g. --alphas -1 2 31")
    return alpha_grid(start, stop, int(count))


def check_grid(steps: int) -> int:
    if not 2 <= steps <= MAX_GRID:
        raise ConfigError(f"--grid {steps} is out of range; allowed: an integer 2 … {MAX_GRID} points per axis "
                          f"(odd puts the minimum at the centre)")
    return steps


def run_landscape(args: argparse.Namespace) -> int:
    from batchlab.experiments.gap.measurements import measure_contour, measure_parametric
    from batchlab.files import save_figure, write_json
    from batchlab.experiments.gap.plots import LinePanel, plot_contour, plot_parametric
    from batchlab.store import RunStore
    from batchlab.training.restore import restore_run

    alphas = alphas_from_args(args.alphas)
    check_grid(args.grid)
    say = stage_printer(args.progress)
    files = user_task_files(args)
    with RunStore(args.store, create=False) as opened:
        # New records wait until the figures and JSON are written, so a failure stores nothing.
        store = RecordsAfterSuccess(opened)
        say(f"restoring runs {args.run_a} and {args.run_b}")
        run_a = restore_run(opened, args.run_a, device=args.device, files=files)
        known = [run_a.task] if run_a.task is not None else []
        run_b = restore_run(opened, args.run_b, device=args.device, files=files, tasks=known)
        check_same_task(run_a, run_b)
        if run_a.splits.test is None:
            raise ConfigError(f"run {run_a.run_id} has no test split, which the line is measured on; allowed: data "
                              "with a test split (x_test, y_test)")
        say(f"loss and accuracy at {len(alphas)} points of the line between them")
        line, key, reused = measure_parametric(
            store, run_a, run_b, alphas=alphas, bn=args.bn, examples=args.examples,
            test_examples=args.test_examples, seed=args.seed, reuse=not args.force,
        )
        contour = None
        if args.contour is not None:
            centre = {run_a.run_id: run_a, run_b.run_id: run_b}.get(args.contour) or restore_run(
                opened, args.contour, device=args.device, files=files, tasks=known)
            say(f"training loss on a {args.grid}×{args.grid} grid around {centre.run_id}")
            contour = measure_contour(store, centre, steps=args.grid, span=args.span, examples=args.examples,
                                      seed=args.seed, reuse=not args.force)

        stem = f"landscape-{run_a.run_id[:8]}-{run_b.run_id[:8]}-bn-{args.bn}"
        title = (f"{run_a.config.model} on {run_a.config.dataset}: A batch size {run_a.config.batch_size}, "
                 f"B batch size {run_b.config.batch_size}")
        written = save_figure(plot_parametric([LinePanel(title, line, f"A ({run_a.run_id[:8]})",
                                                         f"B ({run_b.run_id[:8]})")]), args.out / stem)
        result = {"key": key, "from_store": reused, "run_a": run_a.run_id, "run_b": run_b.run_id,
                  "line": line.to_dict()}
        if contour is not None:
            grid, contour_key, contour_reused = contour
            written += save_figure(plot_contour(grid, f"{centre.config.model} on {centre.config.dataset}, run "
                                                      f"{centre.run_id[:8]} (B {centre.config.batch_size})"),
                                   args.out / f"contour-{centre.run_id[:8]}")
            result["contour"] = {"key": contour_key, "from_store": contour_reused, "run_id": centre.run_id,
                                 "grid": grid.to_dict()}
        written.append(write_json(args.out / f"{stem}.json", result))
        store.commit()
    say("done")

    def text() -> str:
        lines = [format_line(run_a, run_b, line, reused)]
        if contour is not None:
            grid = contour[0]
            lines.append(f"contour around {centre.run_id}: {len(grid.a)}×{len(grid.b)} grid over "
                         f"[−{grid.span:g}, {grid.span:g}]², loss at the minimum {grid.center_loss:.6g}, largest "
                         f"{max(max(r) for r in grid.loss):.6g}" + (" (from the store)" if contour[2] else ""))
        return "\n".join(lines)

    return finish(args.format, result, text, written=written)


def check_same_task(run_a, run_b) -> None:
    """ConfigError unless two runs of a user's model trained the same model and data (the line
    is evaluated on A's data, with A's loss)."""
    if run_a.task is None and run_b.task is None:
        return
    same = (run_a.task is not None and run_b.task is not None
            and run_a.task.data_fingerprint["sha256"] == run_b.task.data_fingerprint["sha256"]
            and run_a.objective.loss_name == run_b.objective.loss_name
            and run_a.objective.metric_name == run_b.objective.metric_name)
    if not same:
        raise ConfigError(f"runs {run_a.run_id} and {run_b.run_id} trained other models or data (or one a registry "
                          "model); allowed: two runs of the same model, loss and data")


def format_line(run_a, run_b, line, reused: bool) -> str:
    origin = " (from the store; --force computes again)" if reused else ""
    lines = [
        f"Parametric line A = {run_a.run_id} (B={run_a.config.batch_size}) → B = {run_b.run_id} "
        f"(B={run_b.config.batch_size}), {run_a.config.model} on {run_a.config.dataset}; batch norm: "
        f"{line.bn if line.has_batch_norm else 'none'}; {line.train_examples} training / {line.test_examples} test examples{origin}",
        f"{'alpha':>6} {'train loss':>11} {'train ' + line.metric:>9} {'test loss':>11} {'test ' + line.metric:>9}",
    ]
    for p in line.points:
        flag = f"  ({p.clamped_variances} variances clamped)" if p.clamped_variances else ""
        lines.append(f"{p.alpha:>6.2f} {p.train_loss:>11.5g} {p.train_acc:>9.4f} {p.test_loss:>11.5g} {p.test_acc:>9.4f}{flag}")
    return "\n".join(lines)
