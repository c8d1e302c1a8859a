"""One module per ``batchlab`` subcommand; each exposes ``register(subparsers)``.

Handlers receive the parsed ``argparse.Namespace`` and return an exit code. Shared option
helpers live in :mod:`batchlab.commands._options`.
"""
