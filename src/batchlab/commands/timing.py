"""``batchlab timing``: time per update and per epoch against batch size, per data path and device."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from batchlab.commands._options import add_data_dir_option, add_device_option, add_store_option

DEFAULT_OUT = Path("batchlab-report") / "timing"


def register(subparsers: argparse._SubParsersAction) -> None:
    from batchlab.timing.harness import (
        DEFAULT_BATCH_SIZES,
        DEFAULT_BUDGET_S,
        DEFAULT_CPU_BUDGET_WITH_GPU_S,
        DEFAULT_N_EXAMPLES,
        DEFAULT_REPEATS,
        DEFAULT_WARMUP,
    )
    from batchlab.threads import ONE_THREAD_BELOW_BATCH
    from batchlab.timing.paths import PATHS

    parser = subparsers.add_parser(
        "timing",
        help="time one update and one epoch against batch size (the lecture's parallelism table)",
        description="Measure, for each batch size, the median time of one training update (with its "
        "quartiles over repeats, after warm-up) and the time of one epoch, on three data paths: "
        "the plain-PyTorch DataLoader loop, batchlab's device-resident batches, and (GPU only) the "
        "whole step replayed from a CUDA graph. Epochs that do not fit the time budget are "
        "extrapolated from the time per update and flagged; a dataset smaller than the timed N is "
        "replaced by random data of its shape and flagged. Writes a table, a two-panel figure "
        "(PNG and SVG) and rows in the run store.",
        epilog="Example: batchlab timing --batch-sizes 1 10 100 1000 --paths dataloader resident --budget-s 1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", default="mnist-5k", help="dataset whose shape is timed (default: mnist-5k)")
    add_data_dir_option(parser)
    parser.add_argument("--model", default="mlp", help="mlp (the lecture's 784-512-512-10), keskar-f1, keskar-c1, cnn (default: mlp)")
    parser.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden widths, e.g. --hidden 512 512")
    parser.add_argument("--batch-sizes", nargs="+", default=[str(b) for b in DEFAULT_BATCH_SIZES], metavar="B",
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
    parser.add_argument("--n-examples", type=int, default=DEFAULT_N_EXAMPLES,
                        help=f"training-set size N of an epoch (default: {DEFAULT_N_EXAMPLES}, the lecture's MNIST)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes (default: 0)")
    parser.add_argument("--optimizer", default="momentum",
                        help="optimizer of the eager paths: momentum (the lecture's), sgd, torch-sgd, adam (default: momentum)")
    parser.add_argument("--seed", type=int, default=0, help="initialization and data-order seed (default: 0)")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads of every timed update (default: the trainer's rule, "
                             f"one thread for CPU batches below {ONE_THREAD_BELOW_BATCH})")
    add_store_option(parser)
    parser.add_argument("--no-store", action="store_true", help="do not record the timings in the store")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for timing.png/.svg/.json (default: {DEFAULT_OUT})")
    parser.add_argument("--no-lecture-reference", dest="lecture_reference", action="store_false",
                        help="leave the lecture's V100 numbers out of the figure")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    parser.set_defaults(handler=run_timing)


def run_timing(args: argparse.Namespace) -> int:
    from batchlab.config import parse_batch_size
    from batchlab.timing import format_timing_table, plot_timing, save_figure, timing_sweep
    from batchlab.timing.harness import check_paths, sweep_devices

    batch_sizes = [parse_batch_size(value) for value in args.batch_sizes]
    # Checked before any data is made or anything is timed, so bad input fails at once.
    check_paths(args.paths, sweep_devices(args.device))

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

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
    )
    figure_paths = save_figure(plot_timing(table, lecture_reference=args.lecture_reference), args.out)
    json_path = write_json(table.to_dict(), args.out / "timing.json")

    stored = 0
    if not args.no_store:
        from batchlab.store import RunStore

        with RunStore(args.store) as store:
            for row in table.store_rows():
                store.add_timing(row)
                stored += 1

    if args.format == "json":
        print(json.dumps(table.to_dict(), indent=2))
    else:
        print(format_timing_table(table))
        print()
        print(f"figure: {', '.join(str(p) for p in figure_paths)}; data: {json_path}")
        if stored:
            print(f"{stored} timing rows added to {args.store}")
    return 0


def write_json(data: dict, target: Path) -> Path:
    """Write ``data`` as JSON to ``target`` atomically (temp file in the same folder, then rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
