"""A stored run's network in one short line, from its config alone (no torch, no data).

``784-512-512-10`` is the lecture's MLP on MNIST: input size, hidden widths, classes. Networks
with convolutions name their input shape and conv channels first: ``1×28×28-c32-c64-128-10``.
When the dataset's shape is not known here (data given in Python), the model and its widths
are shown instead: ``mlp 512,512``.

:data:`LAYERS` is where a built-in model's conv channels and default dense widths are stated:
the builders of :mod:`batchlab.models.registry` read them from here, so this torch-free module
and the networks cannot disagree. The input shapes and classes are the dataset registry's
(:mod:`batchlab.data.registry`, torch-free too, so listing runs does not wait for torch); a test
builds every registered model on every registered dataset and checks its layers against
:func:`architecture`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from batchlab.data.registry import DATASETS

# model → (conv channels, default dense widths): the one statement of each, read by the builders.
LAYERS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "mlp": ((), (512, 512)),
    "keskar-f1": ((), (512,) * 5),
    "keskar-c1": ((64, 64), (384, 192)),
    "cnn": ((32, 64), (128,)),
}


def default_widths(model: str | None) -> tuple[int, ...] | None:
    """The dense widths ``model`` has when its config says ``hidden: null`` (None if unknown)."""
    layers = LAYERS.get(str(model))
    return layers[1] if layers else None


def conv_channels(model: str) -> tuple[int, ...]:
    """The output channels of ``model``'s convolutions, in order (empty for a dense network)."""
    return LAYERS[model][0]


def architecture(config: Mapping[str, Any]) -> str:
    """The network of a run's ``config`` (a stored config dict) in one line (module docstring)."""
    model = str(config.get("model"))
    hidden: Sequence[int] | None = config.get("hidden")
    widths = tuple(hidden) if hidden else default_widths(model)
    layers = LAYERS.get(model)
    dataset = DATASETS.get(str(config.get("dataset")))
    if layers is None or dataset is None:
        return f"{model} {','.join(str(w) for w in widths)}" if widths else model
    conv, _ = layers
    (channels, height, width), classes = dataset.input_shape, dataset.num_classes
    head = f"{channels}×{height}×{width}" if conv else str(math.prod((channels, height, width)))
    return "-".join([head, *(f"c{c}" for c in conv), *(str(w) for w in widths), str(classes)])
