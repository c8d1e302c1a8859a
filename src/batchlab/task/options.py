"""``--model-file`` and ``--data-file``: the flags and their pairing.

Only argparse here, so that building the parser (``batchlab --help``) does not load torch; the
files are imported when the command runs (:mod:`batchlab.task.files`). The one rule every
command applies to these flags together with its others is :func:`user_task_files`: a registry
option (:data:`REGISTRY_OPTIONS`) beside the files is refused.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from batchlab.errors import ConfigError
from batchlab.task.reference import FORM

if TYPE_CHECKING:
    from batchlab.task import Task


def add_task_options(parser: argparse.ArgumentParser, *, measured: bool = False) -> None:
    """``--model-file`` and ``--data-file``; ``measured``: for a command that measures stored
    runs, where the files only say where a run's files are now."""
    if measured:
        parser.add_argument("--model-file", default=None, metavar=FORM,
                            help="for a run of your own model: its model file, where it is now (default: the file "
                                 "the run trained from; it must give the same model, loss and metric; needs --data-file)")
        parser.add_argument("--data-file", default=None, metavar=FORM,
                            help="for a run of your own model: its data file, where it is now (default: the file "
                                 "the run trained from; it must give the same data; needs --model-file)")
        return
    parser.add_argument("--model-file", default=None, metavar=FORM,
                        help="train your own model: a function of no arguments returning a new torch.nn.Module; "
                             "the file may set loss and metric (a function or a name: mse, mae, accuracy) "
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


# The options that choose the registry's model or data; a user's --model-file/--data-file
# replaces both, so none of them may come with those files.
REGISTRY_OPTIONS = ("--model", "--dataset", "--hidden", "--train-subset", "--val-fraction", "--split-seed",
                    "--data-dir")


def registry_options_given(args: argparse.Namespace) -> list[str]:
    """The :data:`REGISTRY_OPTIONS` given on the command line, each as ``--flag value``.

    A command registers these options with ``default=None`` (the registry's default is filled in
    when the configuration is built), so a value that is not None was given; ``sweep`` keeps its
    fixed fields under ``fixed_<name>``, which is looked up first."""
    given = []
    for flag in REGISTRY_OPTIONS:
        name = flag.removeprefix("--").replace("-", "_")
        value = getattr(args, f"fixed_{name}", None)
        if value is None:
            value = getattr(args, name, None)
        if value is not None:
            shown = " ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
            given.append(f"{flag} {shown}")
    return given


def user_task_files(args: argparse.Namespace, also_given: Sequence[str] = ()) -> tuple[str, str] | None:
    """``(--model-file, --data-file)`` of a command, or None when neither is given: the one rule
    every command that takes these flags applies. One without the other, or either with a
    registry option (:data:`REGISTRY_OPTIONS`, or what ``also_given`` names: the registry fields
    of a sweep file, say), is a one-line :class:`ConfigError` that names only what was given.
    Nothing is imported."""
    files = task_files_from_args(args)
    if files is not None:
        check_no_registry_options([*registry_options_given(args), *also_given])
    return files


def registry_fields(names: Iterable[str]) -> list[str]:
    """Those of ``names`` (RunConfig fields) that a registry option sets, in order."""
    registry = {flag.removeprefix("--").replace("-", "_") for flag in REGISTRY_OPTIONS}
    return [name for name in names if name in registry]


def user_task(args: argparse.Namespace, also_given: Sequence[str] = ()) -> "Task | None":
    """The task of ``--model-file``/``--data-file`` (:func:`user_task_files`, then the files
    imported), or None when neither is given."""
    files = user_task_files(args, also_given)
    if files is None:
        return None
    from batchlab.task.files import task_from_files

    return task_from_files(*files)


def check_no_registry_options(given: list[str]) -> None:
    """Refuse ``given`` registry options (``--flag value`` texts) beside a user's files."""
    if given:
        them = "it" if len(given) == 1 else "them"
        raise ConfigError(f"{', '.join(given)} {'chooses' if len(given) == 1 else 'choose'} the registry's model "
                          f"or data, which --model-file and --data-file replace; allowed: the files without "
                          f"{them}, or {them} without the files")
