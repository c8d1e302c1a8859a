"""Every registered model builds for MNIST- and CIFAR-shaped inputs and is seeded."""

import pytest
import torch

from batchlab.errors import ConfigError
from batchlab.models.registry import MODELS, build_model, count_parameters


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("shape, classes", [((1, 28, 28), 10), ((3, 32, 32), 10)])
def test_models_adapt_to_input_shape(name, shape, classes):
    model = build_model(name, shape, classes)
    model.eval()
    out = model(torch.randn(4, *shape))
    assert out.shape == (4, classes)


def test_lecture_mlp_is_784_512_512_10():
    model = build_model("mlp", (1, 28, 28), 10)
    assert count_parameters(model) == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10


def test_hidden_widths_are_settable():
    model = build_model("mlp", (1, 28, 28), 10, hidden=(32,))
    assert count_parameters(model) == 784 * 32 + 32 + 32 * 10 + 10


def test_same_seed_same_initial_weights():
    torch.manual_seed(3)
    a = build_model("cnn", (1, 28, 28), 10)
    torch.manual_seed(3)
    b = build_model("cnn", (1, 28, 28), 10)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_unknown_model_lists_known():
    with pytest.raises(ConfigError, match="known: mlp, keskar-f1, keskar-c1, cnn"):
        build_model("resnet", (1, 28, 28), 10)
