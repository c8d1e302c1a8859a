"""``batchlab sharpness RUN_ID``: Keskar et al.'s sharpness (Metric 2.1) of a stored run's minimum."""

from __future__ import annotations

import argparse
import sys

from batchlab.commands._experiment import finish
from batchlab.commands._options import (
    add_device_option,
    add_progress_option,
    add_store_option,
    seed_value,
    stage_printer,
)
from batchlab.task.options import add_task_options, user_task_files


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sharpness",
        help="Keskar et al.'s sharpness of a stored run's minimum (full space and random subspace)",
        description="Reopen a stored run with its final weights and measure Keskar et al.'s "
        "sharpness φ = 100·(max over the box C_ε of f(x + Ay) − f(x)) / (1 + f(x)), f the mean "
        "training loss (cross-entropy, or the loss your model file names), the box ε(|(A⁺x)_i| + 1) wide, the maximum taken as in the paper by L-BFGS-B "
        "from y = 0 with a fixed iteration budget (--corner-start adds a run from the box vertex along the "
        "gradient's sign, reported in its own column, not the paper's measure). A = I (full space, their Table 3) and a random n×p matrix with "
        "N(0, 1/n) entries, i.e. columns of unit length like those of I (their Table 4, p = 100). Beside it, at the "
        "point: λ_max (Lanczos), the Hessian trace (Hutchinson, with its standard error), the stability bound of "
        "the run's optimizer (2/η, 2(1 + λ)/η with momentum λ) and the adaptive sharpness of Kwon et al. 2021, "
        "which layer rescalings do not change. One 'sharpness' record per row is stored. "
        "A line on stderr warns when the point does not look like a minimum (the slope makes most of the rise, a "
        "stored `batchlab hessian` result finds negative curvature or a large gradient, or the final training "
        "accuracy is below the run's best).",
        epilog="Example: batchlab sharpness 3f2a9c… --store batchlab-runs/runs.db --epsilon 1e-3 5e-4 --subspace-dim 100",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="a run id listed by `batchlab runs`")
    add_store_option(parser)
    parser.add_argument("--epsilon", type=float, nargs="+", default=[1e-3, 5e-4],
                        help="box sizes ε (default: 1e-3 5e-4, Keskar et al.'s)")
    space = parser.add_mutually_exclusive_group()
    space.add_argument("--subspace-dim", type=int, default=100,
                       help="dimension p of the random subspace measured besides the full space (default: 100)")
    space.add_argument("--full-space-only", action="store_true", help="skip the random subspace")
    parser.add_argument("--iterations", type=int, default=10, help="L-BFGS-B iterations (default: 10, as in the paper)")
    parser.add_argument("--seed", type=seed_value, default=0, help="seed of the random matrix A and of --examples (default: 0)")
    parser.add_argument("--corner-start", action="store_true",
                        help="also search from the box vertex along the gradient's sign (own column; not the paper's)")
    parser.add_argument("--trace-samples", type=int, default=100,
                        help="Rademacher vectors of the Hessian trace estimate (default: 100; 0 skips the trace)")
    parser.add_argument("--adaptive-rho", type=float, default=0.01,
                        help="ρ of the adaptive sharpness: each weight moves at most ρ(|w| + η₀) (default: 0.01)")
    parser.add_argument("--adaptive-eta", type=float, default=0.0,
                        help="η₀ of the adaptive sharpness (default: 0, exactly invariant under layer rescaling)")
    parser.add_argument("--examples", type=int, default=None,
                        help="use a random subset of this many training examples (default: all)")
    parser.add_argument("--chunk-size", type=int, default=1000, help="examples per forward pass (default: 1000)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    add_task_options(parser, measured=True)
    add_device_option(parser)
    add_progress_option(parser, "a line per stage with the seconds so far")
    parser.set_defaults(handler=run_sharpness)


def record_key(run_id: str, row: dict, args: argparse.Namespace) -> str:
    """The store key of one row: the run and every option that changes its number."""
    from batchlab.experiments.gap.measurements import sharpness_key

    return sharpness_key(run_id, epsilon=row["epsilon"], subspace_dim=None if row["full_space"] else row["p"],
                         iterations=row["iterations"], seed=row["seed"], examples=args.examples)


def minimum_warning(store, run_id: str, rows: list[dict]) -> str | None:
    """The one-line warning of :mod:`batchlab.geometry.minimum` for these rows, or None: the slope
    test on the rows, the second-order test of the run's stored ``hessian`` records (the first that
    finds no minimum) and the run's logged training accuracy."""
    from batchlab.geometry import accuracy_reason, curvature_reason, not_a_minimum_warning, slope_reason

    hessians = [value["classification"] for value in store.records("hessian") if value.get("run_id") == run_id]
    curvature = next((reason for reason in map(curvature_reason, hessians) if reason), None)
    slope = next((reason for reason in map(slope_reason, rows) if reason), None)
    return not_a_minimum_warning([slope, curvature and f"stored hessian: {curvature}",
                                  accuracy_reason(store.metrics(run_id))])


def run_sharpness(args: argparse.Namespace) -> int:
    from batchlab.runtime.environment import describe_environment
    from batchlab.errors import ConfigError
    from batchlab.geometry import curvature_measures, select_examples, sharpness_table, stability_bound
    from batchlab.geometry.adaptive import check_adaptive_options
    from batchlab.store import RunStore
    from batchlab.training.restore import restore_run

    say = stage_printer(args.progress)
    files = user_task_files(args)
    with RunStore(args.store, create=False) as store:
        say(f"restoring run {args.run_id}")
        restored = restore_run(store, args.run_id, device=args.device, files=files)
        x, y = select_examples(restored.splits.train.x, restored.splits.train.y, args.examples, args.seed)
        if args.trace_samples < 0 or args.trace_samples == 1:
            raise ConfigError(f"trace samples {args.trace_samples} is invalid; allowed: 0 (no trace) or an integer ≥ 2")
        check_adaptive_options(args.adaptive_rho, args.adaptive_eta, args.iterations)
        say(f"L-BFGS-B over the box for each of {len(args.epsilon)} ε on {len(y)} examples")
        rows = sharpness_table(
            restored.model, x, y,
            epsilons=args.epsilon,
            subspace_dim=None if args.full_space_only else args.subspace_dim,
            iterations=args.iterations, seed=args.seed, chunk_size=args.chunk_size, corner_start=args.corner_start,
            loss=restored.objective.loss,
        )
        say("λ_max, Hessian trace and adaptive sharpness at the point")
        config = restored.config
        point = curvature_measures(
            restored.model, x, y, trace_samples=args.trace_samples or None, rho=args.adaptive_rho,
            eta=args.adaptive_eta, iterations=args.iterations, seed=args.seed, chunk_size=args.chunk_size,
            loss=restored.objective.loss,
        )
        bound = stability_bound(config.optimizer, config.lr, config.momentum, nesterov=config.nesterov,
                                weight_decay=config.weight_decay)
        point.update(stability_bound=bound.value, stability_rule=bound.rule)
        rows = [{**row, **point} for row in rows]
        environment = describe_environment(next(restored.model.parameters()).device)
        keyed = []
        for row in rows:
            key = record_key(restored.run_id, row, args)
            store.put_record("sharpness", key, {"run_id": restored.run_id, "config": restored.config.to_dict(),
                                                **row, "environment": environment})
            keyed.append((key, row))
        warning = minimum_warning(store, restored.run_id, rows)
    if warning:
        print(warning, file=sys.stderr)
    return finish(args.format, [{"key": key, "run_id": restored.run_id, **row} for key, row in keyed],
                  lambda: format_table(restored, [row for _, row in keyed], args.store))


def point_lines(row: dict) -> list[str]:
    """The measures at the point (the same in every row), one per line."""
    bound = row["stability_bound"]
    ratio = f"; λ_max / bound = {row['lambda_max'] / bound:.3g}" if bound else ""
    lines = [
        f"λ_max {row['lambda_max']:.6g} (Lanczos, residual ‖Hv − λv‖ = {row['lambda_max_residual']:.2g}); "
        f"stability bound of the run's optimizer: "
        + (f"{bound:.6g} = {row['stability_rule']}{ratio}" if bound is not None else row["stability_rule"]),
    ]
    if row["trace"] is not None:
        lines.append(f"Hessian trace {row['trace']:.6g} ± {row['trace_stderr']:.2g} (Hutchinson, standard error, "
                     f"{row['trace_samples']} Rademacher vectors)")
    lines.append(f"adaptive sharpness {row['adaptive_sharpness']:.4g} = max f(x + (|x| + η₀)u) − f(x) over |u_i| ≤ ρ, "
                 f"ρ = {row['adaptive_rho']:g}, η₀ = {row['adaptive_eta']:g} (Kwon et al. 2021; unchanged by layer rescaling)")
    return lines


def format_table(restored, rows: list[dict], store) -> str:
    config = restored.config
    lines = [
        f"Sharpness of run {restored.run_id} ({config.model} on {config.dataset}, B={config.batch_size}, "
        f"lr={config.lr:g}, λ={config.momentum:g}): Keskar et al. Metric 2.1, f = mean training "
        f"{restored.objective.loss_name} on {rows[0]['examples']} examples, f(x) = {rows[0]['loss']:.6g}",
        f"{'space':<8} {'p':>9} {'epsilon':>8} {'sharpness':>10} {'max f':>10} {'iters':>5} {'evals':>5} {'time s':>7}"
        + (f" {'corner φ':>10}" if rows[0]["corner_start"] else ""),
    ]
    for row in rows:
        space = "full" if row["full_space"] else "random"
        lines.append(
            f"{space:<8} {row['p']:>9} {row['epsilon']:>8.1e} {row['value']:>10.4g} {row['max_loss']:>10.6g} "
            f"{row['iterations_run']:>5} {row['evaluations']:>5} {row['seconds']:>7.2f}"
            + (f" {row['corner_value']:>10.4g}" if row["corner_start"] else "")
        )
    lines.append(
        f"iters, evals: L-BFGS-B iterations and f evaluations of the paper's search from y = 0, a budget of "
        f"{rows[0]['iterations']} iterations"
        + ("; corner φ: the larger maximum of that search and one from the gradient-sign vertex of the box "
           "(not the paper's measure: never compare it with their Table 3)" if rows[0]["corner_start"] else "")
    )
    lines.extend(point_lines(rows[0]))
    lines.append(f"stored {len(rows)} sharpness record(s) in {store}")
    return "\n".join(lines)
