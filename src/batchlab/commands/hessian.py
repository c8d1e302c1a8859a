"""``batchlab hessian RUN_ID``: the Hessian of a stored run's training loss at the minimum it found."""

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
        "hessian",
        help="Hessian eigenvalues, trace and critical-point kind at a stored run's minimum",
        description="Reopen a stored run with its final weights and analyse the Hessian of its mean "
        "training loss there (cross-entropy, or the loss your model file names): the top eigenvalues and the most negative one (Lanczos on "
        "Hessian-vector products), optionally the trace (Hutchinson), the gradient norm, and whether "
        "the point is a local minimum, a saddle point, a local maximum or not critical. Batch "
        "normalization uses its running statistics (eval mode). The result is stored as a "
        "'hessian' record in the store. A line on stderr warns when the point is not a local minimum "
        "or its training accuracy is below the best the run logged.",
        epilog="Example: batchlab hessian 3f2a9c… --store batchlab-runs/runs.db --k 3 --trace --examples 2000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="a run id listed by `batchlab runs`")
    add_store_option(parser)
    parser.add_argument("--k", type=int, default=1, help="how many top eigenvalues (default: 1)")
    parser.add_argument("--trace", action="store_true", help="also estimate the trace (Hutchinson)")
    parser.add_argument("--trace-samples", type=int, default=100, help="Rademacher vectors for --trace (default: 100)")
    parser.add_argument("--tol", type=float, default=1e-3, help="relative accuracy of the eigenvalues (default: 1e-3): Lanczos stops when every residual "
                        "‖Hv − λv‖ ≤ tol·|λ|, which bounds each eigenvalue's error")
    parser.add_argument("--max-iter", type=int, default=100, help="Hessian-vector products allowed per Lanczos run (default: 100)")
    parser.add_argument("--grad-tol", type=float, default=1e-3,
                        help="a gradient norm above this is 'not critical' (default: 1e-3)")
    parser.add_argument("--eig-tol", type=float, default=None,
                        help="eigenvalues within ±this count as zero (default: relative, max(1e-3, 2·tol)·max|λ|)")
    parser.add_argument("--seed", type=seed_value, default=0,
                        help="seed of the example subset, Lanczos start and trace vectors (default: 0)")
    parser.add_argument("--examples", type=int, default=None,
                        help="use a random subset of this many training examples (default: all)")
    parser.add_argument("--chunk-size", type=int, default=1000, help="examples per forward pass (default: 1000)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    add_task_options(parser, measured=True)
    add_device_option(parser)
    add_progress_option(parser, "a line per stage with the seconds so far")
    parser.set_defaults(handler=run_hessian)


def record_key(run_id: str, args: argparse.Namespace) -> str:
    """The store key: the run and every option that changes the numbers."""
    examples = "all" if args.examples is None else args.examples
    return (
        f"{run_id}|examples={examples}|mode=eval|k={args.k}|tol={args.tol:g}|max_iter={args.max_iter}"
        f"|trace={args.trace_samples if args.trace else 0}|seed={args.seed}"
    )


def run_hessian(args: argparse.Namespace) -> int:
    from batchlab.runtime.environment import describe_environment
    from batchlab.geometry import (
        accuracy_reason, curvature_reason, hessian_summary, not_a_minimum_warning, select_examples,
    )
    from batchlab.store import RunStore
    from batchlab.training.restore import restore_run

    say = stage_printer(args.progress)
    files = user_task_files(args)
    with RunStore(args.store, create=False) as store:
        say(f"restoring run {args.run_id}")
        restored = restore_run(store, args.run_id, device=args.device, files=files)
        x, y = select_examples(restored.splits.train.x, restored.splits.train.y, args.examples, args.seed)
        say(f"Hessian of the loss on {len(y)} examples: Lanczos for {args.k} top eigenvalue(s) and the smallest")
        summary = hessian_summary(
            restored.model, x, y,
            k=args.k, tol=args.tol, max_iter=args.max_iter, seed=args.seed,
            trace_samples=args.trace_samples if args.trace else None,
            grad_tol=args.grad_tol, eig_tol=args.eig_tol, chunk_size=args.chunk_size,
            loss=restored.objective.loss,
        )
        device = next(restored.model.parameters()).device
        value = {"run_id": restored.run_id, "config": restored.config.to_dict(), **summary,
                 "loss_name": restored.objective.loss_name,
                 "environment": describe_environment(device)}
        key = record_key(restored.run_id, args)
        store.put_record("hessian", key, value)
        warning = not_a_minimum_warning([curvature_reason(summary["classification"]),
                                         accuracy_reason(store.metrics(restored.run_id))])
    if warning:
        print(warning, file=sys.stderr)
    return finish(args.format, {"key": key, **value}, lambda: format_summary(value, key, args.store))


def format_summary(value: dict, key: str, store) -> str:
    config = value["config"]
    classification = value["classification"]
    lines = [
        f"Hessian of run {value['run_id']} ({config['model']} on {config['dataset']}, B={config['batch_size']}, "
        f"lr={config['lr']:g}, λ={config['momentum']:g}): {value['examples']} training examples, "
        f"loss {value.get('loss_name', 'cross_entropy')}, "
        f"{value['parameters']} parameters, {value['dtype']}, eval mode",
        f"  {'training loss':<26}{value['loss']:.6g}",
        f"  {'gradient norm':<26}{value['gradient_norm']:.4g}",
        f"  {'top eigenvalues':<26}{', '.join(f'{v:.6g}' for v in value['top_eigenvalues'])}"
        f"   ({value['eigen_method']}, tol {value['tol']:g}; residual ‖Hv − λv‖ "
        f"{', '.join(f'{r:.2g}' for r in value['top_residuals'])})",
        f"  {'most negative eigenvalue':<26}{value['smallest_eigenvalue']:.6g}",
    ]
    if value["trace"] is not None:
        lines.append(
            f"  {'trace (Hutchinson)':<26}{value['trace']:.6g} ± {value['trace_stderr']:.2g}"
            f"   (standard error, {value['trace_samples']} samples)"
        )
    lines.append(
        f"  {'point':<26}{classification['kind']}: {classification['note']}"
        f"   (grad_tol {classification['grad_tol']:.3g}, eig_tol {classification['eig_tol']:.3g})"
    )
    if classification["loss_after_escape"] is not None:
        lines.append(
            f"  {'escape step':<26}loss {classification['loss']:.6g} → {classification['loss_after_escape']:.6g}"
            f" after a step of {classification['escape_step']:g} along the λ_min eigenvector"
        )
    lines.append(
        f"  {'cost':<26}{value['hessian_vector_products']} Hessian-vector products, {value['seconds']:.1f} s"
    )
    lines.append(f"stored as hessian record {key!r} in {store}")
    return "\n".join(lines)
