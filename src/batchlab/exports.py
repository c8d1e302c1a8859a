"""Public names of a package imported on first use (PEP 562), written once for every package.

A package lists ``_EXPORTS`` (public name → the module that defines it) and ends with::

    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

Looking a name up imports its module then, not when the package is imported: so ``import
batchlab``, ``batchlab --help``, the dataset registry and the optimizer names load no torch. A name
once looked up is put in the package's namespace, so later look-ups do not come here again.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str],
                 namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``, whose public names are
    ``exports`` (name → defining module) and whose globals are ``namespace``."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
