"""``batchlab sweep``: train a grid of runs, resumable, locally or on Ray, with a summary table."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import textwrap
from pathlib import Path

from batchlab.commands._options import add_data_dir_option, add_device_option, add_store_option
from batchlab.commands.train import batch_size_arg
from batchlab.config import SHUFFLE_MODES
from batchlab.errors import UserError
from batchlab.task.options import add_task_options, task_from_args

EXPORT_FORMATS = ("csv", "json")

# Plural flags for the swept axes: (flag, RunConfig field, argparse type, help).
AXIS_FLAGS = (
    ("--batch-sizes", "batch_size", batch_size_arg, "batch sizes B, each 1 … N or 'full'"),
    ("--momenta", "momentum", float, "momenta λ in m ← λm − ηg, each in [0, 1)"),
    ("--lrs", "lr", float, "learning rates η"),
    ("--seeds", "seed", int, "initialization and data-order seeds"),
    ("--optimizers", "optimizer", str, "optimizers: momentum, sgd, torch-sgd, adam"),
)
# Single-valued flags for fields fixed across the sweep: (flag, RunConfig field, kwargs).
FIXED_FLAGS = (
    ("--dataset", "dataset", {"help": "dataset name (default: mnist-5k; see `batchlab data list`)"}),
    ("--model", "model", {"help": "mlp, keskar-f1, keskar-c1, cnn (default: mlp)"}),
    ("--hidden", "hidden", {"type": int, "nargs": "+", "help": "hidden widths, e.g. --hidden 512 512"}),
    ("--weight-decay", "weight_decay", {"type": float, "help": "L2 coefficient (default: 0)"}),
    ("--epochs", "epochs", {"type": int, "help": "epochs per run (default: 5)"}),
    ("--val-fraction", "val_fraction", {"type": float, "help": "validation share of the training set (default: 0.1)"}),
    ("--split-seed", "split_seed", {"type": int, "help": "seed of the validation split (default: 0)"}),
    ("--shuffle", "shuffle", {"choices": SHUFFLE_MODES, "help": "epoch (default), once or none"}),
    ("--max-updates", "max_updates", {"type": int, "help": "stop each run after this many updates"}),
    ("--stop-patience", "stop_patience", {"type": int, "help": "stop a run when its training loss has not improved for this many epochs"}),
)


DESCRIPTION = textwrap.fill(
    "Train every combination of the swept values (plural flags, or the [grid] of a TOML file "
    "given with --config; command-line flags override the file). Every run is stored under the "
    "same id a single `batchlab train` gives it. Run the same command again after an "
    "interruption (even a kill): finished runs are skipped, unfinished ones resume from their "
    "last epoch. At the end: mean ± std of the accuracies over seeds for each batch size × "
    "momentum (and any other swept value but the seed).",
    width=88,
) + """

TOML sweep file: optional top-level lr_scaling ("none" or "linear") and base_batch, a
[fixed] table of RunConfig fields and a [grid] table of lists, e.g.

  [fixed]
  epochs = 3
  hidden = [16]

  [grid]
  batch_size = [16, 256, "full"]
  momentum = [0.0, 0.9]
  seed = [0, 1, 2]

On Ray (--executor ray) each task trains its runs apart from the store and the driver
records them; a run whose task dies is retried from its start (or from the checkpoint a
local sweep left)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="train a grid of batch size × momentum × learning rate × seed runs",
        description=DESCRIPTION,
        epilog="Example: batchlab sweep --batch-sizes 1 16 256 full --momenta 0 0.9 --lrs 0.1 "
        "--seeds 0 1 2 --epochs 3 --store batchlab-runs/runs.db",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, default=None, help="a sweep file in TOML ([fixed] and [grid] tables)")
    for flag, field, kind, text in AXIS_FLAGS:
        parser.add_argument(flag, dest=f"axis_{field}", type=kind, nargs="+", default=None, metavar="VALUE", help=text)
    for flag, field, kwargs in FIXED_FLAGS:
        metavar = {} if "choices" in kwargs else {"metavar": field.upper()}
        parser.add_argument(flag, dest=f"fixed_{field}", default=None, **metavar, **kwargs)
    parser.add_argument("--nesterov", dest="fixed_nesterov", action="store_const", const=True, default=None,
                        help="Nesterov form of momentum (needs every λ > 0)")
    parser.add_argument("--drop-last", dest="fixed_drop_last", action="store_const", const=True, default=None,
                        help="drop the last partial batch of each epoch")
    add_device_option(parser)
    add_data_dir_option(parser)
    add_task_options(parser)
    parser.add_argument("--lr-scaling", choices=("none", "linear"), default=None,
                        help="linear: η = lr · B / base batch (Goyal et al. 2017); default: none")
    parser.add_argument("--base-batch", type=int, default=None,
                        help="the batch size the --lrs values are meant for under --lr-scaling linear (default: 256)")
    add_store_option(parser)
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="local (this process, default) or ray (Ray tasks; needs the ray extra)")
    parser.add_argument("--ray-address", default=None,
                        help="join this Ray cluster (e.g. ray://head:10001 or auto) instead of starting a local instance")
    parser.add_argument("--ray-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    parser.add_argument("--packing", choices=("auto", "packed", "sequential"), default="auto",
                        help="local executor: pack runs into one stacked step (auto: where it pays)")
    parser.add_argument("--force", action="store_true", help="train every run again, replacing stored results")
    parser.add_argument("--no-weights", action="store_true", help="do not keep the final weights")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (runs, skipped, packs) and train nothing")
    parser.add_argument("--export", choices=EXPORT_FORMATS, default=None, help="also write the sweep's runs as csv or json")
    parser.add_argument("--output", type=Path, default=None, help="file for --export (default: the terminal)")
    parser.add_argument("--progress", dest="progress", action="store_const", const=True, default=None,
                        help="always show progress bars (default: only on a terminal)")
    parser.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                        help="plain log lines instead of progress bars")
    parser.set_defaults(handler=run_sweep_command)


def spec_from_args(args: argparse.Namespace):
    """The SweepSpec the flags (and --config file) describe; flags override the file."""
    from batchlab.sweep.spec import SweepSpec

    grid = {key[len("axis_"):]: value for key, value in vars(args).items()
            if key.startswith("axis_") and value is not None}
    fixed = {key[len("fixed_"):]: value for key, value in vars(args).items()
             if key.startswith("fixed_") and value is not None}
    if args.device != "auto":
        fixed["device"] = args.device
    if args.data_dir is not None:
        fixed["data_dir"] = str(args.data_dir)
    scaling = {}
    if args.lr_scaling is not None:
        scaling["lr_scaling"] = args.lr_scaling
    if args.base_batch is not None:
        scaling["base_batch"] = args.base_batch
    if args.config is not None:
        spec = SweepSpec.from_toml(args.config).with_overrides(grid=grid, fixed=fixed)
        if scaling:
            spec = dataclasses.replace(spec, **scaling)
        return spec
    return SweepSpec(grid=grid, fixed=fixed, **scaling)


def run_sweep_command(args: argparse.Namespace) -> int:
    from batchlab.sweep import plan_only, run_sweep
    from batchlab.sweep.summary import summary_table

    if args.output is not None and args.export is None:
        raise UserError("--output needs --export; allowed: --export csv --output FILE or --export json --output FILE")
    spec = spec_from_args(args)
    task = task_from_args(args)
    if args.dry_run:
        plan = plan_only(spec, args.store, executor=args.executor, ray_address=args.ray_address,
                         ray_cpus=args.ray_cpus, force=args.force, packing=args.packing, task=task)
        print(plan.describe())
        print(f"dry run: nothing trained; store {args.store}")
        return 0

    def show_plan(plan) -> None:
        print(plan.describe(), flush=True)

    results = run_sweep(spec, args.store, executor=args.executor, ray_address=args.ray_address,
                        ray_cpus=args.ray_cpus, progress=args.progress, force=args.force,
                        packing=args.packing, keep_weights=not args.no_weights, on_plan=show_plan, task=task)
    print()
    print(summary_table(results.runs))
    trained = len(results) - results.skipped
    print(f"{len(results) + len(results.failed)} run(s): {trained} trained, skipped (already in store): {results.skipped}, "
          f"failed: {len(results.failed)}; store {args.store}")
    if args.export is not None:
        if args.output is None:
            print(results.export(args.export))
        else:
            results.to_csv(args.output) if args.export == "csv" else results.to_json(args.output)
            print(f"{len(results)} run(s) written to {args.output}")
    if results.failed:
        print(f"batchlab: {len(results.failed)} run(s) failed; run the same command again to retry them",
              file=sys.stderr)
        return 1
    return 0
