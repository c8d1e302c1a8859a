"""``batchlab runs``: list, filter, sort and export the runs of a store; show, remove, tag and
compare single runs (``runs show|rm|tag|compare``).

Everywhere a run id is asked for, a unique prefix of at least four characters works too (as
git's abbreviated commits do); an ambiguous prefix lists its candidates.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from batchlab.commands._options import DEFAULT_STORE, add_store_option, output_dir, output_file, store_path
from batchlab.errors import UserError
from batchlab.store.status import STATUSES
from batchlab.store.export import FOLDER, formats
from batchlab.store.query import SORT_KEYS

FIGURE_FORMATS = ("png", "svg", "pdf")

LIST_EPILOG = """Example: batchlab runs --where batch_size=64,full --where 'val_acc>0.9' --sort -val_acc
  batchlab runs --where hidden=64 --where lr=.1 --format csv -o runs.csv
  batchlab runs --format tensorboard --out tb    # then: tensorboard --logdir tb (HParams tab)
  batchlab runs show 3f2a              # any unique id prefix of 4 or more characters
  batchlab runs tag 3f2a baseline --note "lecture defaults"
  batchlab runs compare 3f2a 9c1e -o curves.png
  batchlab runs rm 3f2a --yes

--where KEY OP VALUE, OP one of = != < <= > >=; KEY a config field (batch_size, lr, momentum,
hidden, …), a final metric (train_acc, val_acc, test_acc, train_loss, …), status or tag. Numbers
compare as numbers (lr=.1 matches 0.1), hidden as a list (hidden=64,64), a comma elsewhere
separates alternatives (batch_size=64,full); several --where must all hold."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "runs",
        help="list, filter, export, show, tag, compare or remove the runs of a store",
        description="List the runs of a store: a readable table by default (run id, status, "
        "data and model (with a short fingerprint for a user's own), architecture, optimizer, batch size B, learning rate, momentum λ, seed, "
        "epochs, final accuracies, time per update, tags), or CSV/JSON with every config and "
        "summary column, ready for pandas (pandas.read_csv / pandas.read_json), or TensorBoard "
        "event folders (per-epoch scalars and the HParams view).",
        epilog=LIST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_store(parser, default=True)
    parser.add_argument("--status", choices=STATUSES, default=None, help="only runs with this status")
    parser.add_argument(
        "--where",
        metavar="COND",
        nargs="+",
        action="extend",
        default=[],
        help="keep runs meeting KEY OP VALUE (see below); repeat for several conditions, all must hold",
    )
    parser.add_argument("--sort", metavar="KEY", default=None,
                        help="order by a config field or metric (e.g. val_acc); -KEY sorts largest first")
    parser.add_argument("--desc", action="store_true", help="sort largest first")
    parser.add_argument("--format", choices=formats(), default="table",
                        help=f"table (default), csv, json, or a folder format with --out: {', '.join(formats(FOLDER))}")
    parser.add_argument(
        "--per-epoch",
        dest="with_epochs",
        action="store_true",
        help="include per-epoch metrics (csv: one row per run and epoch; json: a 'per_epoch' list per run)",
    )
    parser.add_argument("-o", "--output", type=output_file, default=None, metavar="FILE",
                        help="write the table, CSV or JSON to this file instead of the terminal")
    parser.add_argument("--out", type=output_dir, default=None, metavar="DIR",
                        help="the folder a folder format writes (tensorboard: one event folder per run)")
    _accept_minus_keys(parser)
    parser.set_defaults(handler=run_runs)

    commands = parser.add_subparsers(dest="runs_command", metavar="SUBCOMMAND", action=_Subcommands,
                                     title="subcommands (without one: the list)")
    show = commands.add_parser("show", help="one run in full: config, environment, per-epoch metrics, records",
                               description="Show one run: its config, environment, summary, per-epoch "
                               "metrics, tags and note, and every record attached to it in the store "
                               "(Hessian, sharpness, landscape, … results whose key names the run).",
                               epilog="Example: batchlab runs show 3f2a")
    show.add_argument("run_id", metavar="RUN_ID", help="a run id or a unique prefix (≥ 4 characters)")
    show.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    _add_store(show)
    show.set_defaults(handler=run_show)

    remove = commands.add_parser("rm", help="remove runs with their metrics, weights, checkpoint and records",
                                 description="Remove runs from the store with everything attached: "
                                 "per-epoch metrics, final weights, checkpoint, tags, note and the "
                                 "analysis records whose key names them. Asks first unless --yes; a run "
                                 "a live process is training is refused.",
                                 epilog="Example: batchlab runs rm 3f2a 9c1e --yes")
    remove.add_argument("run_ids", metavar="RUN_ID", nargs="+", help="run ids or unique prefixes (≥ 4 characters)")
    remove.add_argument("--yes", action="store_true", help="remove without asking")
    _add_store(remove)
    remove.set_defaults(handler=run_rm)

    tag = commands.add_parser("tag", help="label a run with tags and a note",
                              description="Add tags to a run (shown by `batchlab runs` and `runs show`, "
                              "selected with --where tag=TAG), remove them with --remove, or attach a "
                              "note (an empty note removes it).",
                              epilog='Example: batchlab runs tag 3f2a baseline lecture --note "defaults of the lecture"')
    tag.add_argument("run_id", metavar="RUN_ID", help="a run id or a unique prefix (≥ 4 characters)")
    tag.add_argument("tags", metavar="TAG", nargs="*", help="tags: no spaces or commas")
    tag.add_argument("--note", metavar="TEXT", default=None, help="free text attached to the run")
    tag.add_argument("--remove", action="store_true", help="take the given tags off instead")
    _add_store(tag)
    tag.set_defaults(handler=run_tag)

    compare = commands.add_parser("compare", help="runs side by side: configs, differences, metric curves",
                                  description="Compare runs: configs and final metrics side by side with "
                                  "the differences marked (bold and coloured on a terminal), then the "
                                  "training loss and accuracy per epoch; -o writes the curves as a figure.",
                                  epilog="Example: batchlab runs compare 3f2a 9c1e -o curves.png")
    compare.add_argument("run_ids", metavar="RUN_ID", nargs="+", help="two or more run ids or unique prefixes")
    compare.add_argument("-o", "--output", type=figure_file, default=None, metavar="FILE",
                         help=f"also draw the curves to FILE ({', '.join('.' + f for f in FIGURE_FORMATS)})")
    _add_store(compare)
    compare.set_defaults(handler=run_compare)


class _Subcommands(argparse._SubParsersAction):
    """The subcommands of ``runs``. A word that is no subcommand and not close to one is left
    for the list's own parser to report, so ``runs --form csv`` says ``unrecognized argument
    --form; did you mean --format?`` rather than that ``csv`` is no subcommand."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.choices = _SubcommandNames(self._name_parser_map)

    def __call__(self, parser, namespace, values, option_string=None):
        if values[0] not in self._name_parser_map:
            vars(namespace).setdefault(argparse._UNRECOGNIZED_ARGS_ATTR, []).extend(values)
            return
        super().__call__(parser, namespace, values, option_string)


class _SubcommandNames(Mapping):
    """The subcommand parsers by name; argparse's choice check passes a word far from every
    name (it is reported as unrecognized instead), and refuses a near miss with a suggestion."""

    def __init__(self, parsers: dict) -> None:
        self._parsers = parsers

    def __contains__(self, name: object) -> bool:
        return name in self._parsers or not difflib.get_close_matches(str(name), list(self._parsers), n=1, cutoff=0.6)

    def __getitem__(self, name: str):
        return self._parsers[name]

    def __iter__(self):
        return iter(self._parsers)

    def __len__(self) -> int:
        return len(self._parsers)


def _add_store(parser: argparse.ArgumentParser, *, default: bool = False) -> None:
    """``--store`` on ``runs`` and on each subcommand, so it may come before or after the
    subcommand; a subcommand's own (SUPPRESS default) never overwrites the one given before it."""
    if default:
        add_store_option(parser)
    else:
        parser.add_argument("--store", type=store_path, default=argparse.SUPPRESS,
                            help=f"SQLite run store, one file per study (default: {DEFAULT_STORE})")


def _accept_minus_keys(parser: argparse.ArgumentParser) -> None:
    """Let ``--sort -val_acc`` through: argparse takes a word that starts with '-' for an
    unknown flag unless it looks like a negative number, so here ``-KEY`` for a sort key counts
    as a value too (no flag of this parser is spelled that way)."""
    keys = "|".join(re.escape(key) for key in SORT_KEYS)
    parser._negative_number_matcher = re.compile(rf"^-\d+$|^-\d*\.\d+$|^-({keys})$")


def figure_file(text: str) -> Path:
    """argparse type of ``compare -o``: a writable path whose suffix is a figure format."""
    path = output_file(text)
    if path.suffix.lower().lstrip(".") not in FIGURE_FORMATS:
        raise argparse.ArgumentTypeError(f"cannot tell the figure format of {path}; allowed: a file ending in "
                                         + ", ".join(f".{f}" for f in FIGURE_FORMATS))
    return path


# ----------------------------------------------------------------------------- the list


def run_runs(args: argparse.Namespace) -> int:
    from batchlab.store import Labels, RunStore, export_runs, get_exporter
    from batchlab.store.query import filter_runs, parse_conditions, parse_sort, sort_runs

    conditions = parse_conditions(args.where)
    sort = parse_sort(args.sort, args.desc) if args.sort else None
    if args.desc and not args.sort:
        raise UserError("--desc needs --sort KEY; allowed: e.g. --sort val_acc --desc")
    exporter = get_exporter(args.format)
    if exporter.writes == FOLDER:
        if args.output is not None:
            raise UserError(f"--format {args.format} writes a folder, not the file -o {args.output}; "
                            f"allowed: --format {args.format} --out DIR")
        if args.out is None:
            raise UserError(f"--format {args.format} writes a folder; allowed: --format {args.format} --out DIR")
    elif args.out is not None:
        raise UserError(f"--format {args.format} writes one file; allowed: -o FILE, or --format "
                        f"{' / '.join(formats(FOLDER))} with --out DIR")
    if args.with_epochs and args.format == "table":
        raise UserError("--per-epoch needs a file format; allowed: --format csv or --format json")
    with RunStore(args.store, create=False) as store:
        labels = Labels.of(store)
        records = filter_runs(store.runs(status=args.status), conditions, labels.tags)
        if sort is not None:
            records = sort_runs(records, *sort)
        filtered = bool(conditions or args.status)
        if exporter.writes == FOLDER:
            written = exporter.export(records, store.metrics, labels, args.out)
            print(f"{len(written)} run(s) written to {args.out} ({args.format})")
            return 0
        text = export_runs(records, args.format, metrics_for=store if args.with_epochs else None, labels=labels)
    if args.format == "table" and not records:
        text = f"no runs in {args.store}" + (" match the filters" if filtered else "")
    if args.output is None:
        print(text)
        return 0
    _write_output(args.output, text if text.endswith("\n") else text + "\n")
    print(f"{len(records)} run(s) written to {args.output}")
    return 0


# ----------------------------------------------------------------------------- one run


def run_show(args: argparse.Namespace) -> int:
    from batchlab.commands._experiment import finish
    from batchlab.store import RunStore
    from batchlab.store.views import RunDetails, show_text

    with RunStore(args.store, create=False) as store:
        run_id = store.resolve_run_id(args.run_id)
        details = RunDetails(store.get(run_id), store.metrics(run_id), store.records_naming(run_id),
                             store.tags().get(run_id, []), store.notes().get(run_id))
    return finish(args.format, details.to_dict(), lambda: show_text(details))


def run_rm(args: argparse.Namespace) -> int:
    from batchlab.models.architecture import architecture
    from batchlab.store import RunStore
    from batchlab.store.runs import held_by_live_process

    with RunStore(args.store, create=False) as store:
        run_ids = list(dict.fromkeys(store.resolve_run_id(text) for text in args.run_ids))
        records = [store.get(run_id) for run_id in run_ids]
        for record in records:
            if held_by_live_process(record):
                raise UserError(f"run {record.run_id} is being trained by process {record.pid} on {record.host}; "
                                "allowed: stop that process first, or wait for it to end")
        if not args.yes:
            print(f"about to remove {len(records)} run(s) from {args.store} with their metrics, weights, "
                  "checkpoint, tags, note and attached records:")
            for record in records:
                attached = len(store.records_naming(record.run_id))
                print(f"  {record.run_id}  {record.status}  {architecture(record.config)}  "
                      f"B={record.config.get('batch_size')} λ={record.config.get('momentum')} "
                      f"η={record.config.get('lr')}  ({attached} record(s))")
            if not _confirmed("remove them? [y/N] "):
                print("nothing removed")
                return 1
        for record in records:
            removed = store.delete_run(record.run_id)
            files = [name for name in ("weights", "checkpoint", "final state") if removed[name]]
            print(f"removed {record.run_id} ({removed['metrics']} metric value(s), {removed['records']} record(s)"
                  + "".join(f", {name}" for name in files) + ")")
    return 0


def _confirmed(prompt: str) -> bool:
    try:
        answer = input(prompt)
    except EOFError:  # no one to answer (stdin closed): do not remove
        print()
        return False
    return answer.strip().lower() in ("y", "yes")


def run_tag(args: argparse.Namespace) -> int:
    from batchlab.store import RunStore

    if not args.tags and args.note is None:
        raise UserError("runs tag: nothing to do; allowed: one or more TAGs and/or --note TEXT")
    with RunStore(args.store, create=False) as store:
        run_id = store.resolve_run_id(args.run_id)
        if args.remove:
            store.remove_tags(run_id, args.tags)
        elif args.tags:
            store.add_tags(run_id, args.tags)
        if args.note is not None:
            store.set_note(run_id, args.note)
        tags, note = store.tags().get(run_id, []), store.notes().get(run_id)
    print(f"run {run_id}: tags {', '.join(tags) or '-'}; note {note or '-'}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from batchlab.store import RunStore
    from batchlab.store.views import compare_figure, compare_text, use_colour

    if len(args.run_ids) < 2:
        raise UserError("runs compare needs two or more runs; allowed: batchlab runs compare ID ID …")
    with RunStore(args.store, create=False) as store:
        run_ids = [store.resolve_run_id(text) for text in args.run_ids]
        records = [store.get(run_id) for run_id in run_ids]
        epochs = [store.metrics(run_id) for run_id in run_ids]
    print(compare_text(records, epochs, colour=use_colour(sys.stdout)))
    if args.output is not None:
        print(f"curves written to {compare_figure(records, epochs, args.output)}")
    return 0


def _write_output(path: Path, text: str) -> None:
    from batchlab.store import write_text_atomically

    try:
        write_text_atomically(path, text)
    except OSError as error:
        raise UserError(f"cannot write {path} ({error.strerror}); allowed: a path in a writable folder") from None
