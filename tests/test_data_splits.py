"""prepare_splits: sizes, seeded validation split, training-split standardization, cache, device."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from batchlab.data import DATASETS, clear_split_cache, get_spec, load_arrays, prepare_splits
from batchlab.data import cifar
from batchlab.errors import ConfigError


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_split_cache()
    yield
    clear_split_cache()


def rows(x: torch.Tensor) -> set[bytes]:
    return {row.tobytes() for row in x.reshape(len(x), -1).numpy()}


def test_sizes_and_shapes_on_mnist_5k():
    splits = prepare_splits("mnist-5k", val_fraction=0.1, split_seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (3600, 400, 1000)
    assert splits.train.x.shape == (3600, 1, 28, 28) and splits.train.x.dtype == torch.float32
    assert splits.train.y.dtype == torch.int64 and splits.train.x.device.type == "cpu"
    assert splits.input_shape == (1, 28, 28) and splits.num_classes == 10 and splits.name == "mnist-5k"


def test_val_fraction_zero_gives_no_validation_set():
    splits = prepare_splits("mnist-5k", val_fraction=0.0)
    assert splits.val is None and len(splits.train) == 4000


def test_validation_size_is_rounded_fraction():
    assert len(prepare_splits("mnist-5k", val_fraction=0.25).val) == 1000
    assert len(prepare_splits("mnist-5k", val_fraction=0.0333).val) == round(0.0333 * 4000)


@pytest.mark.slow
def test_split_is_determined_by_split_seed():
    a = prepare_splits("mnist-5k", split_seed=1)
    clear_split_cache()
    b = prepare_splits("mnist-5k", split_seed=1)
    c = prepare_splits("mnist-5k", split_seed=2)
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.train.y, b.train.y)
    assert not torch.equal(a.val.y, c.val.y)
    # The test set is kept apart: same images, only standardized with each split's statistics.
    assert torch.equal(a.test.y, c.test.y)
    torch.testing.assert_close(a.test.x * a.channel_std[0] + a.channel_mean[0], c.test.x * c.channel_std[0] + c.channel_mean[0])


def test_validation_is_carved_from_training_set_only():
    raw = load_arrays("mnist-5k")
    splits = prepare_splits("mnist-5k", val_fraction=0.2, split_seed=3)
    # Undo the standardization to compare with the raw pixels.
    mean, std = splits.channel_mean[0], splits.channel_std[0]

    def pixels(split):
        return torch.round((split.x * std + mean) * 255).to(torch.uint8)

    train_rows, val_rows = rows(pixels(splits.train)), rows(pixels(splits.val))
    assert train_rows.isdisjoint(val_rows)
    assert train_rows | val_rows == rows(torch.from_numpy(raw.train_x))
    assert rows(pixels(splits.test)) == rows(torch.from_numpy(raw.test_x))
    # Dataset order is kept inside each part (indices sorted), so shuffle="none" walks it as stored.
    order = {row: i for i, row in enumerate(r.tobytes() for r in raw.train_x.reshape(4000, -1))}
    positions = [order[r.tobytes()] for r in pixels(splits.train).reshape(len(splits.train), -1).numpy()]
    assert positions == sorted(positions)


def test_standardized_with_training_split_statistics():
    raw = load_arrays("mnist-5k")
    splits = prepare_splits("mnist-5k", val_fraction=0.1, split_seed=0)
    assert abs(splits.train.x.mean().item()) < 1e-5
    assert abs(splits.train.x.std(correction=0).item() - 1.0) < 1e-4
    # Test pixels go through the same map x -> (x/255 - mean_train) / std_train.
    mean, std = splits.channel_mean[0], splits.channel_std[0]
    expected = (torch.from_numpy(raw.test_x).float() / 255 - mean) / std
    torch.testing.assert_close(splits.test.x, expected, rtol=1e-5, atol=1e-5)
    # And the statistics are the training split's, not those of all 4,000 training images.
    assert mean != pytest.approx(float(raw.train_x.mean() / 255), abs=1e-7)


def test_per_channel_statistics_on_three_channels(tmp_path, monkeypatch):
    records = 4
    spec = dataclasses.replace(get_spec("cifar10"), n_train=5 * records, n_test=records, records_per_file=records)
    monkeypatch.setitem(DATASETS, "cifar10", spec)
    directory = tmp_path / "cifar10" / cifar.BATCHES_DIR
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in cifar.ALL_BATCHES:
        labels = rng.integers(0, 10, size=(records, 1), dtype=np.uint8)
        # Channel c has pixels in [40c, 40c + 100]: different means per channel.
        pixels = np.concatenate([rng.integers(40 * c, 40 * c + 100, size=(records, 1024), dtype=np.uint8) for c in range(3)], axis=1)
        (directory / name).write_bytes(np.concatenate([labels, pixels], axis=1).tobytes())

    splits = prepare_splits("cifar10", data_dir=tmp_path, val_fraction=0.25)

    assert len(splits.channel_mean) == 3 and splits.channel_mean[0] < splits.channel_mean[1] < splits.channel_mean[2]
    per_channel_mean = splits.train.x.mean(dim=(0, 2, 3))
    per_channel_std = splits.train.x.std(dim=(0, 2, 3), correction=0)
    torch.testing.assert_close(per_channel_mean, torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_channel_std, torch.ones(3), atol=1e-4, rtol=0)


def test_cpu_tensors_are_cached_in_process():
    a = prepare_splits("mnist-5k", val_fraction=0.1, split_seed=0)
    b = prepare_splits("mnist-5k", val_fraction=0.1, split_seed=0, device=torch.device("cpu"))
    assert a.train.x is b.train.x
    assert prepare_splits("mnist-5k", val_fraction=0.2).train.x is not a.train.x


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), "0.1", True])
def test_bad_val_fraction_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="validation fraction"):
        prepare_splits("mnist-5k", val_fraction=bad)


def test_val_fraction_that_leaves_no_training_example():
    with pytest.raises(ConfigError, match=r"leaves no training example of 4000"):
        prepare_splits("mnist-5k", val_fraction=0.99999)


@pytest.mark.gpu
def test_splits_live_on_the_gpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    cpu = prepare_splits("mnist-5k")
    gpu = prepare_splits("mnist-5k", device="cuda")
    assert gpu.train.x.device.type == "cuda" and gpu.val.y.device.type == "cuda" and gpu.test.x.device.type == "cuda"
    assert torch.equal(gpu.train.x.cpu(), cpu.train.x)
