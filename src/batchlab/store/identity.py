"""What a stored run trained, beyond what its configuration says: short fingerprints of a user's
model and of data that the configuration does not name.

A registry run is named by its configuration (``dataset``, ``model``, ``hidden``, …). A run of a
user's model (``model = "user:<name>"``) keeps the model's fingerprint in its environment under
``user_model`` (architecture, code, parameter count, loss and metric: :mod:`batchlab.task.model`),
and a run on data that no registry name says (a user's data, or splits built in Python) keeps the
data's under ``data`` (its ``sha256`` over shapes and bytes: :mod:`batchlab.task.data`,
:mod:`batchlab.data.identity`). Two runs with the same names but other fingerprints trained
something else, so tables show the fingerprints and analyses never average such runs as seeds of
one setting.

A run of a user's model given as files also keeps where they were, under ``origin``:
``{"model_file": "/abs/net.py:make_model", "data_file": "/abs/data.py:load_data"}``
(:attr:`batchlab.Task.origin`), so that later measurements can build the model and data again
and check them against the fingerprints (:mod:`batchlab.training.restore`).

The metric a run recorded is accuracy (summary keys ``train_acc``, ``val_acc``, ``test_acc``)
unless the user's model named another (``loss = "mse"`` reports ``train_mse`` …): its key is the
metric's name in the model entry (:func:`metric_key`).

A short fingerprint is the first :data:`SHORT` hex digits: of the data's ``sha256``, and of the
SHA-256 of the model entry as canonical JSON (sorted keys).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

SHORT = 8
MODEL_KEY, DATA_KEY, ORIGIN_KEY = "user_model", "data", "origin"
# The metric key of a registry run (and of a user's model that reports accuracy).
ACCURACY_KEY = "acc"


def model_digest(entry: Mapping[str, Any] | None) -> str | None:
    """The short fingerprint of a user's model entry (``environment["user_model"]``, or
    ``Task.model_fingerprint``), or None without one."""
    if not entry:
        return None
    return hashlib.sha256(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()[:SHORT]


def data_digest(entry: Mapping[str, Any] | None) -> str | None:
    """The short fingerprint of a data entry (``environment["data"]``, or
    ``Task.data_fingerprint``), or None without one."""
    digest = (entry or {}).get("sha256")
    return str(digest)[:SHORT] if digest else None


def fingerprints(environment: Mapping[str, Any] | None) -> dict[str, str]:
    """``{"model_fingerprint": …, "data_fingerprint": …}`` of a run's environment, each only when
    the run has it (a registry run has neither)."""
    environment = environment or {}
    found = {"model_fingerprint": model_digest(environment.get(MODEL_KEY)),
             "data_fingerprint": data_digest(environment.get(DATA_KEY))}
    return {key: value for key, value in found.items() if value is not None}


def with_digest(name: Any, digest: str | None) -> str:
    """``name`` followed by its short fingerprint when it has one: ``user:blobs.load_data·3f2a9c1e``."""
    return f"{name}·{digest}" if digest else str(name)


def metric_key(environment: Mapping[str, Any] | None) -> str:
    """The key of the metric a run recorded (``train_<key>``, ``val_<key>``, ``test_<key>`` in its
    summary and per-epoch metrics): the metric's name in a user's model entry, else
    :data:`ACCURACY_KEY`."""
    entry = (environment or {}).get(MODEL_KEY) or {}
    metric = entry.get("metric") if isinstance(entry, Mapping) else None
    name = metric.get("name") if isinstance(metric, Mapping) else None
    return str(name) if name else ACCURACY_KEY
