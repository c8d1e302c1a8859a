"""A user's own model and data: :class:`Task` (Python) and :func:`task_from_files` (the CLI's
``--model-file``/``--data-file``).

Modules: :mod:`~batchlab.task.task` (the rules), :mod:`~batchlab.task.data` (data forms, checks,
fingerprint, on the device or streamed), :mod:`~batchlab.task.model` (building, fingerprint,
whether it can be packed), :mod:`~batchlab.task.files` (importing a function from a file).
"""

from batchlab.task.files import task_from_files
from batchlab.task.task import Task

__all__ = ["Task", "task_from_files"]
