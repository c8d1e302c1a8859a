"""``--model-file`` and ``--data-file``: the flags and their pairing.

Only argparse here, so that building the parser (``batchlab --help``) does not load torch; the
files are imported when the command runs (:mod:`batchlab.task.files`). The rule a command
applies to these flags together with its others is
:func:`batchlab.commands._options.user_task_files`.
"""

from __future__ import annotations

import argparse

from batchlab.errors import ConfigError
from batchlab.task.reference import FORM


def add_task_options(parser: argparse.ArgumentParser) -> None:
    """``--model-file`` and ``--data-file``."""
    parser.add_argument("--model-file", default=None, metavar=FORM,
                        help="train your own model: a function of no arguments returning a new torch.nn.Module "
                             "(needs --data-file)")
    parser.add_argument("--data-file", default=None, metavar=FORM,
                        help="your own data: a function of no arguments returning (x_train, y_train, x_val, y_val"
                             "[, x_test, y_test]) tensors or (train, val[, test]) Datasets (needs --model-file)")


def task_files_from_args(args: argparse.Namespace) -> tuple[str, str] | None:
    """``(--model-file, --data-file)``, or None when neither is given; one without the other is
    a one-line :class:`ConfigError`. Nothing is imported (processes that import the files
    themselves get these references)."""
    model_file, data_file = getattr(args, "model_file", None), getattr(args, "data_file", None)
    if model_file is None and data_file is None:
        return None
    if model_file is None or data_file is None:
        given, missing = ("--model-file", "--data-file") if data_file is None else ("--data-file", "--model-file")
        raise ConfigError(f"{given} needs {missing}: a model and its data go together; allowed: both, or "
                          "neither for a registry model and dataset")
    return model_file, data_file
