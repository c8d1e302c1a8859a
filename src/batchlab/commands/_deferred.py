"""A run store whose new records wait until the command has succeeded.

A command that measures, then draws and writes files, must not leave a record behind when a
later step fails: :class:`RecordsAfterSuccess` reads through to the store (its own pending
records first) and writes what was put only on :meth:`commit`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchlab.store import RunStore


class RecordsAfterSuccess:
    """Wrap ``store``: ``put_record`` is held back until :meth:`commit`; everything else passes through."""

    def __init__(self, store: RunStore) -> None:
        self._store = store
        self._pending: dict[tuple[str, str], dict] = {}

    def put_record(self, kind: str, key: str, value: Mapping[str, Any]) -> None:
        self._pending[(kind, key)] = dict(value)

    def get_record(self, kind: str, key: str) -> dict | None:
        pending = self._pending.get((kind, key))
        return dict(pending) if pending is not None else self._store.get_record(kind, key)

    def commit(self) -> int:
        """Write the held records to the store; how many."""
        for (kind, key), value in self._pending.items():
            self._store.put_record(kind, key, value)
        count = len(self._pending)
        self._pending.clear()
        return count

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
