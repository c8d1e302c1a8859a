"""``batchlab advise``: steps, examples and time to a target against batch size, and the batch
size to pick on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from batchlab.commands._experiment import finish_experiment
from batchlab.commands._options import add_experiment_options, hidden_width, seed_value, stage_printer
from batchlab.experiments.shape import SCALES
from batchlab.task.options import add_task_options, user_task

DEFAULT_OUT = Path("batchlab-report") / "advise"
DEFAULT_DATASET = "mnist-5k"
DEFAULT_MODEL = "mlp"
DEFAULT_VAL_FRACTION = 0.1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "advise",
        help="which batch size, learning rate and momentum: steps and time to a target vs batch size",
        description="For batch sizes on a geometric grid, tune the learning rate (a log grid around square-root "
        "scaling of the effective rate η/(1 − λ)) and λ ∈ {0, 0.9} with several seeds, and count the steps S(B) "
        "to reach a target (validation accuracy by default). Fit McCandlish et al.'s S_min, E_min and "
        "B_crit = E_min/S_min, measure the simple noise scale during training, time one update at each B on "
        "this device (interleaved repeats, with their spread), and give one answer — B, η, λ and the `batchlab "
        "train` command that applies it: the shortest time to the target when the ranking by time is sure, else "
        "(load, or overlapping times) the largest B within 25 % of the least examples among those in question, "
        "said to be uncertain — with the fastest, the least compute and the largest B in perfect scaling as "
        "context (and, on a GPU, the largest batch that fits). A best η on an edge of its grid extends the grid. "
        "Your own model: --model-file/--data-file. A run expected to take more than a few minutes prints an "
        "estimate of its time first. '--scale "
        "quick' (mnist-5k, the lecture's MLP, B = 1 … 1024 in powers of 4, 2 seeds) is designed for ≤ 10 "
        "minutes on a 2-core CPU; '--scale full' uses powers of two up to the training-set size. Outcomes are "
        "kept in the store, so a rerun trains only what is missing. Writes advise.json and PNG/SVG figures to "
        "--out. A target that no configuration reaches ends with a one-line error (exit 2) naming the best "
        "value seen; the runs' outcomes stay in the store and nothing else is written.",
        epilog="Examples:\n  batchlab advise --scale quick --target val_acc=0.9 --store batchlab-runs/runs.db\n"
        "  batchlab advise --model-file net.py:make_model --data-file data.py:load_data --target val_acc=0.8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", choices=SCALES, default="quick",
                        help="quick: minutes on a CPU; full: powers of two up to N, more seeds (default: quick)")
    # Registry options default to None, so that one given beside --model-file/--data-file can be
    # told from a default and refused (batchlab.task.options.user_task); the defaults fill in later.
    parser.add_argument("--dataset", default=None, help=f"registry dataset (default: {DEFAULT_DATASET})")
    parser.add_argument("--model", default=None,
                        help=f"registry model (default: {DEFAULT_MODEL}, the lecture's 784-512-512-10)")
    parser.add_argument("--hidden", type=hidden_width, nargs="+", default=None, help="hidden widths of the model")
    parser.add_argument("--train-subset", type=int, default=None, help="train on a seeded subset of n examples")
    parser.add_argument("--val-fraction", type=float, default=None,
                        help=f"validation fraction (default: {DEFAULT_VAL_FRACTION:g})")
    parser.add_argument("--split-seed", type=seed_value, default=None, help="seed of the validation split (default: 0)")
    add_task_options(parser)
    parser.add_argument("--target", default=None,
                        help="METRIC=VALUE: val_acc, train_acc (≥) or val_loss, train_loss (≤); a bare number is "
                        "validation accuracy (default: val_acc=0.9; a model file whose metric is not accuracy "
                        "needs a loss target, e.g. val_loss=0.05)")
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

    task = user_task(args)  # the one rule for the files beside registry options
    files = None if task is None else (args.model_file, args.data_file)
    if task is None:
        template = RunConfig(dataset=args.dataset or DEFAULT_DATASET, model=args.model or DEFAULT_MODEL,
                             hidden=args.hidden, train_subset=args.train_subset,
                             val_fraction=DEFAULT_VAL_FRACTION if args.val_fraction is None else args.val_fraction,
                             split_seed=args.split_seed or 0,
                             device=args.device, data_dir=str(args.data_dir) if args.data_dir else None)
    else:
        template = RunConfig(device=args.device)
    plan = plan_advise(args.scale, template, batch_sizes=args.batch_sizes, max_batch=args.max_batch,
                       target=args.target, seeds=args.seeds, reference_lr=args.lr, reference_batch=args.lr_batch,
                       lr_factor=args.lr_factor, lr_points=args.lr_points, budget_epochs=args.budget_epochs,
                       min_updates=args.min_updates, task=task)
    with RunStore(args.store) as store:
        result = run_advise(plan, store, log=stage_printer(args.progress), task=task, files=files)
    return finish_experiment(args, EXPERIMENT, result.to_dict())
