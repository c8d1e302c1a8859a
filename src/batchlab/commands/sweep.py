"""``batchlab sweep``: train a grid of runs, resumable, locally or on Ray, with a summary table."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from batchlab.commands._options import (
    add_data_dir_option,
    add_device_option,
    add_progress_option,
    add_store_option,
    batch_size_value,
    hidden_width,
    output_file,
    seed_value,
)
from batchlab.config import LR_DECAYS, LR_SCALINGS, SHUFFLE_MODES
from batchlab.optim.registry import OPTIMIZERS
from batchlab.task.options import add_task_options, registry_fields, user_task

EXPORT_FORMATS = ("csv", "json")

# The swept axes take one or more values under the flag `batchlab train` uses for one value:
# (flag, RunConfig field, argparse type, metavar, help).
AXIS_FLAGS = (
    ("--batch-size", "batch_size", batch_size_value, "B", "batch sizes, each 1 … N or 'full'"),
    ("--momentum", "momentum", float, "λ", "momenta λ in m ← λm − ηg, each in [0, 1)"),
    ("--lr", "lr", float, "η", "learning rates η"),
    ("--seed", "seed", seed_value, "SEED", "initialization and data-order seeds, each 0 … 2**63-1"),
    ("--optimizer", "optimizer", str, "NAME", "optimizers: " + ", ".join(OPTIMIZERS)),
    ("--lr-scaling", "lr_scaling", str, "RULE", "learning-rate scalings to the batch size: " + ", ".join(LR_SCALINGS)),
    ("--base-batch", "base_batch", int, "B0", "batch sizes the --lr values were tuned for (with --lr-scaling)"),
    ("--warmup-epochs", "warmup_epochs", float, "EPOCHS", "gradual warm-up lengths in epochs (Goyal et al. 2017)"),
    ("--lr-decay", "lr_decay", str, "DECAY", "learning-rate decays: " + ", ".join(LR_DECAYS)),
    ("--decay-factor", "decay_factor", float, "FACTOR", "step-decay factors per milestone"),
    ("--ghost-batch", "ghost_batch", int, "G", "ghost batch sizes G, each a divisor of B (models with batch norm)"),
    ("--recipe", "recipe", str, "NAME", "recipes: akiba"),
    ("--trust-coefficient", "trust_coefficient", float, "η", "LARS trust coefficients"),
    ("--target-train-acc", "target_train_acc", float, "ACC", "training-accuracy targets that end a run (0 … 1)"),
)
# Single-valued flags for fields fixed across the sweep: (flag, RunConfig field, kwargs).
FIXED_FLAGS = (
    ("--dataset", "dataset", {"help": "dataset name (default: mnist-5k; see `batchlab data list`)"}),
    ("--model", "model", {"help": "mlp, keskar-f1, keskar-c1, cnn (default: mlp)"}),
    ("--hidden", "hidden", {"type": hidden_width, "nargs": "+", "help": "hidden widths, e.g. --hidden 512 512"}),
    ("--weight-decay", "weight_decay", {"type": float, "help": "L2 coefficient (default: 0)"}),
    ("--epochs", "epochs", {"type": int, "help": "epochs per run (default: 5)"}),
    ("--val-fraction", "val_fraction", {"type": float, "help": "validation share of the training set (default: 0.1)"}),
    ("--split-seed", "split_seed", {"type": seed_value, "help": "seed of the validation split (default: 0)"}),
    ("--shuffle", "shuffle", {"choices": SHUFFLE_MODES, "help": "epoch (default), once or none"}),
    ("--max-updates", "max_updates", {"type": int, "help": "stop each run after this many updates"}),
    ("--stop-patience", "stop_patience", {"type": int, "help": "stop a run when its training loss has not improved for this many epochs"}),
    ("--decay-epochs", "decay_epochs", {"type": int, "nargs": "+", "help": "step-decay milestones in epochs, e.g. 30 60 80"}),
)


DESCRIPTION = textwrap.fill(
    "Train every combination of the swept values (each of --batch-size, --momentum, --lr, --seed "
    "and --optimizer takes one or more values, or the [grid] of a TOML file given with --config; "
    "command-line flags override the file). Every run is stored under the "
    "same id a single `batchlab train` gives it. Run the same command again after an "
    "interruption (even a kill): finished runs are skipped, unfinished ones resume from their "
    "last epoch. At the end: mean ± std of the accuracies over seeds for each batch size × "
    "momentum (and any other swept value but the seed).",
    width=88,
) + """

TOML sweep file: optional top-level lr_scaling ("none" or "linear": lr rewritten to
lr · B / base_batch before the runs are made) and base_batch, a [fixed] table of RunConfig
fields and a [grid] table of lists (any RunConfig field, e.g. lr_scaling = ["none", "sqrt"]
with base_batch = 64 in [fixed], warmup_epochs, lr_decay, ghost_batch, recipe), e.g.

  [fixed]
  epochs = 3
  hidden = [16]

  [grid]
  batch_size = [16, 256, "full"]
  momentum = [0.0, 0.9]
  seed = [0, 1, 2]

On Ray (--executor ray) each task trains its runs apart from the store and the driver
records them; a run whose task dies is retried from its start (or from the checkpoint a
local sweep left). A user model (--model-file/--data-file) travels to the workers with its files."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="train a grid of batch size × momentum × learning rate × seed runs",
        description=DESCRIPTION,
        epilog="Example: batchlab sweep --batch-size 1 16 256 full --momentum 0 0.9 --lr 0.1 "
        "--seed 0 1 2 --epochs 3 --store batchlab-runs/runs.db -o runs.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, default=None, help="a sweep file in TOML ([fixed] and [grid] tables)")
    for flag, field, kind, metavar, text in AXIS_FLAGS:
        parser.add_argument(flag, dest=f"axis_{field}", type=kind, nargs="+", default=None, metavar=metavar, help=text)
    for flag, field, kwargs in FIXED_FLAGS:
        metavar = {} if "choices" in kwargs else {"metavar": field.upper()}
        parser.add_argument(flag, dest=f"fixed_{field}", default=None, **metavar, **kwargs)
    parser.add_argument("--nesterov", dest="fixed_nesterov", action="store_const", const=True, default=None,
                        help="Nesterov form of momentum (needs every λ > 0)")
    parser.add_argument("--momentum-correction", dest="fixed_momentum_correction", action="store_const", const=True,
                        default=None, help="Goyal et al.'s momentum correction when the rate changes (needs every λ > 0)")
    parser.add_argument("--drop-last", dest="fixed_drop_last", action="store_const", const=True, default=None,
                        help="drop the last partial batch of each epoch")
    add_device_option(parser)
    add_data_dir_option(parser)
    add_task_options(parser)
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
    parser.add_argument("--keep-state", action="store_true",
                        help="also keep each finished run's final optimizer state and counts, so --continue-from can "
                             "train it on (local, packed or Ray)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (runs, skipped, packs) and train nothing")
    parser.add_argument("-o", "--output", type=export_file, default=None, metavar="FILE",
                        help="also write the sweep's runs to FILE, as CSV (.csv) or JSON (.json)")
    add_progress_option(parser, "progress bars while runs train (else plain log lines)")
    parser.set_defaults(handler=run_sweep_command)


def export_format(path: Path) -> str:
    return path.suffix.lower().lstrip(".")


def export_file(text: str) -> Path:
    """argparse type of ``-o``: a writable path whose suffix names the format."""
    path = output_file(text)
    if export_format(path) not in EXPORT_FORMATS:
        raise argparse.ArgumentTypeError(f"cannot tell the format of {path}; allowed: a file ending in "
                                         + " or ".join(f".{f}" for f in EXPORT_FORMATS))
    return path


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
    if args.config is not None:
        return SweepSpec.from_toml(args.config).with_overrides(grid=grid, fixed=fixed)
    return SweepSpec(grid=grid, fixed=fixed)


def registry_fields_of_file(path: Path | None) -> list[str]:
    """The [fixed] and [grid] fields of the sweep file at ``path`` that choose the registry's
    model or data (refused beside --model-file/--data-file), as ``field in FILE``."""
    if path is None:
        return []
    from batchlab.sweep.spec import SweepSpec

    spec = SweepSpec.from_toml(path)
    return [f"{name} in {path}" for name in registry_fields([*spec.fixed_values, *spec.grid_axes])]


def check_models_fit(configs) -> None:
    """Refuse a sweep holding a model too large for this machine before any run is trained."""
    from batchlab.commands._limits import check_model_memory

    for model, dataset, hidden, device in dict.fromkeys((c.model, c.dataset, c.hidden, c.device) for c in configs):
        check_model_memory(model, dataset, hidden, device)


def run_sweep_command(args: argparse.Namespace) -> int:
    from batchlab.commands._hints import hint_after_training, warn_before_training
    from batchlab.sweep import plan_only, run_sweep
    from batchlab.sweep.summary import summary_table

    spec = spec_from_args(args)
    task = user_task(args, also_given=registry_fields_of_file(args.config))
    if task is None and args.executor == "local":
        check_models_fit(spec.configs())
    warn_before_training(spec.configs(), args.store, task)
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
                        packing=args.packing, keep_weights=not args.no_weights, keep_state=args.keep_state,
                        on_plan=show_plan, task=task)
    print()
    print(summary_table(results.runs, task.objective.metric_name if task is not None else "acc"))
    hint_after_training(results.runs, args.store)
    trained = len(results) - results.skipped
    print(f"{len(results) + len(results.failed)} run(s): {trained} trained, skipped (already in store): {results.skipped}, "
          f"failed: {len(results.failed)}; store {args.store}")
    if args.output is not None:
        results.to_csv(args.output) if export_format(args.output) == "csv" else results.to_json(args.output)
        print(f"{len(results)} run(s) written to {args.output}")
    if results.failed:
        print(f"batchlab: {len(results.failed)} run(s) failed; run the same command again to retry them",
              file=sys.stderr)
        return 1
    return 0
