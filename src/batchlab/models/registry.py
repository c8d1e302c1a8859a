"""Model registry: the lecture's MLP, Keskar et al.'s F1-like and C1 networks, and a small CNN.

Every builder takes the dataset's input shape ``(C, H, W)``, the number of classes and the
dense widths, so a model adapts to MNIST-like (1×28×28) and CIFAR-like (3×32×32) data alike. The
conv channels and default dense widths are stated once, in :data:`batchlab.models.architecture.LAYERS`
(torch-free, so listing runs can describe a network without building it); :func:`build_model`
fills in the default widths from there. Weights are created by
PyTorch's default initializers from the global RNG; the training loop seeds it just before
building, on the CPU, so a seed gives the same initial weights on every device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from batchlab.errors import ConfigError
from batchlab.models.architecture import conv_channels, default_widths

InputShape = tuple[int, int, int]


@dataclass(frozen=True)
class ModelSpec:
    """One registered architecture: its name, what it is and its builder (which takes the input
    shape, the number of classes and the dense widths)."""

    name: str
    description: str
    builder: Callable[[InputShape, int, tuple[int, ...]], nn.Module]
    # Batch-norm running statistics and dropout make a forward pass depend on more than the
    # weights and the batch; packed (vmapped) training cannot reproduce them exactly.
    has_batch_norm: bool = False
    has_dropout: bool = False

    @property
    def default_hidden(self) -> tuple[int, ...]:
        """The dense widths of ``hidden: null`` (:data:`batchlab.models.architecture.LAYERS`)."""
        return default_widths(self.name)  # type: ignore[return-value]


def _mlp(input_shape: InputShape, num_classes: int, widths: tuple[int, ...]) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(input_shape)
    for width in widths:
        layers += [nn.Linear(fan_in, width), nn.ReLU()]
        fan_in = width
    layers.append(nn.Linear(fan_in, num_classes))
    return nn.Sequential(*layers)


def _keskar_f1(input_shape: InputShape, num_classes: int, widths: tuple[int, ...]) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(input_shape)
    for width in widths:
        layers += [nn.Linear(fan_in, width), nn.BatchNorm1d(width), nn.ReLU()]
        fan_in = width
    layers.append(nn.Linear(fan_in, num_classes))
    return nn.Sequential(*layers)


def _keskar_c1(input_shape: InputShape, num_classes: int, dense: tuple[int, ...]) -> nn.Module:
    channels, height, width = input_shape
    if len(dense) != 2:
        raise ConfigError(f"keskar-c1 takes exactly two dense widths, got {dense!r}; allowed: e.g. --hidden 384 192")

    def block(in_channels: int, out_channels: int) -> list[nn.Module]:
        return [
            nn.Conv2d(in_channels, out_channels, kernel_size=5, padding=2),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        ]

    first, second = conv_channels("keskar-c1")
    features = nn.Sequential(*block(channels, first), *block(first, second))
    with torch.no_grad():
        flat = features(torch.zeros(1, channels, height, width)).numel()
    return nn.Sequential(
        features,
        nn.Flatten(),
        nn.Linear(flat, dense[0]),
        nn.BatchNorm1d(dense[0]),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(dense[0], dense[1]),
        nn.BatchNorm1d(dense[1]),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(dense[1], num_classes),
    )


def _small_cnn(input_shape: InputShape, num_classes: int, dense: tuple[int, ...]) -> nn.Module:
    channels, height, width = input_shape
    first, second = conv_channels("cnn")
    features = nn.Sequential(
        nn.Conv2d(channels, first, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(first, second, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )
    with torch.no_grad():
        fan_in = features(torch.zeros(1, channels, height, width)).numel()
    layers: list[nn.Module] = [features, nn.Flatten()]
    for width_ in dense:
        layers += [nn.Linear(fan_in, width_), nn.ReLU()]
        fan_in = width_
    layers.append(nn.Linear(fan_in, num_classes))
    return nn.Sequential(*layers)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "mlp",
            "The lecture's MNIST network: flatten → [Linear → ReLU] per hidden width → Linear "
            "(default 784-512-512-10).",
            _mlp,
        ),
        ModelSpec(
            "keskar-f1",
            "Fully connected network in the spirit of Keskar et al.'s F1: flatten → 5 × "
            "[Linear 512 → BatchNorm → ReLU] → Linear (784-512×5-10 on MNIST).",
            _keskar_f1,
            has_batch_norm=True,
        ),
        ModelSpec(
            "keskar-c1",
            "Keskar et al.'s C1 shallownet: 2 × [conv 64@5×5 → BN → ReLU → maxpool 3/2] → "
            "dense 384 → BN → ReLU → dropout 0.5 → dense 192 → BN → ReLU → dropout 0.5 → Linear.",
            _keskar_c1,
            has_batch_norm=True,
            has_dropout=True,
        ),
        ModelSpec(
            "cnn",
            "Small conv net: conv 32@3×3 → ReLU → maxpool 2 → conv 64@3×3 → ReLU → maxpool 2 → "
            "dense 128 → ReLU → Linear.",
            _small_cnn,
        ),
    )
}


def get_model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None


def build_model(
    name: str, input_shape: InputShape, num_classes: int, hidden: tuple[int, ...] | None = None
) -> nn.Module:
    """Build the registered model ``name`` for inputs of ``input_shape`` and ``num_classes``, with
    dense widths ``hidden`` (None or empty: the model's default widths)."""
    spec = get_model_spec(name)
    return spec.builder(tuple(input_shape), num_classes, tuple(hidden) if hidden else spec.default_hidden)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
