"""Result files: strict JSON written atomically.

JSON has no NaN or infinity; a diverged run's loss is a real result, so non-finite numbers are
written as ``null`` (and the run's status says why) rather than as the non-standard ``NaN`` that
other JSON readers reject.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from batchlab.store import write_text_atomically


def strict_json_value(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, tuples as lists, paths as text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): strict_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json_value(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented strict JSON to ``path`` (temp file in the same folder, then rename;
    world-readable as the umask allows, like the store's files)."""
    path = Path(path)
    write_text_atomically(path, json.dumps(strict_json_value(data), indent=2, allow_nan=False) + "\n")
    return path
