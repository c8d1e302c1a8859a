"""``batchlab report --store STORE -o report.html``: the lecture report from whatever a store holds."""

from __future__ import annotations

import argparse

from batchlab.commands._options import add_store_option, output_file, store_path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="render the self-contained HTML report from a run store",
        description="Build the report from what the store holds — runs (accuracy vs batch size and the summary "
        "table), timing rows (the timing figure), noise and toy records, and sections other analyses "
        "contribute — and write one self-contained HTML file (figures embedded, readable offline) with every "
        "figure also as PNG and SVG in figures/ beside it. Nothing is trained or measured.",
        epilog="Example: batchlab report --store batchlab-runs/runs.db -o batchlab-report/report.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_store_option(parser)
    parser.add_argument("store_given", nargs="?", type=store_path, default=None, metavar="STORE",
                        help="the run store, as an alternative to --store")
    parser.add_argument("-o", "--output", type=output_file, default="report.html", metavar="FILE",
                        help="the HTML file to write (default: report.html); figures go to figures/ beside it")
    parser.add_argument("--summary-json", type=output_file, default=None, metavar="FILE",
                        help="also write the numbers behind the report as JSON")
    parser.set_defaults(handler=run_report_command)


def run_report_command(args: argparse.Namespace) -> int:
    from batchlab.report import build_report, write_report
    from batchlab.store import RunStore

    if args.store_given is not None:
        args.store = args.store_given
    with RunStore(args.store, create=False) as store:
        report, ctx = build_report(store)
        written = write_report(report, ctx, args.output, summary_json=args.summary_json)
    sections = ", ".join(s.id for s in report.sections) or "none (the store holds nothing to report)"
    print(f"wrote {written['html']}: sections {sections}; {len(written['figures'])} figure files")
    return 0
