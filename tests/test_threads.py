"""The intra-op thread rule, its context managers, and where the chosen count is recorded.
No assertion is about speed."""

import dataclasses

import pytest
import torch

from batchlab.runtime import threads
from batchlab.runtime.environment import describe_environment
from batchlab.errors import ConfigError
from batchlab.runtime.threads import ONE_THREAD_BELOW_BATCH, PROCESS_THREADS, apply_thread_rule, intra_op_threads, threads_for
from batchlab.timing import measure_point
from batchlab.timing.table import TimingPoint, footnotes
from batchlab.timing.workload import synthetic_data

CPU = torch.device("cpu")


def test_small_cpu_batches_get_one_thread_and_the_rest_keep_the_process_count():
    assert threads_for(1, CPU) == 1
    assert threads_for(ONE_THREAD_BELOW_BATCH - 1, "cpu") == 1
    assert threads_for(ONE_THREAD_BELOW_BATCH, CPU) == PROCESS_THREADS
    assert threads_for(1, torch.device("cuda")) == PROCESS_THREADS  # a GPU update is not split on the host
    assert threads_for(1, "meta") == PROCESS_THREADS


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_a_bad_batch_size_or_thread_count_is_one_line_config_error(bad):
    with pytest.raises(ConfigError, match="allowed"):
        threads_for(bad, CPU)
    with pytest.raises(ConfigError, match="allowed"):
        with intra_op_threads(bad):
            pass


def test_the_block_runs_with_the_count_and_the_previous_count_comes_back_even_after_an_error():
    before = torch.get_num_threads()
    with intra_op_threads(1) as count:
        assert count == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with intra_op_threads(1):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_apply_thread_rule_yields_the_count_it_set(monkeypatch):
    monkeypatch.setattr(threads, "ONE_THREAD_BELOW_BATCH", 4)
    with apply_thread_rule(2, CPU) as count:
        assert count == 1 == torch.get_num_threads()
    with apply_thread_rule(4, CPU) as count:
        assert count == PROCESS_THREADS == torch.get_num_threads()


def test_the_environment_records_the_update_threads():
    environment = describe_environment(CPU, update_threads=1)
    assert environment["update_threads"] == 1
    assert environment["torch_threads"] == torch.get_num_threads()
    assert describe_environment(CPU)["update_threads"] is None


@pytest.mark.slow
def test_a_timing_point_fixes_reports_and_round_trips_its_thread_count():
    data = synthetic_data("mnist-5k", (1, 28, 28), 10, 16, reason="test data")
    before = torch.get_num_threads()
    rule = measure_point("resident", "mlp", 4, 16, CPU, repeats=5, warmup=1, budget_s=1e-6, data=data, hidden=(8,))
    fixed = measure_point("resident", "mlp", 4, 16, CPU, repeats=5, warmup=1, budget_s=1e-6, data=data,
                          hidden=(8,), threads=2)
    assert torch.get_num_threads() == before
    assert rule.threads == threads_for(4, CPU) and fixed.threads == 2
    again = TimingPoint.from_store_row(fixed.to_store_row())
    assert again.threads == 2
    assert any("Intra-op threads per update" in note for note in footnotes([rule, fixed]))
    # Two counts on one device: the note says the curve can step where the count changes.
    mixed = [dataclasses.replace(rule, batch_size=b, threads=t) for b, t in ((4, 1), (256, 2))]
    assert any("can step where the count changes" in note for note in footnotes(mixed))
    assert not any("can step" in note for note in footnotes([rule]))


def test_a_bad_thread_count_is_refused_before_any_timing():
    with pytest.raises(ConfigError, match="thread count"):
        measure_point("resident", "mlp", 4, 16, CPU, repeats=5, warmup=1, budget_s=1e-6, hidden=(8,), threads=0)
