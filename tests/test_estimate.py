"""The time estimate before long experiments: the pilot rule (:mod:`batchlab.timing.estimate`) and
the pilot of training runs (:mod:`batchlab.training.pilot`), with injected clocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import batchlab
from batchlab.config import RunConfig
from batchlab.store import RunStore
from batchlab.timing.estimate import ESTIMATE_NOTE_S, duration_text, estimate_line, pilot_times
from batchlab.training.pilot import is_stored, training_seconds


def readings(*values: float):
    """A clock that returns ``values`` in turn."""
    it = iter(values)
    return lambda: float(next(it))


def test_the_pilot_times_updates_after_an_untimed_one_and_takes_the_evaluation_off():
    calls: list[str] = []
    times = pilot_times(lambda n: calls.append(f"updates {n}"), lambda: calls.append("evaluate"), updates=2,
                        clock=readings(0, 5, 10, 11))
    assert calls == ["updates 1", "updates 2", "evaluate", "evaluate"]
    # (5 s for two updates and an evaluation − 1 s for an evaluation) / 2 updates
    assert (times.update_s, times.evaluation_s) == (2.0, 1.0)


def test_a_short_estimate_says_nothing_and_a_long_one_one_line():
    assert estimate_line(None, "for x") is None and estimate_line(ESTIMATE_NOTE_S, "for x") is None
    assert estimate_line(720.0, "for the runs") == "estimated time: up to about 12 min for the runs"
    assert [duration_text(s) for s in (45, 720, 9000)] == ["45 s", "12 min", "2.5 h"]


def blobs_task() -> batchlab.Task:
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(72, 4, generator=generator), torch.randint(0, 3, (72,), generator=generator)
    return batchlab.Task(lambda: nn.Linear(4, 3), (x[:48], y[:48], x[48:], y[48:]), name="blobs")


def test_training_seconds_counts_the_updates_and_epochs_of_the_runs_not_in_the_store(tmp_path):
    task = blobs_task()
    device = torch.device("cpu")
    config = RunConfig(batch_size=4, lr=0.05, epochs=3, device="cpu")
    state = torch.get_rng_state()
    with RunStore(tmp_path / "runs.db") as store:
        seconds, pending = training_seconds([config], None, device, store=store, task=task,
                                            clock=readings(0, 5, 10, 11))
        # 48 / 4 = 12 updates per epoch × 3 epochs at 2 s, and 3 evaluations at 1 s
        assert (seconds, pending) == (2.0 * 36 + 1.0 * 3, 1)
        assert torch.equal(torch.get_rng_state(), state)  # the pilot leaves the generator as it was
        assert not is_stored(config, store, device, None, task)
        batchlab.train(config, task=task, store=store, progress=False)
        assert is_stored(config, store, device, None, task)
        assert training_seconds([config], None, device, store=store, task=task) is None


def test_a_pilot_longer_than_an_epoch_walks_the_epoch_again():
    """LB = 48 on 48 examples is one update per epoch; the pilot still times two updates."""
    task = blobs_task()
    config = RunConfig(batch_size=48, lr=0.05, epochs=2, device="cpu")
    seconds, _ = training_seconds([config], None, torch.device("cpu"), task=task, clock=readings(0, 5, 10, 11))
    assert seconds == pytest.approx(2.0 * 2 + 1.0 * 2)
