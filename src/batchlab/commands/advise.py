"""``batchlab advise``: steps, examples and time to a target against batch size, and the batch
size to pick on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from batchlab.commands._experiment import finish_experiment
from batchlab.commands._options import add_experiment_options, hidden_width, stage_printer
from batchlab.experiments.shape import SCALES

DEFAULT_OUT = Path("batchlab-report") / "advise"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "advise",
        help="which batch size, learning rate and momentum: steps and time to a target vs batch size",
        description="For batch sizes on a geometric grid, tune the learning rate (a log grid around square-root "
        "scaling of the effective rate η/(1 − λ)) and λ ∈ {0, 0.9} with several seeds, and count the steps S(B) "
        "to reach a target (validation accuracy by default). Fit McCandlish et al.'s S_min, E_min and "
        "B_crit = E_min/S_min, measure the simple noise scale during training, time one update at each B on "
        "this device, and recommend the B with the shortest time to the target, the B with the least examples, "
        "and the largest B still in perfect scaling (and, on a GPU, the largest batch that fits). '--scale "
        "quick' (mnist-5k, the lecture's MLP, B = 1 … 1024 in powers of 4, 2 seeds) is designed for ≤ 10 "
        "minutes on a 2-core CPU; '--scale full' uses powers of two up to the training-set size. Outcomes are "
        "kept in the store, so a rerun trains only what is missing. Writes advise.json and PNG/SVG figures to "
        "--out. A target that no configuration reaches ends with a one-line error (exit 2) naming the best "
        "value seen; the runs' outcomes stay in the store and nothing else is written.",
        epilog="Example: batchlab advise --scale quick --target val_acc=0.9 --store batchlab-runs/runs.db",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", choices=SCALES, default="quick",
                        help="quick: minutes on a CPU; full: powers of two up to N, more seeds (default: quick)")
    parser.add_argument("--dataset", default="mnist-5k", help="registry dataset (default: mnist-5k)")
    parser.add_argument("--model", default="mlp", help="registry model (default: mlp, the lecture's 784-512-512-10)")
    parser.add_argument("--hidden", type=hidden_width, nargs="+", default=None, help="hidden widths of the model")
    parser.add_argument("--train-subset", type=int, default=None, help="train on a seeded subset of n examples")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="validation fraction (default: 0.1)")
    parser.add_argument("--target", default=None,
                        help="METRIC=VALUE: val_acc, train_acc (≥) or val_loss, train_loss (≤); a bare number is "
                        "validation accuracy (default: val_acc=0.9)")
    parser.add_argument("--batch-size", dest="batch_sizes", nargs="+", default=None, metavar="B",
                        help="explicit batch sizes (default: the scale's geometric grid)")
    parser.add_argument("--max-batch", type=int, default=None, help="cap of the geometric grid")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per configuration (quick 2, full 3)")
    parser.add_argument("--lr", type=float, default=None,
                        help="reference effective learning rate η/(1 − λ) at --lr-batch (default: 0.1)")
    parser.add_argument("--lr-batch", type=int, default=None, help="batch size of --lr (default: 64)")
    parser.add_argument("--lr-factor", type=float, default=None, help="ratio of neighbouring learning rates")
    parser.add_argument("--lr-points", type=int, default=None, help="learning rates per λ and B")
    parser.add_argument("--budget-epochs", type=float, default=None,
                        help="update budget per run in epochs of examples (quick 2, full 10)")
    parser.add_argument("--min-updates", type=int, default=None, help="update budget at least this (quick 150)")
    add_experiment_options(parser, DEFAULT_OUT, "advise.json and figures", progress="stage lines with the seconds so far")
    parser.set_defaults(handler=run_advise_command)


def run_advise_command(args: argparse.Namespace) -> int:
    from batchlab.config import RunConfig
    from batchlab.experiments.advise import EXPERIMENT, plan_advise, run_advise
    from batchlab.store import RunStore

    template = RunConfig(dataset=args.dataset, model=args.model, hidden=args.hidden, train_subset=args.train_subset,
                         val_fraction=args.val_fraction, device=args.device,
                         data_dir=str(args.data_dir) if args.data_dir else None)
    plan = plan_advise(args.scale, template, batch_sizes=args.batch_sizes, max_batch=args.max_batch,
                       target=args.target, seeds=args.seeds, reference_lr=args.lr, reference_batch=args.lr_batch,
                       lr_factor=args.lr_factor, lr_points=args.lr_points, budget_epochs=args.budget_epochs,
                       min_updates=args.min_updates)
    with RunStore(args.store) as store:
        result = run_advise(plan, store, log=stage_printer(args.progress))
    return finish_experiment(args, EXPERIMENT, result.to_dict())
