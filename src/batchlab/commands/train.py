"""``batchlab train``: one run, recorded in the store, with a per-epoch table."""

from __future__ import annotations

import argparse

from batchlab.commands._experiment import finish
from batchlab.commands._options import (
    add_data_dir_option,
    add_device_option,
    add_progress_option,
    add_store_option,
    batch_size_value,
    hidden_width,
    seed_value,
)
from batchlab.config import LR_DECAYS, LR_SCALINGS, SHUFFLE_MODES, RunConfig
from batchlab.errors import ConfigError
from batchlab.commands._limits import check_model_memory, model_memory_errors
from batchlab.optim.recipes import RECIPES
from batchlab.optim.registry import OPTIMIZERS
from batchlab.task.options import add_task_options, user_task


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one configuration and record it in the store",
        description="Train one network with mini-batches and the lecture's momentum; the run is "
        "stored (config, per-epoch metrics, environment, final weights) and a finished run is "
        "returned from the store instead of trained again unless --force.",
        epilog="Example: batchlab train --dataset mnist-5k --model mlp --batch-size 64 --lr 0.1 --momentum 0.9 --epochs 3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(parser)
    add_task_options(parser)
    add_store_option(parser)
    parser.add_argument("--force", action="store_true", help="train again even if the store has this run")
    parser.add_argument("--no-weights", action="store_true", help="do not keep the final weights")
    parser.add_argument("--keep-state", action="store_true",
                        help="also keep the final optimizer state and counts, so --continue-from can train the run on "
                             "(one process only)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    add_progress_option(parser, "a progress bar per epoch (else plain log lines)")
    add_data_parallel_options(parser)
    parser.set_defaults(handler=run_train)


def add_data_parallel_options(parser: argparse.ArgumentParser) -> None:
    """One run on several processes (batchlab.distributed)."""
    parser.add_argument("--nproc", type=int, default=None,
                        help="train on N local processes with DistributedDataParallel (N divides the batch)")
    parser.add_argument("--max-restarts", type=int, default=None,
                        help="with --nproc: start the processes again this often after one dies (default: 0)")
    parser.add_argument("--sync-bn", dest="sync_bn", action="store_const", const=True, default=None,
                        help="with --nproc: batch-norm statistics over the global batch (default on CUDA)")
    parser.add_argument("--no-sync-bn", dest="sync_bn", action="store_const", const=False,
                        help="with --nproc: batch-norm statistics per process (default on the CPU)")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options that make up one RunConfig (shared with other commands)."""
    defaults = RunConfig()
    # The options that choose the registry's model and data default to None ("not given"), so
    # that with --model-file/--data-file a given one is refused (batchlab.task.options.user_task_files);
    # config_from_args fills in RunConfig's defaults.
    parser.add_argument("--dataset", default=None, help=f"dataset name (default: {defaults.dataset}; see `batchlab data list`)")
    parser.add_argument("--model", default=None, help="mlp, keskar-f1, keskar-c1, cnn (default: mlp)")
    parser.add_argument("--hidden", type=hidden_width, nargs="+", default=None, help="hidden widths, e.g. --hidden 512 512")
    parser.add_argument("--optimizer", default=defaults.optimizer, help=f"{', '.join(OPTIMIZERS)} (default: momentum)")
    parser.add_argument("--batch-size", type=batch_size_value, default=defaults.batch_size, help="1 … N or 'full' (default: 64)")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="learning rate η (default: 0.1)")
    parser.add_argument("--momentum", type=float, default=defaults.momentum, help="λ in m ← λm − ηg, in [0, 1) (default: 0)")
    parser.add_argument("--nesterov", action="store_true", help="Nesterov form of momentum")
    parser.add_argument("--momentum-correction", action="store_true",
                        help="Goyal et al.'s momentum correction: m ← m·η_new/η_old when the rate changes "
                        "(warm-up, decay); the lecture's momentum with λ > 0 only")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="L2 coefficient (default: 0)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="epochs (default: 5)")
    parser.add_argument("--seed", type=seed_value, default=defaults.seed, help="initialization and data-order seed (default: 0)")
    parser.add_argument("--val-fraction", type=float, default=None, help="validation share of the training set (default: 0.1)")
    parser.add_argument("--split-seed", type=seed_value, default=None, help="seed of the validation split (default: 0)")
    parser.add_argument("--shuffle", choices=SHUFFLE_MODES, default=defaults.shuffle, help="epoch (default), once or none")
    parser.add_argument("--drop-last", action="store_true", help="drop the last partial batch of each epoch")
    parser.add_argument("--max-updates", type=int, default=None, help="stop after this many updates (a fixed update budget)")
    parser.add_argument("--stop-patience", type=int, default=0, help="stop when the training loss has not improved for this many epochs (0 = off)")
    add_large_batch_options(parser)
    add_device_option(parser)
    add_data_dir_option(parser)


def add_large_batch_options(parser: argparse.ArgumentParser) -> None:
    """Learning-rate schedule, ghost batch norm, recipe, LARS, accuracy target, start weights."""
    parser.add_argument("--lr-scaling", choices=LR_SCALINGS, default="none",
                        help="scale --lr to the batch size: linear η·B/base, sqrt η·√(B/base) (Goyal et al. 2017; default: none)")
    parser.add_argument("--base-batch", type=int, default=None, help="the batch size --lr was tuned for (with --lr-scaling)")
    parser.add_argument("--warmup-epochs", type=float, default=0.0,
                        help="gradual warm-up over this many epochs, from --lr (0 without scaling) to the scaled rate (default: 0)")
    parser.add_argument("--lr-decay", choices=LR_DECAYS, default="none",
                        help="none (default), step (--decay-epochs, --decay-factor), cosine, slow-start (Akiba et al. 2017)")
    parser.add_argument("--decay-epochs", type=int, nargs="+", default=None, help="step-decay milestones in epochs, e.g. 30 60 80")
    parser.add_argument("--decay-factor", type=float, default=0.1, help="step-decay factor per milestone (default: 0.1)")
    parser.add_argument("--ghost-batch", type=int, default=None,
                        help="ghost batch norm over this many examples, a divisor of B (Hoffer et al. 2017; models with batch norm)")
    parser.add_argument("--recipe", choices=tuple(RECIPES), default=None,
                        help="akiba: RMSprop warm-up handing over to momentum, slow start, batch norm without moving averages")
    parser.add_argument("--trust-coefficient", type=float, default=None, help="LARS's trust coefficient η (default: 0.001)")
    parser.add_argument("--target-train-acc", type=float, default=None,
                        help="end the run at the first epoch whose training accuracy reaches this (0 … 1)")
    parser.add_argument("--init-from", default=None, help="start from the final weights of this run id (same store)")
    parser.add_argument("--continue-from", default=None, metavar="RUN_ID",
                        help="train this finished run on with its optimizer state and settings, to --epochs epochs in "
                             "all (same store; the run must have been trained with --keep-state, else its epochs are "
                             "trained again from its initial weights)")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    defaults = RunConfig()

    def given_or_default(name: str):
        value = getattr(args, name)
        return getattr(defaults, name) if value is None else value

    return RunConfig(
        dataset=given_or_default("dataset"),
        model=given_or_default("model"),
        optimizer=args.optimizer,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        nesterov=args.nesterov,
        momentum_correction=args.momentum_correction,
        weight_decay=args.weight_decay,
        epochs=args.epochs,
        seed=args.seed,
        val_fraction=given_or_default("val_fraction"),
        split_seed=given_or_default("split_seed"),
        shuffle=args.shuffle,
        drop_last=args.drop_last,
        hidden=tuple(args.hidden) if args.hidden else None,
        max_updates=args.max_updates,
        stop_patience=args.stop_patience,
        lr_scaling=args.lr_scaling,
        base_batch=args.base_batch,
        warmup_epochs=args.warmup_epochs,
        lr_decay=args.lr_decay,
        decay_epochs=tuple(args.decay_epochs) if args.decay_epochs else None,
        decay_factor=args.decay_factor,
        ghost_batch=args.ghost_batch,
        recipe=args.recipe,
        trust_coefficient=args.trust_coefficient,
        target_train_acc=args.target_train_acc,
        init_from=args.init_from,
        continue_from=args.continue_from,
        device=args.device,
        data_dir=str(args.data_dir) if args.data_dir else None,
    )


def run_train(args: argparse.Namespace) -> int:
    from batchlab.commands._hints import hint_after_training, warn_before_training
    from batchlab.training import train

    config = config_from_args(args)
    task = user_task(args)
    if task is None:
        check_model_memory(config.model, config.dataset, config.hidden, config.device)
    warn_before_training([config], args.store, task)
    if args.nproc is not None or args.max_restarts is not None:
        from batchlab.distributed.launch import train_from_args

        if args.keep_state:
            raise ConfigError("--keep-state keeps one process's optimizer state; allowed: without --nproc / "
                              "--max-restarts")

        result = train_from_args(config, args)
    else:
        with model_memory_errors(config.model, config.hidden):
            result = train(config, store=args.store, force=args.force, progress=args.progress,
                           keep_weights=not args.no_weights, keep_state=args.keep_state, task=task)
    hint_after_training([result], args.store)
    metric = task.objective.metric_name if task is not None else "acc"
    return finish(args.format, result.to_dict(), lambda: format_result(result, args.store, metric))


def format_result(result, store, metric: str = "acc") -> str:
    """A per-epoch table and a summary line, readable in a terminal; ``metric``: the metric's key
    (``acc``, or a user's task's)."""
    lines = []
    origin = "from the store (use --force to train again)" if result.from_store else "trained"
    lines.append(f"run {result.run_id}: {result.status}, {origin}; store {store}")
    header = (f"{'epoch':>5} {'updates':>8} {'train loss':>10} {'train ' + metric:>9} {'val loss':>9} "
              f"{'val ' + metric:>8} {'epoch s':>8}")
    lines.append(header)
    for row in result.epochs:
        lines.append(
            f"{int(row['epoch']):>5} {int(row['updates']):>8} {row['train_loss']:>10.4f} "
            f"{row.get(f'train_{metric}', float('nan')):>9.4f} {row.get('val_loss', float('nan')):>9.4f} "
            f"{row.get(f'val_{metric}', float('nan')):>8.4f} {row['epoch_time_s']:>8.3f}"
        )
    s = result.summary
    tail = []
    if s.get(f"test_{metric}") is not None:
        tail.append(f"test {metric} {s[f'test_{metric}']:.4f}")
    if s.get("time_per_update_s") is not None:
        tail.append(f"time/update {s['time_per_update_s'] * 1e3:.3f} ms (median of {s.get('timed_updates')})")
    if s.get("time_per_epoch_s") is not None:
        tail.append(f"time/epoch {s['time_per_epoch_s']:.3f} s")
    if s.get("diverged_epoch") is not None:
        tail.append(f"diverged at epoch {s['diverged_epoch']} (loss became NaN or infinite)")
    if s.get("reached_target_at") is not None:
        tail.append(f"ended at epoch {s['reached_target_at']}: training accuracy reached the target")
    if s.get("stopped_early_at") is not None:
        tail.append(f"stopped at epoch {s['stopped_early_at']}: training loss stopped improving")
    lines.append("; ".join(tail))
    return "\n".join(lines)
