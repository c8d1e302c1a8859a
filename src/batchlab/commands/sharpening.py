"""``batchlab sharpening``: λ_max every k updates for SB and LB at several η, against 2(1 + λ)/η."""

from __future__ import annotations

import argparse
from pathlib import Path

from batchlab.commands._experiment import finish_experiment
from batchlab.commands._options import add_experiment_options, batch_size_value, hidden_width, seed_value

DEFAULT_OUT = Path("batchlab-report") / "sharpening"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sharpening",
        help="sharpness during training: λ_max every k updates for small and large batches against 2(1 + λ)/η",
        description="Train a small and a large batch at several learning rates with the lecture's momentum and "
        "measure the largest Hessian eigenvalue λ_max of the training loss every k updates (Lanczos on a fixed "
        "subset of training examples, warm-started from the previous eigenvector), against the stability bound "
        "2(1 + λ)/η: progressive sharpening and the edge of stability (Cohen et al. 2021), and how η/B sets the "
        "sharpness reached (Jastrzębski et al. 2018). '--scale quick' (about a minute on a 2-core CPU): MLP "
        "784-64-64-10 on mnist-5k, B ∈ {32, 400}, η ∈ {0.03, 0.1, 0.3}, 200 updates, λ_max every 10 on 1,000 "
        "examples; '--scale full': the lecture's MLP 784-512-512-10, 4 learning rates, 1,000 updates. Writes "
        "sharpening.json and a PNG/SVG figure to --out and keeps the record in the store (the report shows it).",
        epilog="Example: batchlab sharpening --scale quick --store batchlab-runs/runs.db --out batchlab-report/sharpening",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", choices=("quick", "full"), default="quick",
                        help="quick: about a minute on a CPU; full: the lecture's MLP, longer (default: quick)")
    parser.add_argument("--batch-size", nargs="+", type=batch_size_value, default=None, metavar="B",
                        dest="batch_sizes", help="batch sizes, integers or 'full' (default: 32 400)")
    parser.add_argument("--lr", nargs="+", type=float, default=None, metavar="ETA", dest="lrs",
                        help="learning rates η (default: 0.03 0.1 0.3 at quick)")
    parser.add_argument("--momentum", type=float, default=None,
                        help="the lecture's λ in m ← λm − ηg, 0 ≤ λ < 1 (default: 0.9)")
    parser.add_argument("--updates", type=int, default=None, help="updates per run (default: 200 at quick)")
    parser.add_argument("--every", type=int, default=None, help="measure λ_max every k updates (default: 10 at quick)")
    parser.add_argument("--probe-examples", type=int, default=None,
                        help="fixed training examples λ_max is measured on (default: 1000 at quick)")
    parser.add_argument("--hidden", nargs="+", type=hidden_width, default=None, metavar="WIDTH",
                        help="hidden widths of the MLP (default: 64 64 at quick, 512 512 at full)")
    parser.add_argument("--seed", type=seed_value, default=None, help="initialization seed of every run (default: 0)")
    add_experiment_options(parser, DEFAULT_OUT, "sharpening.json and the figure",
                           progress="(one log line per batch size on stderr either way)")
    parser.set_defaults(handler=run_sharpening_command)


def run_sharpening_command(args: argparse.Namespace) -> int:
    from batchlab.experiments.sharpening import EXPERIMENT, plan_sharpening, run_sharpening
    from batchlab.store import RunStore

    plan = plan_sharpening(args.scale, batch_sizes=args.batch_sizes, lrs=args.lrs, momentum=args.momentum,
                           updates=args.updates, every=args.every, probe_examples=args.probe_examples,
                           hidden=args.hidden, seed=args.seed, device=args.device,
                           data_dir=str(args.data_dir) if args.data_dir else None)
    with RunStore(args.store) as store:
        result = run_sharpening(plan, store)
    return finish_experiment(args, EXPERIMENT, result.to_dict())
