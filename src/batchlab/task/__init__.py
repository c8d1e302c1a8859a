"""A user's own model and data: :class:`Task` (Python) and :func:`task_from_files` (the CLI's
``--model-file``/``--data-file``).

Modules: :mod:`~batchlab.task.task` (the rules), :mod:`~batchlab.task.reference` (the ``PATH.py:FUNCTION`` form), :mod:`~batchlab.task.data` (data forms, checks,
fingerprint, on the device or streamed), :mod:`~batchlab.task.model` (building, fingerprint,
whether it can be packed), :mod:`~batchlab.task.files` (importing a function from a file),
:mod:`~batchlab.task.options` (the command-line flags). Names are imported on first use, so the
command line's parser does not load torch.
"""

from __future__ import annotations

from batchlab.exports import lazy_exports

_EXPORTS = {"Task": "batchlab.task.task", "task_from_files": "batchlab.task.files"}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
