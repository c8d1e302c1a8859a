"""``batchlab lecture``: the whole lecture from measurements on this machine, in one HTML report."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from batchlab.commands._options import (
    add_data_dir_option,
    add_device_option,
    add_progress_option,
    add_store_option,
    output_dir,
)

DEFAULT_OUT = Path("batchlab-report")
PLAYGROUND = "playground.html"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lecture",
        help="reproduce the lecture 'Batch and Momentum' from measurements, as one offline HTML report",
        description="Run the lecture's experiments on this machine — time per update and per epoch vs batch "
        "size, accuracy vs batch size (a sweep over B × λ × η × seeds under three protocols), mini-batch vs "
        "full-batch gradients near a critical point, a small and a large batch trained to the same training "
        "accuracy (test accuracy, sharpness of each minimum, the loss on the line between them), momentum on toy "
        "surfaces — store everything, and write <out>/report.html (self-contained, readable offline), every figure "
        "as PNG and SVG under <out>/figures/, and <out>/summary.json. Finished runs in the store are reused, so a "
        "second call only redraws. --scale quick takes about 6 minutes on a quiet 2-core CPU; --scale full uses "
        "the full datasets present and the lecture's batch sizes (meant for a GPU).",
        epilog="Example: batchlab lecture --store batchlab-runs/runs.db --out batchlab-report --scale quick",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_store_option(parser)
    parser.add_argument("--out", type=output_dir, default=str(DEFAULT_OUT), metavar="DIR",
                        help=f"where report.html, figures/ and summary.json go (default: {DEFAULT_OUT})")
    parser.add_argument("--scale", choices=("quick", "full"), default="quick",
                        help="quick: mnist-5k (and 2,048 Fashion-MNIST images for flat vs sharp), the lecture "
                        "MLP, B 8 … full, ~6 min on a quiet 2-core CPU; full: full datasets, "
                        "B 1 … 60,000, for a GPU (default: quick)")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="seeds per configuration, flat vs sharp included (default: the scale's — quick 2, "
                        "and 3 for flat vs sharp; full 3 and 5)")
    parser.add_argument("--retime", action="store_true",
                        help="measure the timing again even if the store already has it")
    add_device_option(parser)
    add_data_dir_option(parser)
    add_progress_option(parser, "a progress bar per training run (else one plain line per epoch of each run)")
    parser.set_defaults(handler=run_lecture_command)


def run_lecture_command(args: argparse.Namespace) -> int:
    from batchlab.experiments.lecture import get_scale, run_lecture, with_seeds
    from batchlab.report import build_report
    from batchlab.store import RunStore

    scale = with_seeds(get_scale(args.scale), args.seeds)
    started = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {text}", file=sys.stderr, flush=True)

    with RunStore(args.store) as store:
        run_lecture(store, scale, device=args.device, data_dir=str(args.data_dir) if args.data_dir else None,
                    retime=args.retime, progress=say, run_progress=args.progress)
        say("writing the report")
        report, ctx = build_report(store)
        written = write_lecture_report(report, ctx, args.out)
        print(format_summary(ctx.summary))
    print(f"report: {written['html']} ({len(written['figures'])} figure files in {args.out / 'figures'}); "
          f"numbers: {written['summary']}; playground: {written['playground']}; store: {args.store}")
    print(f"batchlab lecture took {time.perf_counter() - started:.0f} s")
    return 0


def write_lecture_report(report, ctx, out: Path) -> dict:
    """``out/report.html`` (+ figures/, summary.json) and the browser playground beside it, linked
    from the report's top."""
    from batchlab.playground import write_page
    from batchlab.report import write_report

    playground = write_page(out / PLAYGROUND)
    report.links.append(("Playground: roll the ball yourself — drag η, λ and the batch size (opens offline)",
                         PLAYGROUND))
    written = write_report(report, ctx, out / "report.html", summary_json=out / "summary.json")
    return {**written, "playground": playground}


def format_summary(table) -> str:
    """The summary table as plain text for the terminal."""
    from batchlab.analysis.summary import seconds_text

    def cell(measured, unit: str) -> str:
        if measured is None:
            return "—"
        value = seconds_text(measured.value) if unit == "s" else f"{measured.value:.4g}"
        return f"{value} (B={measured.batch_size})"

    header = ("aspect", "lecture small/large", "small B", "large B", "verdict")
    rows = [(r.aspect, f"{r.lecture_small} / {r.lecture_large}", cell(r.small, r.unit), cell(r.large, r.unit),
             r.verdict) for r in table.rows]
    widths = [max(len(str(line[i])) for line in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(value).ljust(width) for value, width in zip(line, widths)).rstrip()
             for line in [header, *rows]]
    return "\n".join(lines)
