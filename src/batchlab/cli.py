"""The ``batchlab`` command line: ``main(argv) -> exit code``, so tests call it directly.

Each subcommand lives in its own module under :mod:`batchlab.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``handler=<function(args) -> int>``.
Command modules import only argparse-level things at their top level and their implementation
inside the handler, so building the parser (``--help``, ``--version``, a usage error) never
loads torch. Commands are listed in the order a user meets them (:data:`ORDER`); a module not
named there is appended alphabetically, so a new command needs no change here.

Bad input raises :class:`batchlab.errors.UserError`; it is printed as one line and the exit code
is 2 (``--debug`` shows the traceback instead). A full disk is one such line too (the atomic
writers of :mod:`batchlab.files` raise :class:`~batchlab.errors.DiskFullError`; any other write
that meets ``ENOSPC`` is caught here). Output into a pipe that closed early (``batchlab runs |
head``) ends quietly with exit code 141, as a process killed by SIGPIPE does in a shell. Flags must
be spelled out (no prefix abbreviations); an unknown flag names the subcommand and suggests the
nearest valid one.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback
from collections.abc import Sequence

from batchlab import __version__, commands
from batchlab.commands import OneLineParser as _OneLineParser
from batchlab.commands import interrupt_clock, interrupt_line
from batchlab.errors import UserError
from batchlab.files import disk_full_error

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # the shell's code for a process ended by SIGPIPE

# The order of `batchlab --help`: the whole lecture first, then one run, many runs, what the
# store holds, the measurements, and the datasets last.
ORDER = ("lecture", "train", "sweep", "runs", "report", "timing", "toy", "hessian", "sharpness",
         "landscape", "gap", "data")


def command_modules() -> list[str]:
    """Names of the command modules: :data:`ORDER` first, then any other module alphabetically."""
    found = sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))
    return [name for name in ORDER if name in found] + [name for name in found if name not in ORDER]


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="batchlab",
        description="A lab for batch size and momentum in neural-network training.",
        epilog="Example: batchlab train --dataset mnist-5k --batch-size 64 --momentum 0.9 --epochs 3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"batchlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineParser)
    for name in command_modules():
        importlib.import_module(f"{commands.__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    started, args = interrupt_clock(), None
    try:
        parser = build_parser()
        args = parser.parse_args([word for word in argv if word != "--debug"] if debug else argv)
        if getattr(args, "handler", None) is None:
            parser.print_help()
            return EXIT_USAGE
        code = int(args.handler(args) or EXIT_OK)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except UserError as error:
        return _one_line(error, debug)
    except OSError as error:
        full = disk_full_error(error, error.filename or "a file")
        if full is None:
            raise
        return _one_line(full, debug)
    except KeyboardInterrupt:
        print(interrupt_line(getattr(args, "store", None), started), file=sys.stderr)
        return 130


def _one_line(error: UserError, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"batchlab: error: {error}", file=sys.stderr)
    return EXIT_USAGE


def _discard_stdout() -> None:
    """Point standard output at the null device, so that the interpreter's flush at exit finds no
    closed pipe to complain about (the recipe of Python's ``signal`` documentation)."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a stream without a descriptor
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
