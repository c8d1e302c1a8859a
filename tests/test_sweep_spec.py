"""Sweep grids: expansion count and order, TOML files, command-line flags, upfront validation."""

from __future__ import annotations

import pytest

from batchlab.commands import sweep as sweep_command
from batchlab.cli import build_parser, main
from batchlab.config import RunConfig
from batchlab.errors import ConfigError, DataError
from batchlab.sweep import SweepSpec
from batchlab.sweep.spec import training_set_size


def test_grid_expands_to_the_product_with_the_last_axis_fastest():
    spec = SweepSpec(
        grid={"seed": [0, 1, 2], "batch_size": [16, "full"], "momentum": [0.0, 0.9], "lr": [0.1, 0.01]},
        fixed={"epochs": 3, "hidden": [16]},
    )
    configs = spec.configs()
    assert len(spec) == len(configs) == 2 * 2 * 2 * 3
    # Axes vary in RunConfig field order (batch_size, lr, momentum, …, seed), not in the order given.
    assert list(spec.grid_axes) == ["batch_size", "lr", "momentum", "seed"]
    assert [(c.batch_size, c.lr, c.momentum, c.seed) for c in configs[:7]] == [
        (16, 0.1, 0.0, 0), (16, 0.1, 0.0, 1), (16, 0.1, 0.0, 2),
        (16, 0.1, 0.9, 0), (16, 0.1, 0.9, 1), (16, 0.1, 0.9, 2),
        (16, 0.01, 0.0, 0),
    ]
    assert configs[-1] == RunConfig(batch_size="full", lr=0.01, momentum=0.9, seed=2, epochs=3, hidden=(16,))
    assert all(c.epochs == 3 and c.hidden == (16,) for c in configs)
    assert len({(c.batch_size, c.lr, c.momentum, c.seed) for c in configs}) == len(configs)


def test_a_spec_without_a_grid_is_one_run_of_the_fixed_values():
    spec = SweepSpec(fixed={"batch_size": 32})
    assert len(spec) == 1
    assert spec.configs() == [RunConfig(batch_size=32)]


def test_spec_is_frozen_and_hashable():
    spec = SweepSpec(grid={"hidden": [[16], [32, 32]]}, fixed={"epochs": 1})
    assert hash(spec) == hash(SweepSpec(grid={"hidden": [(16,), (32, 32)]}, fixed={"epochs": 1}))
    assert [c.hidden for c in spec.configs()] == [(16,), (32, 32)]
    with pytest.raises(AttributeError):
        spec.lr_scaling = "linear"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": {"batch_sizes": [1]}}, "unknown grid key(s) batch_sizes; allowed: dataset"),
        ({"fixed": {"colour": "red"}}, "unknown fixed key(s) colour"),
        ({"grid": {"device": ["cpu"]}}, "unknown grid key(s) device"),
        ({"grid": {"lr": [0.1]}, "fixed": {"lr": 0.2}}, "lr given both as a grid axis and as a fixed value"),
        ({"grid": {"lr": []}}, "grid axis lr is empty"),
        ({"grid": {"lr": 0.1}}, "grid axis lr must be a list"),
        ({"grid": {"momentum": [0, 0.0]}}, "grid axis momentum lists 0.0 twice"),
        ({"grid": {"batch_size": ["full", "FULL"]}}, "lists 'FULL' twice"),
        ({"lr_scaling": "sqrt"}, "unknown lr_scaling 'sqrt'; allowed: 'none', 'linear'"),
        ({"base_batch": 0}, "base_batch 0 is invalid"),
    ],
)
def test_bad_specs_fail_with_one_line(kwargs, message):
    with pytest.raises(ConfigError) as caught:
        SweepSpec(**kwargs)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        (SweepSpec(grid={"momentum": [0.9, 1.0]}), ConfigError, "grid point momentum=1.0: momentum 1.0 is outside [0, 1)"),
        (SweepSpec(grid={"momentum": [0.0, 0.5]}, fixed={"nesterov": True}), ConfigError,
         "grid point momentum=0.0: Nesterov momentum needs momentum > 0"),
        (SweepSpec(grid={"batch_size": [16, 3601]}), ConfigError,
         "grid point batch_size=3601: batch size 3601 is larger than the training set (3600 examples)"),
        (SweepSpec(grid={"optimizer": ["momentum", "adam"], "momentum": [0.9]}), ConfigError,
         "grid point optimizer=adam momentum=0.9: optimizer 'adam' takes no momentum"),
        (SweepSpec(grid={"model": ["mlp", "resnet-9000"]}), ConfigError, "unknown model 'resnet-9000'"),
        (SweepSpec(grid={"seed": [0]}, fixed={"dataset": "imagenet"}), DataError, "unknown dataset 'imagenet'"),
        (SweepSpec(grid={"hidden": [[16], [0]]}), ConfigError, "grid point hidden=0: hidden widths (0,) are invalid"),
        (SweepSpec(fixed={"epochs": 0}), ConfigError, "the sweep's run: epochs 0 is too small"),
    ],
)
def test_every_grid_point_is_validated_before_anything_runs(spec, error, message):
    with pytest.raises(error) as caught:
        spec.configs()
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_linear_lr_scaling_follows_goyal_et_al():
    spec = SweepSpec(grid={"batch_size": [32, 256, 1024, "full"], "lr": [0.1]}, lr_scaling="linear", base_batch=256)
    configs = spec.configs()
    n = training_set_size(configs[0])
    assert n == 3600  # mnist-5k: 4000 training images, 10% held out for validation
    assert [c.lr for c in configs] == pytest.approx([0.1 * 32 / 256, 0.1, 0.4, 0.1 * n / 256])
    assert [c.batch_size for c in configs] == [32, 256, 1024, "full"]


def test_toml_file_with_fixed_and_grid(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(
        'lr_scaling = "linear"\nbase_batch = 128\n\n'
        '[fixed]\ndataset = "mnist-5k"\nepochs = 2\nhidden = [16, 16]\n\n'
        '[grid]\nbatch_size = [64, "full"]\nmomentum = [0.0, 0.9]\nseed = [0, 1]\nlr = [0.2]\n',
        encoding="utf-8",
    )
    spec = SweepSpec.from_toml(path)
    assert spec.lr_scaling == "linear" and spec.base_batch == 128
    assert spec.fixed_values == {"dataset": "mnist-5k", "epochs": 2, "hidden": (16, 16)}
    configs = spec.configs()
    assert len(configs) == 8
    assert configs[0] == RunConfig(batch_size=64, lr=0.1, momentum=0.0, seed=0, epochs=2, hidden=(16, 16))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[grid]\nbatch_size = [1]\nwidth = [3]\n", "unknown grid key(s) width; allowed: dataset, model"),
        ("[fixed]\nepoch = 3\n", "unknown fixed key(s) epoch; allowed: dataset"),
        ("[grids]\nlr = [0.1]\n", "unknown key(s) grids; allowed at the top level: fixed, grid, lr_scaling, base_batch"),
        ("grid = 3\n", "[grid] must be a table"),
        ("[grid]\nlr = [0.1\n", "is not valid TOML"),
        ("[grid]\nlr = 0.1\n", "grid axis lr must be a list"),
    ],
)
def test_toml_errors_are_one_line_naming_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        SweepSpec.from_toml(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_toml_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read sweep file"):
        SweepSpec.from_toml(tmp_path / "absent.toml")


def _spec(argv):
    return sweep_command.spec_from_args(build_parser().parse_args(["sweep", *argv]))


def test_cli_flags_make_the_grid_and_the_fixed_values():
    spec = _spec(["--batch-size", "1", "16", "full", "--momentum", "0", "0.9", "--lr", "0.1",
                  "--seed", "0", "1", "--optimizer", "momentum", "--epochs", "3", "--hidden", "16",
                  "--device", "cpu", "--nesterov"])
    assert spec.grid_axes == {"optimizer": ("momentum",), "batch_size": (1, 16, "full"), "lr": (0.1,),
                              "momentum": (0.0, 0.9), "seed": (0, 1)}
    assert spec.fixed_values == {"nesterov": True, "epochs": 3, "hidden": (16,), "device": "cpu"}
    assert len(spec) == 12


def test_cli_flags_override_the_toml_file(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('[fixed]\nepochs = 4\nlr = 0.3\n[grid]\nbatch_size = [16, 32]\nseed = [0, 1, 2]\n', encoding="utf-8")
    spec = _spec(["--config", str(path), "--lr", "0.1", "0.2", "--seed", "7", "--epochs", "1"])
    assert spec.grid_axes == {"batch_size": (16, 32), "lr": (0.1, 0.2), "seed": (7,)}
    assert spec.fixed_values == {"epochs": 1}


def test_cli_reports_a_bad_grid_value_upfront(tmp_path, capsys):
    store = tmp_path / "runs.db"
    code = main(["sweep", "--momentum", "0.5", "1.5", "--store", str(store), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == "batchlab: error: grid point momentum=1.5: momentum 1.5 is outside [0, 1); allowed: 0 ≤ momentum < 1"
    assert not store.exists()  # nothing ran, not even the store was created


def test_cli_rejects_a_bad_batch_size_flag(capsys):
    assert main(["sweep", "--batch-size", "16", "big"]) == 2
    assert "batch size 'big' is not an integer" in capsys.readouterr().err
