"""The ``batchlab`` command line: ``main(argv) -> exit code``, so tests call it directly.

Each subcommand lives in its own module under :mod:`batchlab.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``handler=<function(args) -> int>``.
Bad input raises :class:`batchlab.errors.UserError`; it is printed as one line and the exit code
is 2 (``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from collections.abc import Sequence

from batchlab import commands
from batchlab.errors import UserError

EXIT_OK = 0
EXIT_USAGE = 2


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``batchlab: error: ...``) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog.split()[-1] if ' ' in self.prog else 'batchlab'}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="batchlab",
        description="A lab for batch size and momentum in neural-network training.",
        epilog="Example: batchlab train --dataset mnist-5k --batch-size 64 --momentum 0.9 --epochs 3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineParser)
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{module_info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "handler", None) is None:
            parser.print_help()
            return EXIT_USAGE
        return int(args.handler(args) or EXIT_OK)
    except UserError as error:
        if debug:
            traceback.print_exc()
        print(f"batchlab: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("batchlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
