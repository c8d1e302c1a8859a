"""``batchlab largebatch``: the large-batch methods side by side against the generalization gap."""

from __future__ import annotations

import argparse
from pathlib import Path

from batchlab.commands._experiment import finish_experiment
from batchlab.commands._options import add_experiment_options
from batchlab.experiments.shape import SCALES
from batchlab.task.options import add_task_options, user_task

DEFAULT_OUT = Path("batchlab-report") / "largebatch"
METHOD_CHOICES = ("linear-warmup", "sqrt", "lars", "lamb", "ghost-bn", "akiba", "swap", "longer")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "largebatch",
        help="large batches without the gap: SB, plain LB and each method (Goyal, LARS, LAMB, ghost BN, Akiba, "
        "SWAP, train longer) in one table",
        description="Train one network with a small batch, a plain large batch, and the large batch with each "
        "method — linear scaling + warm-up (Goyal et al. 2017), √ scaling, LARS, LAMB, ghost batch norm, Akiba et "
        "al.'s recipe, SWAP (Gupta et al. 2020) and Hoffer et al.'s 'train longer' — on the same data and epoch "
        "budget for several seeds; print training and test accuracy (mean ± std), Keskar sharpness of each "
        "minimum, wall time, each method's test accuracy against SB and against its gap's LB row as paired 95 % "
        "intervals over seeds, a verdict per method (closes the gap / narrows it / not here / unresolved) and the papers' "
        "claims. '--scale quick' (under 10 minutes on a 2-core CPU): keskar-f1 128×128 on 4,096 Fashion-MNIST "
        "images, SB = 32 vs LB = 1024, 6 epochs, 2 seeds; '--scale full': keskar-c1 on CIFAR-10, SB = 256 vs "
        "LB = 4096, 30 epochs, 3 seeds (about an hour on a GPU). Runs and measurements already in the store are "
        "reused. Your own classification model and data (--model-file/--data-file, loss cross-entropy and "
        "metric accuracy, with a test split) take the place of the scale's network and dataset, with the scale's "
        "batch sizes (or --small-batch/--large-batch), epochs and η grid. Writes largebatch.json and a PNG/SVG "
        "figure to --out.",
        epilog="Example: batchlab largebatch --scale quick --store batchlab-runs/runs.db "
               "--out batchlab-report/largebatch\n"
               "Your own model: batchlab largebatch --model-file net.py:make_model --data-file data.py:load_data "
               "--small-batch 8 --large-batch 256",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", choices=SCALES, default="quick",
                        help="quick: minutes on a CPU; full: CIFAR-10 at Goyal's B = 256 vs 4096 (default: quick)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method, paired (default: 3)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help=f"methods besides SB and plain LB (default: all of {', '.join(METHOD_CHOICES)})")
    parser.add_argument("--small-batch", type=int, default=None, metavar="B",
                        help="the small batch B_S (default: the scale's, 32 at quick, 256 at full)")
    parser.add_argument("--large-batch", type=int, default=None, metavar="B",
                        help="the large batch B_L, at most the training set (default: the scale's, 1024 at quick, "
                             "4096 at full)")
    add_experiment_options(parser, DEFAULT_OUT, "largebatch.json and the figure")
    add_task_options(parser)
    parser.set_defaults(handler=run_largebatch_command)


def run_largebatch_command(args: argparse.Namespace) -> int:
    from batchlab.experiments.largebatch import EXPERIMENT, plan_largebatch, run_largebatch
    from batchlab.store import RunStore

    # --data-dir (the registry's data) beside --model-file/--data-file is refused before anything is imported.
    task = user_task(args)
    plan = plan_largebatch(args.scale, seeds=args.seeds, methods=args.methods, device=args.device,
                           data_dir=str(args.data_dir) if args.data_dir else None, task=task,
                           small_batch=args.small_batch, large_batch=args.large_batch)
    with RunStore(args.store) as store:
        result = run_largebatch(plan, store, progress=args.progress)
    return finish_experiment(args, EXPERIMENT, result.to_dict())
