"""The architecture column is computed without torch; it must match the networks models/registry.py builds."""

import pytest
from torch import nn

from batchlab.models.architecture import DATASET_SHAPES, LAYERS, architecture
from batchlab.data.registry import DATASETS
from batchlab.models.registry import MODELS, build_model


def built_layers(model: nn.Module, input_shape) -> str:
    convs = [f"c{m.out_channels}" for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    channels, height, width = input_shape
    head = f"{channels}×{height}×{width}" if convs else str(linears[0].in_features)
    return "-".join([head, *convs, *(str(m.out_features) for m in linears)])


def test_the_mirrors_hold_every_registered_model_and_dataset():
    assert set(LAYERS) == set(MODELS)
    assert {name: spec.default_hidden for name, spec in MODELS.items()} == {name: w for name, (_, w) in LAYERS.items()}
    assert DATASET_SHAPES == {name: (spec.input_shape, spec.num_classes) for name, spec in DATASETS.items()}


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("dataset", ["mnist-5k", "cifar10"])
@pytest.mark.parametrize("hidden", [None, (24, 12)])
def test_architecture_matches_the_built_network(model, dataset, hidden):
    shape, classes = DATASET_SHAPES[dataset]
    network = build_model(model, shape, classes, hidden)
    config = {"model": model, "dataset": dataset, "hidden": list(hidden) if hidden else None}
    assert architecture(config) == built_layers(network, shape)


def test_unknown_data_shows_the_model_and_its_widths():
    assert architecture({"model": "mlp", "dataset": "my-data", "hidden": None}) == "mlp 512,512"
    assert architecture({"model": "mlp", "dataset": "mnist", "hidden": [64]}) == "784-64-10"
