"""``torchrun … -m batchlab.distributed <train flags>``: one process of a data-parallel run.

Takes the flags of ``batchlab train`` except ``--nproc`` and ``--max-restarts``, which are
torchrun's here (``--nproc-per-node``, ``--max-restarts``), parsed by that command's own parser
and parser class (:class:`batchlab.commands.OneLineParser`), so both read alike. This entry
depends on the command layer, never the reverse: nothing imports it.
Process 0 prints what ``batchlab train`` prints; bad input is one line from
process 0 and exit code 2 from every process.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from batchlab.commands import OneLineParser
from batchlab.commands import train as train_command
from batchlab.distributed.trainer import train_on_rank
from batchlab.errors import UserError
from batchlab.files import strict_json_text
from batchlab.task.options import user_task_files

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = train_parser().parse_args(["train", *argv])
        for flag, value in (("--nproc", args.nproc), ("--max-restarts", args.max_restarts)):
            if value is not None:
                raise UserError(f"{flag} is a flag of `batchlab train`; under torchrun allowed: "
                                "torchrun's --nproc-per-node and --max-restarts before -m batchlab.distributed")
        # A user's model: every process imports --model-file/--data-file itself.
        result = train_on_rank(train_command.config_from_args(args), store=args.store, force=args.force,
                               progress=args.progress, keep_weights=not args.no_weights, sync_bn=args.sync_bn,
                               task=user_task_files(args))
    except UserError as error:
        if os.environ.get("RANK", "0") == "0":
            print(f"batchlab: error: {error}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    if result is not None:
        if args.format == "json":
            print(strict_json_text(result.to_dict()))  # strict JSON, as batchlab train prints it
        else:
            print(train_command.format_result(result, args.store))
    return 0


def train_parser() -> argparse.ArgumentParser:
    """The parser of ``batchlab train`` alone (the other commands' modules are not imported)."""
    parser = OneLineParser(prog="python -m batchlab.distributed")
    train_command.register(parser.add_subparsers(parser_class=OneLineParser))
    return parser


def exit_now(code: int) -> None:
    """Leave the process with ``code`` once the output is flushed, skipping the interpreter's
    teardown. By then the run is stored and the process group destroyed; what is left is the C++
    static teardown of the communication library's threads, which under load has aborted a
    process that had finished ("terminate called without an active exception", SIGABRT) and so
    failed a torchrun job whose run had been stored."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
