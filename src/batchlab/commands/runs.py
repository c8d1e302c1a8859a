"""``batchlab runs``: list the runs of a store as a table, CSV or JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from batchlab.commands._options import add_store_option, output_file
from batchlab.config import RunConfig
from batchlab.errors import UserError
from batchlab.files import write_text_atomically
from batchlab.store import EXPORT_FORMATS, STATUSES, RunStore, export_runs

# Keys --where accepts: every RunConfig field (the store's config JSON holds exactly these).
WHERE_KEYS = tuple(field.name for field in dataclasses.fields(RunConfig))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "runs",
        help="list the runs recorded in a store",
        description="List the runs of a store: a readable table by default (run id, status, "
        "dataset, model, optimizer, batch size B, learning rate, momentum λ, seed, epochs, final "
        "accuracies, time per update), or CSV/JSON with every config and summary column, ready "
        "for pandas (pandas.read_csv / pandas.read_json).",
        epilog="Example: batchlab runs --store batchlab-runs/runs.db --status finished "
        "--where batch_size=64,full --where momentum=0.9 --format csv -o runs.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_store_option(parser)
    parser.add_argument("--status", choices=STATUSES, default=None, help="only runs with this status")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="table", help="output format (default: table)")
    parser.add_argument(
        "--where",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help="keep runs whose config KEY equals VALUE; VALUE may list alternatives separated by "
        "commas (batch_size=64,full); repeat for several keys",
    )
    parser.add_argument(
        "--per-epoch",
        dest="with_epochs",
        action="store_true",
        help="include per-epoch metrics (csv: one row per run and epoch; json: a 'per_epoch' list per run)",
    )
    parser.add_argument("-o", "--output", type=output_file, default=None, metavar="FILE",
                        help="write to this file instead of the terminal")
    parser.set_defaults(handler=run_runs)


def run_runs(args: argparse.Namespace) -> int:
    where = parse_where(args.where)
    if args.with_epochs and args.format == "table":
        raise UserError("--per-epoch needs a file format; allowed: --format csv or --format json")
    with RunStore(args.store, create=False) as store:
        records = store.runs(status=args.status, where=where)
        text = export_runs(records, args.format, metrics_for=store if args.with_epochs else None)
    if args.format == "table" and not records:
        text = f"no runs in {args.store}" + (" match the filters" if where or args.status else "")
    if args.output is None:
        print(text)
        return 0
    _write_output(args.output, text if text.endswith("\n") else text + "\n")
    print(f"{len(records)} run(s) written to {args.output}")
    return 0


def parse_where(items: list[str]) -> dict[str, Any]:
    """``["batch_size=64,full", "momentum=0.9"]`` → ``{"batch_size": [64, "full"], "momentum": 0.9}``.

    Keys may be written with dashes (``batch-size``). Each value is read as JSON when it is valid
    JSON (numbers, true/false, null, ``[512,512]``), otherwise as text; commas outside brackets
    separate alternatives.
    """
    where: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not raw.strip():
            raise UserError(f"--where {item!r} is not KEY=VALUE; allowed: e.g. --where batch_size=64")
        if key not in WHERE_KEYS:
            raise UserError(f"--where key {key!r} is unknown; allowed: {', '.join(WHERE_KEYS)}")
        raw = raw.strip()
        alternatives = [raw] if raw.startswith("[") else [part.strip() for part in raw.split(",")]
        values = [_parse_value(part) for part in alternatives if part]
        where[key] = values[0] if len(values) == 1 else values
    return where


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _write_output(path: Path, text: str) -> None:
    try:
        write_text_atomically(path, text)
    except OSError as error:
        raise UserError(f"cannot write {path} ({error.strerror}); allowed: a path in a writable folder") from None
