"""``batchlab timing``: time per update and per epoch against batch size, per data path and device."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from batchlab.commands._experiment import finish
from batchlab.commands._options import (
    add_data_dir_option,
    add_device_option,
    add_progress_option,
    add_store_option,
    batch_size_value,
    check_store_opens,
    hidden_width,
    output_dir,
    progress_on,
    seed_value,
)
from batchlab.optim.registry import names_with
from batchlab.task.options import add_task_options, user_task_files

DEFAULT_OUT = Path("batchlab-report") / "timing"
# The command line's defaults, written here so that `--help` needs no torch; equal to
# batchlab.timing.harness's and batchlab.timing.paths' (a test checks).
DEFAULT_BATCH_SIZES = (1, 10, 100, 1000, 10000, 60000)
DEFAULT_N_EXAMPLES = 60000
DEFAULT_MODEL = "mlp"
DEFAULT_DATASET = "mnist-5k"
DEFAULT_REPEATS = 5
DEFAULT_WARMUP = 3
DEFAULT_BUDGET_S = 2.0
DEFAULT_CPU_BUDGET_WITH_GPU_S = 0.5
PATHS = ("dataloader", "resident", "cuda-graph")
ONE_THREAD_BELOW_BATCH = 64  # batchlab.runtime.threads' rule


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "timing",
        help="time one update and one epoch against batch size (the lecture's parallelism table)",
        description="Measure, for each batch size, the median time of one training update (with its "
        "quartiles over repeats, after warm-up) and the time of one epoch, on three data paths: "
        "the plain-PyTorch DataLoader loop, batchlab's device-resident batches, and (GPU only) the "
        "whole step replayed from a CUDA graph. Epochs that do not fit the time budget are "
        "extrapolated from the time per update and flagged; a dataset smaller than the timed N is "
        "replaced by random data of its shape and flagged. Your own model and data "
        "(--model-file/--data-file) are timed the same way, with the loss the model file gives "
        "(cross-entropy by default) on the data's own training examples. Writes a table, a "
        "two-panel figure (PNG and SVG) and rows in the run store that name the model and data.",
        epilog="Example: batchlab timing --batch-size 1 10 100 1000 --paths dataloader resident --budget-s 1\n"
               "Your own model: batchlab timing --model-file net.py:make_model --data-file data.py:load_data "
               "--batch-size 1 32 256",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Registry options default to None, so that one given beside --model-file/--data-file is told apart.
    parser.add_argument("--dataset", default=None, help=f"dataset whose shape is timed (default: {DEFAULT_DATASET})")
    add_data_dir_option(parser)
    parser.add_argument("--model", default=None,
                        help=f"mlp (the lecture's 784-512-512-10), keskar-f1, keskar-c1, cnn (default: {DEFAULT_MODEL})")
    parser.add_argument("--hidden", type=hidden_width, nargs="+", default=None, help="hidden widths, e.g. --hidden 512 512")
    parser.add_argument("--batch-size", type=batch_size_value, nargs="+", default=list(DEFAULT_BATCH_SIZES), metavar="B",
                        help="integers ≥ 1 or 'full' (default: " + " ".join(str(b) for b in DEFAULT_BATCH_SIZES) + ")")
    parser.add_argument("--paths", nargs="+", default=None, metavar="PATH",
                        help=f"data paths among {', '.join(PATHS)} (default: every path the device can run)")
    add_device_option(parser)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help=f"timed repeats per point, ≥ 5 (default: {DEFAULT_REPEATS})")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help=f"untimed updates first (default: {DEFAULT_WARMUP})")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                        help=f"seconds of timed updates per point; longer epochs are extrapolated (default: {DEFAULT_BUDGET_S:g})")
    parser.add_argument("--cpu-budget-s", type=float, default=None,
                        help=f"the CPU's budget when a GPU is timed too (default: {DEFAULT_CPU_BUDGET_WITH_GPU_S:g}; "
                        "else --budget-s)")
    add_task_options(parser)
    parser.add_argument("--n-examples", type=int, default=None,
                        help=f"training-set size N of an epoch (default: {DEFAULT_N_EXAMPLES}, the lecture's MNIST; "
                             "with --data-file, its training examples)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes (default: 0)")
    parser.add_argument("--optimizer", default="momentum",
                        help=f"optimizer of the eager paths: {names_with('needs_epoch_length', False)} "
                             "(default: momentum, the lecture's)")
    parser.add_argument("--seed", type=seed_value, default=0, help="initialization and data-order seed (default: 0)")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads of every timed update (default: the trainer's rule, "
                             f"one thread for CPU batches below {ONE_THREAD_BELOW_BATCH})")
    add_store_option(parser)
    parser.add_argument("--no-store", action="store_true", help="do not record the timings in the store")
    parser.add_argument("--out", type=output_dir, default=str(DEFAULT_OUT), metavar="DIR", help=f"folder for timing.png/.svg/.json (default: {DEFAULT_OUT})")
    parser.add_argument("--no-lecture-reference", dest="lecture_reference", action="store_false",
                        help="leave the lecture's V100 numbers out of the figure")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    add_progress_option(parser, "a line per timed point")
    parser.set_defaults(handler=run_timing)


def run_timing(args: argparse.Namespace) -> int:
    from batchlab.files import save_figure, write_json
    from batchlab.commands._limits import check_model_memory, model_memory_errors
    from batchlab.timing import format_timing_table, plot_timing, timing_sweep
    from batchlab.timing.harness import check_paths, sweep_devices

    batch_sizes = list(args.batch_size)
    # Checked before any file is imported, data made or anything timed, so bad input fails at once.
    check_paths(args.paths, sweep_devices(args.device))
    files = user_task_files(args)
    if files is None:
        check_model_memory(args.model or DEFAULT_MODEL, args.dataset or DEFAULT_DATASET, args.hidden, args.device)
    if not args.no_store:
        check_store_opens(args.store)
    task = None
    if files is not None:
        from batchlab.task.files import task_from_files

        task = task_from_files(*files)

    def report(line: str) -> None:
        if progress_on(args.progress):
            print(line, file=sys.stderr, flush=True)

    with model_memory_errors(task.model_id if task else args.model or DEFAULT_MODEL, args.hidden):
        table = timing_sweep(
            args.paths,
            batch_sizes,
            args.device,
            model=args.model,
            dataset=args.dataset,
            n_examples=args.n_examples,
            repeats=args.repeats,
            warmup=args.warmup,
            budget_s=args.budget_s,
            cpu_budget_s=args.cpu_budget_s,
            data_dir=args.data_dir,
            optimizer=args.optimizer,
            num_workers=args.num_workers,
            seed=args.seed,
            hidden=tuple(args.hidden) if args.hidden else None,
            threads=args.threads,
            progress=report,
            task=task,
        )
    figure_paths = save_figure(plot_timing(table, lecture_reference=args.lecture_reference), args.out / "timing", dpi=150)
    json_path = write_json(args.out / "timing.json", table.to_dict())

    stored = 0
    if not args.no_store:
        from batchlab.store import RunStore

        with RunStore(args.store) as store:
            for row in table.store_rows():
                store.add_timing(row)
                stored += 1

    def text() -> str:
        return format_timing_table(table) + (f"\n\n{stored} timing rows added to {args.store}" if stored else "")

    return finish(args.format, table.to_dict(), text, written=[*figure_paths, json_path])
