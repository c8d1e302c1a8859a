"""``batchlab data``: list the registered datasets and where they are; fetch one with checksums."""

from __future__ import annotations

import argparse
import functools
import sys

from batchlab.commands._experiment import finish
from batchlab.commands._options import add_data_dir_option, add_progress_option, progress_on


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="list datasets, download one (SHA-256 checked)",
        description="Datasets batchlab can train on. `list` shows each one's size, image shape and "
        "whether its files are on disk; `fetch` downloads a dataset's files, checks each against its "
        "published SHA-256 before keeping it, and leaves no partial file behind on failure.",
        epilog="Example: batchlab data list; batchlab data fetch mnist --data-dir ~/datasets",
    )
    actions = parser.add_subparsers(dest="data_action", metavar="ACTION")

    list_parser = actions.add_parser(
        "list",
        help="the registered datasets and whether they are present",
        description="One row per registered dataset: training and test sizes, image shape "
        "(channels×height×width), classes, and where its files were found.",
        epilog="Example: batchlab data list --data-dir ~/datasets",
    )
    add_data_dir_option(list_parser)
    list_parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    list_parser.set_defaults(handler=run_list)

    fetch_parser = actions.add_parser(
        "fetch",
        help="download a dataset and verify its SHA-256",
        description="Download every missing file of a dataset from its mirrors (tried in order), "
        "verify size and SHA-256 before putting it in place, and extract CIFAR-10's archive. "
        "Files already present are kept; mnist-5k ships inside batchlab and needs no download.",
        epilog="Example: batchlab data fetch fashion-mnist --data-dir ~/datasets",
    )
    fetch_parser.add_argument("name", metavar="NAME", help="dataset name (see `batchlab data list`)")
    add_data_dir_option(fetch_parser)
    fetch_parser.add_argument("--base-url", default=None,
                              help="download from this URL instead of the registry's mirrors (file F from URL/F)")
    add_progress_option(fetch_parser, "a download progress bar")
    fetch_parser.set_defaults(handler=run_fetch)

    parser.set_defaults(handler=functools.partial(_usage, parser))


def _usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``batchlab data`` without an action: show what the actions are."""
    parser.print_help(sys.stderr)
    return 2


def run_list(args: argparse.Namespace) -> int:
    from batchlab.data import dataset_status

    rows = dataset_status(args.data_dir)
    return finish(args.format, rows, lambda: format_status_table(rows))


def format_status_table(rows: list[dict]) -> str:
    """The ``data list`` table: name, train, test, shape, classes, present (yes/no + path)."""
    header = ("name", "train", "test", "shape", "classes", "present")
    body = []
    for row in rows:
        shape = "×".join(str(d) for d in row["input_shape"])
        if row["present"]:
            present = f"yes  {row['path']}"
        else:
            present = f"no   (`batchlab data fetch {row['name']}` puts it in {row['path']})"
        body.append((row["name"], f"{row['n_train']:,}", f"{row['n_test']:,}", shape, str(row["num_classes"]), present))
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header) - 1)]
    right = {1, 2, 4}  # numbers read best right-aligned

    def line(cells: tuple[str, ...]) -> str:
        parts = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(cells, widths))]
        return "  ".join([*parts, cells[-1]])

    return "\n".join([line(header), *(line(r) for r in body)])


def run_fetch(args: argparse.Namespace) -> int:
    from batchlab.data import fetch

    paths = fetch(args.name, args.data_dir, base_url=args.base_url, progress=progress_on(args.progress), log=print)
    print(f"{args.name}: ready ({len(paths)} file{'s' if len(paths) != 1 else ''})")
    return 0
