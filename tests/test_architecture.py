"""The architecture column is computed without torch; it must match the networks models/registry.py builds."""

import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

import batchlab

from batchlab.models.architecture import LAYERS, architecture
from batchlab.data.registry import DATASETS
from batchlab.models.registry import MODELS, build_model


def built_layers(model: nn.Module, input_shape) -> str:
    convs = [f"c{m.out_channels}" for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    channels, height, width = input_shape
    head = f"{channels}×{height}×{width}" if convs else str(linears[0].in_features)
    return "-".join([head, *convs, *(str(m.out_features) for m in linears)])


def test_the_layers_hold_every_registered_model():
    assert set(LAYERS) == set(MODELS)
    assert {name: spec.default_hidden for name, spec in MODELS.items()} == {name: w for name, (_, w) in LAYERS.items()}


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize("hidden", [None, (24, 12)])
def test_architecture_matches_the_built_network(model, dataset, hidden):
    shape, classes = DATASETS[dataset].input_shape, DATASETS[dataset].num_classes
    network = build_model(model, shape, classes, hidden)
    config = {"model": model, "dataset": dataset, "hidden": list(hidden) if hidden else None}
    assert architecture(config) == built_layers(network, shape)


def test_unknown_data_shows_the_model_and_its_widths():
    assert architecture({"model": "mlp", "dataset": "my-data", "hidden": None}) == "mlp 512,512"
    assert architecture({"model": "mlp", "dataset": "mnist", "hidden": [64]}) == "784-64-10"


def test_describing_a_stored_run_loads_no_torch():
    """In a fresh interpreter: the architecture column reads the dataset registry without torch."""
    code = ("import sys\nfrom batchlab.models.architecture import architecture\n"
            "print(architecture({'model': 'mlp', 'dataset': 'cifar10', 'hidden': None}), 'torch' in sys.modules)")
    source = str(Path(batchlab.__file__).parents[1])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": source, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3072-512-512-10", "False"]
