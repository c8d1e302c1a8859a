"""``--model-file path.py:make_model --data-file path.py:load_data``: a :class:`Task` from files.

Each file is imported by its path (``importlib.util.spec_from_file_location``), under a module
name of its own, and the named function is taken from it:

* ``make_model()`` (no arguments) returns a new ``torch.nn.Module``;
* ``load_data()`` (no arguments) returns the data in one of the forms of
  :mod:`batchlab.task.data`;
* the model file may also define, at module level, ``loss`` and ``metric``: a function
  ``loss(outputs, targets)`` returning the batch mean as a scalar tensor, ``metric(outputs,
  targets)`` returning a batch mean, or a name (loss ``"cross_entropy"`` or ``"mse"``; metric
  ``"accuracy"``, ``"mse"`` or ``"mae"``: :mod:`batchlab.training.objective`). Without them the
  model trains with cross-entropy and reports accuracy; ``loss = "mse"`` alone reports the mean
  squared error (``val_mse``). They go to :class:`Task` as its ``loss=`` and ``metric=``.

A file imports its neighbours as ``python path.py`` would let it: while the files load, and while
the task is built from them (the data read, the model built and run on a first batch), each
file's folder is first on ``sys.path``, so ``from helpers import make_layers`` finds
``helpers.py`` beside the file, and so does an import inside ``make_model`` (it runs then, and
Python keeps the module it imported). ``sys.path`` is as before afterwards. A module that is
still not found is a one-line error naming the file and the module. Processes that build the
task themselves (the ranks of ``--nproc``) do the same; Ray workers get the neighbour modules
shipped with the task (:func:`neighbour_modules`, :mod:`batchlab.sweep.ray_executor`).

The task is named after the functions' files and names (``user:net.make_model`` …), so runs of
another file or function never share an id; the content fingerprints do the rest. It remembers
the files by absolute path (:attr:`Task.origin`), and every run keeps that, so a stored run can
be measured later from the same files (:mod:`batchlab.training.restore`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from batchlab.errors import ConfigError, DataError
from batchlab.task.model import one_line
from batchlab.task.reference import FORM, split_reference
from batchlab.task.task import Task
from batchlab.training.objective import LOSSES, METRICS

# Modules imported from a file get a name of their own under this prefix (the Ray executor ships
# them by value, since no worker can import them by name).
USER_MODULE_PREFIX = "batchlab_user_"


@contextmanager
def folders_first_on_path(folders: Iterable[Path]) -> Iterator[None]:
    """``folders`` at the front of ``sys.path`` for the block (as ``python file.py`` puts the
    file's folder), each entry added taken out again afterwards."""
    added = [str(Path(folder).resolve()) for folder in dict.fromkeys(folders)]
    sys.path[:0] = added
    try:
        yield
    finally:
        for entry in added:
            if entry in sys.path:
                sys.path.remove(entry)  # the first occurrence: the one put in front above


def file_objective(module: ModuleType, path: Path) -> dict[str, Any]:
    """``{"loss": …, "metric": …}``: those of the two the model file defines at module level (see
    the module docstring), each a function or a known name, else a one-line error naming the file."""
    found = {}
    for name, known in (("loss", LOSSES), ("metric", METRICS)):
        if not hasattr(module, name):
            continue
        value = getattr(module, name)
        if not callable(value) and not (isinstance(value, str) and value in known):
            raise ConfigError(f"--model-file: {path} sets {name} = {value!r:.40}; allowed: {', '.join(known)} or "
                              f"a function {name}(outputs, targets)")
        found[name] = value
    return found


def load_function(reference: str, flag: str) -> tuple[Callable[..., Any], str, ModuleType]:
    """The function ``reference`` (``path.py:name``) names, ``file-stem.name`` for the task, and
    the imported file. The file's folder is on ``sys.path`` while it is imported (see the module
    docstring)."""
    path, function_name = split_reference(reference, flag)
    module_name = f"{USER_MODULE_PREFIX}{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{flag}: {path} cannot be imported as Python; allowed: {flag} {FORM}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so that classes defined in the file can find their source
    try:
        with folders_first_on_path([path.parent]):
            spec.loader.exec_module(module)
    except ModuleNotFoundError as error:
        sys.modules.pop(module_name, None)
        raise ConfigError(f"{flag}: importing {path} failed: no module named {error.name!r}, neither beside the "
                          f"file (in {path.resolve().parent}) nor installed; allowed: a module in the file's "
                          "folder or an installed package") from None
    except Exception as error:
        sys.modules.pop(module_name, None)
        raise ConfigError(f"{flag}: importing {path} failed: {one_line(error)}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        defined = sorted(name for name, value in vars(module).items()
                         if callable(value) and getattr(value, "__module__", None) == module_name)
        raise ConfigError(f"{flag}: {path} has no function {function_name}; allowed: one of "
                          f"{', '.join(defined) or '(none defined)'}")
    return function, f"{path.stem}.{function_name}", module


def task_from_files(model_file: str, data_file: str) -> Task:
    """The :class:`Task` of ``--model-file`` and ``--data-file`` (see the module docstring), with
    its :attr:`~Task.origin`."""
    model_path, model_function = split_reference(model_file, "--model-file")
    data_path, data_function = split_reference(data_file, "--data-file")
    make_model, model_name, model_module = load_function(model_file, "--model-file")
    load_data, data_name, _ = load_function(data_file, "--data-file")
    objective = file_objective(model_module, model_path)
    with folders_first_on_path([model_path.parent, data_path.parent]):
        try:
            data = load_data()
        except Exception as error:
            raise DataError(f"--data-file: {data_name}() failed: {one_line(error)}") from None
        task = Task(make_model, data, name=model_name, data_name=data_name, **objective)
    task.origin = {"model_file": f"{model_path.resolve()}:{model_function}",
                   "data_file": f"{data_path.resolve()}:{data_function}"}
    return task


def user_file_folders() -> list[Path]:
    """The folders of the model and data files imported in this process (:func:`load_function`)."""
    folders = [Path(module.__file__).resolve().parent for name, module in list(sys.modules.items())
               if name.startswith(USER_MODULE_PREFIX) and getattr(module, "__file__", None)]
    return list(dict.fromkeys(folders))


def neighbour_modules(folders: Iterable[Path]) -> dict[str, Path]:
    """The modules this process imported from ``folders`` by their plain names — the neighbours
    a model or data file imported — as ``{path relative to its folder: file}``.

    A module counts when its file lies where its name puts it under one of the folders
    (``helpers`` → ``helpers.py``, ``utils.layers`` → ``utils/layers.py`` or
    ``utils/layers/__init__.py``), so packages installed somewhere below a folder (a virtual
    environment in the project folder, say) never count: they were found through another
    ``sys.path`` entry."""
    found: dict[str, Path] = {}
    roots = [Path(folder).resolve() for folder in folders]
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if name.startswith(USER_MODULE_PREFIX) or not file or not file.endswith(".py"):
            continue
        file_path = Path(file).resolve()
        expected = Path(*name.split("."))
        for root in roots:
            try:
                relative = file_path.relative_to(root)
            except ValueError:
                continue
            if relative in (expected.with_suffix(".py"), expected / "__init__.py"):
                found[relative.as_posix()] = file_path
                break
    return found
