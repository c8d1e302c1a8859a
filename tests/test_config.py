"""RunConfig validation, round trips and the run id."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchlab.config import RunConfig, parse_batch_size, run_id
from batchlab.errors import ConfigError


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"batch_size": 0}, "batch size 0 is too small"),
        ({"batch_size": -5}, "batch size -5 is too small"),
        ({"batch_size": 2.5}, "is not an integer"),
        ({"batch_size": "big"}, "is not an integer"),
        ({"lr": -0.1}, "learning rate -0.1 is negative"),
        ({"lr": float("nan")}, "not a finite number"),
        ({"momentum": 1.0}, r"outside \[0, 1\)"),
        ({"momentum": -0.1}, r"outside \[0, 1\)"),
        ({"epochs": 0}, "epochs 0 is too small"),
        ({"shuffle": "random"}, "allowed: epoch, once, none"),
        ({"val_fraction": 1.0}, "validation fraction"),
        ({"hidden": (0, 5)}, "hidden widths"),
        ({"nesterov": True}, "Nesterov"),
    ],
)
def test_bad_values_give_one_line_errors(changes, message):
    with pytest.raises(ConfigError, match=message) as info:
        RunConfig(**changes)
    assert "\n" not in str(info.value)


def test_batch_size_accepts_full_and_integer_text():
    assert parse_batch_size("full") == "full"
    assert parse_batch_size("FULL") == "full"
    assert parse_batch_size("128") == 128
    assert parse_batch_size(64.0) == 64


def test_run_id_depends_on_what_changes_numbers_only():
    base = RunConfig(batch_size=32, momentum=0.9)
    assert run_id(base, "cpu") == run_id(RunConfig(batch_size=32, momentum=0.9, data_dir="/elsewhere"), "cpu")
    assert run_id(base, "cpu") == run_id(base.replace(device="cpu"), "cpu")
    assert run_id(base, "cpu") != run_id(base.replace(seed=1), "cpu")
    assert run_id(base, "cpu") != run_id(base, "cuda")
    assert run_id(base, "cpu") == run_id(RunConfig(batch_size="32", momentum=0.9), "cpu")
    assert len(run_id(base, "cpu")) == 16


@settings(max_examples=50, deadline=None)
@given(
    batch_size=st.one_of(st.integers(1, 10_000), st.just("full")),
    lr=st.floats(0, 10, allow_nan=False),
    momentum=st.floats(0, 0.999),
    seed=st.integers(0, 2**31),
    hidden=st.one_of(st.none(), st.lists(st.integers(1, 1024), min_size=1, max_size=4).map(tuple)),
)
def test_config_round_trips_through_dict(batch_size, lr, momentum, seed, hidden):
    config = RunConfig(batch_size=batch_size, lr=lr, momentum=momentum, seed=seed, hidden=hidden)
    again = RunConfig.from_dict(config.to_dict())
    assert again == config
    assert run_id(again, "cpu") == run_id(config, "cpu")


def test_unknown_field_is_named():
    with pytest.raises(ConfigError, match="unknown config field"):
        RunConfig.from_dict({"batchsize": 3})
