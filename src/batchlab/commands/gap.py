"""``batchlab gap``: Keskar et al.'s generalization-gap experiment, SB vs LB, with the paper's numbers."""

from __future__ import annotations

import argparse
from pathlib import Path

from batchlab.commands._experiment import finish_experiment
from batchlab.commands._options import add_experiment_options
from batchlab.experiments.shape import GAP_SCALES
from batchlab.task.options import add_task_options, user_task

DEFAULT_OUT = Path("batchlab-report") / "gap"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gap",
        help="Keskar et al.'s generalization gap: small vs large batch, accuracy, sharpness, parametric plot",
        description="Train Keskar et al.'s networks in two regimes, small batch and large batch (10 % of the "
        "training set), with the same optimizer and hyperparameters (Adam, lr 1e-3, as in the paper; or "
        "momentum SGD with one η), SB and LB of a seed from the same initial weights, until the training loss "
        "stops improving (with an epoch cap), for several seeds. A point whose full-batch gradient norm is above "
        "1 % of its value at the initial weights is trained on in rounds, else reported as not at a minimum; at "
        "each minimum measure Keskar's sharpness (Metric 2.1), λ_max, the Hessian trace, the optimizer's stability "
        "bound and the adaptive sharpness, and the loss on the line between an SB and an LB minimum; print their "
        "Tables 2 and 3 (and 4 with --subspace) with the paper's numbers beside ours, every point seed by seed, "
        "SB − LB paired by seed with 95 % t intervals and power lines, and a paragraph on where we agree. "
        "'--scale quick' (minutes on a 2-core CPU) trains F1 and C1 on mnist-5k with SB = 16, LB = 400 and "
        "capped epochs; '--scale standard' (about two hours on a 2-core CPU) trains the conv net on the full "
        "Fashion-MNIST with SB = 256 and LB = 6,000, both stopped at 87 % training accuracy, 5 seeds; '--scale full' is the paper's setting (SB = 256) on "
        "MNIST and CIFAR-10 (Fashion-MNIST when CIFAR-10 is absent), meant for a GPU. Runs and measurements "
        "already in the store are reused. Your own classification model and data (--model-file/--data-file, loss "
        "cross-entropy and metric accuracy, with a test split) take the place of the paper's networks, trained and "
        "measured the same way with the scale's protocol: its SB (or --small-batch), LB = 10 % of your training "
        "set (or --large-batch), epoch caps and measurement subsets; an estimate of the training time is printed "
        "first when it is long. Writes gap.json and PNG/SVG figures to --out.",
        epilog="Example: batchlab gap --scale quick --seeds 3 --store batchlab-runs/runs.db --out batchlab-report/gap\n"
               "Your own model: batchlab gap --model-file net.py:make_model --data-file data.py:load_data "
               "--small-batch 8 --large-batch 64",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", choices=GAP_SCALES, default="quick",
                        help="quick: minutes on a CPU, departs from the paper where stated; standard: about two "
                        "hours on a 2-core CPU, the full Fashion-MNIST with a conv net; full: the paper's setting, "
                        "for a GPU (default: quick)")
    parser.add_argument("--seeds", type=int, default=None,
                        help="random starts per regime (default: 3 at quick, 5 at standard and full, as in the paper)")
    parser.add_argument("--networks", nargs="+", default=None, metavar="NET",
                        help="f1 (fully connected, MNIST-like) and/or c1 (shallow conv net) (default: every "
                        "network of the scale: f1 c1, or c1 at standard)")
    parser.add_argument("--optimizer", choices=("adam", "momentum"), default=None,
                        help="the one optimizer of both regimes: adam (the paper's, default) or momentum (heavy "
                        "ball, the lecture's m ← λm − ηg)")
    parser.add_argument("--lr", type=float, default=None,
                        help="the one η of both regimes (default: 1e-3, the paper's Adam rate)")
    parser.add_argument("--momentum", type=float, default=None,
                        help="λ with --optimizer momentum (default: 0.9)")
    space = parser.add_mutually_exclusive_group()
    space.add_argument("--subspace", dest="subspace", action="store_const", const=True, default=None,
                       help="also measure sharpness in a random 100-dim subspace (Table 4; default at full scale)")
    space.add_argument("--no-subspace", dest="subspace", action="store_const", const=False,
                       help="full-space sharpness only (default at quick scale)")
    parser.add_argument("--small-batch", type=int, default=None, metavar="B",
                        help="with your own model: SB (default: the scale's, 16 at quick, 256 at standard and full)")
    parser.add_argument("--large-batch", type=int, default=None, metavar="B",
                        help="with your own model: LB, at most the training set (default: 10 %% of the training set)")
    add_experiment_options(parser, DEFAULT_OUT, "gap.json and figures")
    add_task_options(parser)
    parser.set_defaults(handler=run_gap_command)


def run_gap_command(args: argparse.Namespace) -> int:
    from batchlab.experiments.gap import EXPERIMENT, plan_gap, run_gap
    from batchlab.store import RunStore

    # --networks and --data-dir (the registry's networks and data) beside --model-file/--data-file are
    # refused before anything is imported, by the one rule for registry options.
    task = user_task(args, [f"--networks {' '.join(args.networks)}"] if args.networks else [])
    plan = plan_gap(args.scale, seeds=args.seeds, networks=args.networks, device=args.device,
                    data_dir=str(args.data_dir) if args.data_dir else None, subspace=args.subspace,
                    optimizer=args.optimizer, lr=args.lr, momentum=args.momentum, task=task,
                    small_batch=args.small_batch, large_batch=args.large_batch)
    with RunStore(args.store) as store:
        result = run_gap(plan, store, progress=args.progress)
    return finish_experiment(args, EXPERIMENT, result.to_dict())
