"""One module per ``batchlab`` subcommand; each exposes ``register(subparsers)``.

Handlers receive the parsed ``argparse.Namespace`` and return an exit code. Shared option
helpers live in :mod:`batchlab.commands._options`; :class:`OneLineParser` is the parser class of
``batchlab`` (:mod:`batchlab.cli`) and of the ``torchrun -m batchlab.distributed`` entry alike;
:func:`interrupt_line` is the line :mod:`batchlab.cli` prints when Ctrl-C stops a command
started at :func:`interrupt_clock` (:mod:`batchlab.commands._interrupt`).
"""

from __future__ import annotations

import argparse
import difflib
import re

from batchlab.commands._interrupt import interrupt_line
from batchlab.commands._interrupt import now as interrupt_clock
from batchlab.errors import UserError


class OneLineParser(argparse.ArgumentParser):
    """argparse without prefix abbreviations, whose usage error is one line naming the
    subcommand (``sweep: unrecognized argument --momenta; did you mean --momentum?``)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def command_name(self) -> str:
        """``sweep`` for ``batchlab sweep``, ``data fetch`` for ``batchlab data fetch``, '' at the top."""
        return self.prog.partition(" ")[2]

    def error(self, message: str) -> None:  # type: ignore[override]
        choice = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if choice:  # argparse lists the choices; say which one was probably meant
            allowed = re.findall(r"'([^']*)'", choice.group(3))
            near = difflib.get_close_matches(choice.group(2), allowed, n=1, cutoff=0.6)
            message = (f"argument {choice.group(1)}: invalid choice {choice.group(2)!r}"
                       + (f"; did you mean {near[0]}?" if near else "") + f" (allowed: {', '.join(allowed)})")
        name = self.command_name()
        raise UserError(f"{name}: {message}" if name else message)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            # Raised here, where the subcommand's options are known, not by the top parser.
            self.error(self.unrecognized(extras))
        return namespace, extras

    def unrecognized(self, extras: list[str]) -> str:
        flags = [word for word in extras if word.startswith("-") and len(word) > 1]
        if not flags:
            return f"unrecognized argument{'s' if len(extras) > 1 else ''} {' '.join(extras)}"
        word = flags[0].partition("=")[0]
        known = sorted({s for action in self._actions for s in action.option_strings if s.startswith("--")})
        matches = [s for s in known if s.startswith(word)] or difflib.get_close_matches(word, known, n=2, cutoff=0.6)
        hint = f"; did you mean {' or '.join(matches)}?" if matches else f"; see `{self.prog} --help`"
        return f"unrecognized argument {word}{hint}"
