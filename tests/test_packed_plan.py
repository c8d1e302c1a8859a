"""The CPU packing probe: its decision on injected timings, the evidence a pack keeps, and the
shape of a real probe (never its speed)."""

import pytest

from batchlab.config import RunConfig
from batchlab.data import prepare_splits
from batchlab.training import packed_plan
from batchlab.training.packed_plan import (
    MEASURE_ROUNDS,
    PACKED,
    PACKING_MARGIN,
    SEQUENTIAL,
    ProbeEvidence,
    choose_strategy,
    measure_strategies,
    measurement_cost,
    plan_packs,
)

SMALL = dict(dataset="mnist-5k", model="mlp", hidden=(16,), epochs=10, batch_size=128, device="cpu")


def evidence(packed, sequential):
    return ProbeEvidence(tuple(packed), tuple(sequential))


def test_packing_is_chosen_only_when_it_wins_clearly_in_fastest_and_median():
    assert choose_strategy(evidence([1.0, 1.0, 1.0], [2.0, 2.0, 2.0])) == PACKED
    # Faster, but by less than the margin: one at a time.
    assert choose_strategy(evidence([1.0] * 3, [1.0 + PACKING_MARGIN / 2] * 3)) == SEQUENTIAL
    assert choose_strategy(evidence([1.0] * 3, [1.0 + 2 * PACKING_MARGIN] * 3)) == PACKED
    assert choose_strategy(evidence([1.0] * 3, [1.0] * 3)) == SEQUENTIAL
    assert choose_strategy(evidence([2.0] * 3, [1.0] * 3)) == SEQUENTIAL


def test_one_lucky_packed_sample_does_not_decide():
    # The fastest packed sample wins by far, but its median does not: a burst of load, not a gain.
    lucky = evidence([0.5, 2.0, 2.1], [1.5, 1.6, 1.5])
    assert min(lucky.packed_s) * (1 + PACKING_MARGIN) < min(lucky.sequential_s)
    assert choose_strategy(lucky) == SEQUENTIAL
    # And a slow outlier in one-at-a-time's samples does not make packing win either.
    assert choose_strategy(evidence([1.0, 1.0, 1.0], [1.05, 9.0, 1.05])) == SEQUENTIAL


def test_the_margin_is_a_parameter():
    samples = evidence([1.0] * 3, [1.05] * 3)
    assert choose_strategy(samples, margin=0.0) == PACKED
    assert choose_strategy(samples, margin=0.1) == SEQUENTIAL


def test_evidence_needs_samples_and_describes_both_ways():
    with pytest.raises(ValueError):
        ProbeEvidence((), (1.0,))
    text = evidence([0.001, 0.002, 0.003], [0.004, 0.005, 0.006]).describe()
    assert "ms per model-update" in text
    assert "packed: fastest 1.000, median 2.000" in text and "one at a time: fastest 4.000, median 5.000" in text


@pytest.mark.parametrize("packed_s, sequential_s, expected", [
    ([1e-3] * 3, [3e-3] * 3, PACKED),
    ([1e-3] * 3, [1.05e-3] * 3, SEQUENTIAL),
])
def test_a_pack_keeps_its_choice_and_the_evidence(monkeypatch, packed_s, sequential_s, expected):
    injected = evidence(packed_s, sequential_s)
    monkeypatch.setattr(packed_plan, "measure_strategies", lambda configs, splits, device, task=None: injected)
    a = RunConfig(**SMALL, lr=0.1, momentum=0.9, seed=1)
    b = a.replace(lr=0.01, momentum=0.0, seed=2)
    (pack,) = plan_packs([a, b], "cpu")
    assert pack.strategy == expected
    assert pack.evidence is injected
    assert "measured on this cpu" in pack.reason and injected.describe() in pack.reason
    assert ("packed (faster by more than" in pack.reason) == (expected == PACKED)


@pytest.mark.slow
def test_a_real_probe_samples_both_ways_alike():
    a = RunConfig(**{**SMALL, "batch_size": 4}, lr=0.1, momentum=0.9, seed=1)
    configs = [a, a.replace(momentum=0.0, seed=2), a.replace(lr=0.01, seed=3)]
    splits = prepare_splits("mnist-5k", device="cpu")
    probe = measure_strategies(configs, splits, packed_plan.resolve_device("cpu"))
    assert len(probe.packed_s) == len(probe.sequential_s) == MEASURE_ROUNDS
    assert all(t > 0 for t in probe.packed_s + probe.sequential_s)
    # Warm-up and samples of both ways, each sample K model-updates.
    assert measurement_cost(3) == (MEASURE_ROUNDS + 1) * 3 + MEASURE_ROUNDS * 3 + 3


def test_runs_with_momentum_correction_train_one_at_a_time():
    from batchlab.config import RunConfig
    from batchlab.training.packed_plan import can_pack

    config = RunConfig(dataset="mnist-5k", model="mlp", hidden=(8,), batch_size=64, momentum=0.9, warmup_epochs=1.0,
                       device="cpu")
    assert can_pack(config)[0]
    packable, why = can_pack(config.replace(momentum_correction=True))
    assert not packable and "momentum correction" in why
