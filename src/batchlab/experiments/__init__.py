"""The experiments built from many runs: the lecture, Keskar's generalization gap, the
large-batch methods and the advisor.

Each has the shape of :mod:`batchlab.experiments.shape` and registers itself (its record kind,
scales, figures and report sections) in its package's ``__init__``; :func:`experiments` lists
them all, which is how the report finds their sections without naming any of them.
"""

from __future__ import annotations

import importlib

from batchlab.experiments.shape import Experiment, registered_experiments

# The experiment packages, in the lecture's order; each registers itself when imported.
PACKAGES = ("lecture", "gap", "sharpening", "largebatch", "advise")


def experiments() -> list[Experiment]:
    """Every experiment, each imported (and so registered) on the first call: those of
    :data:`PACKAGES` in its order (each registers under its package's name), then any other
    registered elsewhere, in the order they registered."""
    for name in PACKAGES:
        importlib.import_module(f"{__name__}.{name}")
    rank = {name: index for index, name in enumerate(PACKAGES)}
    return sorted(registered_experiments(), key=lambda e: rank.get(e.kind, len(PACKAGES)))


__all__ = ["PACKAGES", "experiments"]
