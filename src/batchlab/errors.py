"""Errors that reach the user as one line and exit code 2.

Every problem with what the user asked for (an unknown name, a value out of range, a corrupt
file, a store that is not batchlab's) is raised as a :class:`UserError` whose message names the
problem and what is allowed. The CLI prints ``batchlab: error: <message>`` and exits with 2;
``--debug`` shows the traceback instead. Programming errors stay ordinary exceptions.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: the message is one line naming the problem and what is allowed."""


class ConfigError(UserError, ValueError):
    """A run or sweep configuration holds a value outside what is allowed."""


class DataError(UserError):
    """A dataset is missing, unknown, truncated or corrupt."""


class ChecksumError(DataError):
    """A downloaded or stored file does not match its published SHA-256."""


class StoreError(UserError):
    """The run store is unreadable, not a batchlab database, or lacks what was asked for."""


class DiskFullError(UserError):
    """A file could not be written because its disk (or the user's quota) is full; nothing that
    was stored before is lost (see :func:`batchlab.files.atomic_write`)."""
