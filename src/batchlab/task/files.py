"""``--model-file path.py:make_model --data-file path.py:load_data``: a :class:`Task` from files.

Each file is imported by its path (``importlib.util.spec_from_file_location``), under a module
name of its own, and the named function is taken from it:

* ``make_model()`` (no arguments) returns a new ``torch.nn.Module``;
* ``load_data()`` (no arguments) returns the data in one of the forms of
  :mod:`batchlab.task.data`.

The task is named after the functions' files and names (``user:net.make_model`` …), so runs of
another file or function never share an id; the content fingerprints do the rest.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchlab.errors import ConfigError, DataError
from batchlab.task.model import one_line
from batchlab.task.options import FORM
from batchlab.task.task import Task

# Modules imported from a file get a name of their own under this prefix (the Ray executor ships
# them by value, since no worker can import them by name).
USER_MODULE_PREFIX = "batchlab_user_"


def load_function(reference: str, flag: str) -> tuple[Callable[..., Any], str]:
    """The function ``reference`` (``path.py:name``) names, and ``file-stem.name`` for the task."""
    path_text, separator, function_name = str(reference).rpartition(":")
    if not separator or not path_text or not function_name.isidentifier():
        raise ConfigError(f"{flag} {reference!r} does not name a function; allowed: {flag} {FORM}")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ConfigError(f"{flag}: file {path} does not exist; allowed: {flag} {FORM}")
    module_name = f"{USER_MODULE_PREFIX}{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{flag}: {path} cannot be imported as Python; allowed: {flag} {FORM}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so that classes defined in the file can find their source
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        sys.modules.pop(module_name, None)
        raise ConfigError(f"{flag}: importing {path} failed: {one_line(error)}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        defined = sorted(name for name, value in vars(module).items()
                         if callable(value) and getattr(value, "__module__", None) == module_name)
        raise ConfigError(f"{flag}: {path} has no function {function_name}; allowed: one of "
                          f"{', '.join(defined) or '(none defined)'}")
    return function, f"{path.stem}.{function_name}"


def task_from_files(model_file: str, data_file: str) -> Task:
    """The :class:`Task` of ``--model-file`` and ``--data-file`` (see the module docstring)."""
    make_model, model_name = load_function(model_file, "--model-file")
    load_data, data_name = load_function(data_file, "--data-file")
    try:
        data = load_data()
    except Exception as error:
        raise DataError(f"--data-file: {data_name}() failed: {one_line(error)}") from None
    return Task(make_model, data, name=model_name, data_name=data_name)

