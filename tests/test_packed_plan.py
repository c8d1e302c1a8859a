"""The CPU packing choice: its rule on injected timings and bandwidths, the evidence and reason a
pack keeps, and a pack that decides on its first updates — packed, or handed over to one run at
a time mid-epoch — giving each run what it gets alone (never its speed)."""

import pytest
import torch

import batchlab
from batchlab.config import RunConfig
from batchlab.training import packed, packed_auto
from batchlab.training.packed_plan import (
    AUTO,
    PACKED,
    PACKING_MARGIN,
    PROBE_PACKED_STEPS,
    PROBE_SINGLE_FIRST,
    PROBE_SINGLE_UPDATES,
    SEQUENTIAL,
    ProbeEvidence,
    choose_strategy,
    measurement_cost,
    median_cannot_win,
    packed_bound_s,
    packed_passes,
    packing_ruled_out,
    plan_packs,
    verdict,
    working_set_bytes,
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
        ProbeEvidence((), (1.0,))  # neither packed samples nor a bound
    with pytest.raises(ValueError):
        ProbeEvidence((1.0,), ())
    text = evidence([0.001, 0.002, 0.003], [0.004, 0.005, 0.006]).describe()
    assert "ms per model-update" in text
    assert "packed: fastest 1.000, median 2.000" in text and "one at a time: fastest 4.000, median 5.000" in text
    bounded = ProbeEvidence((), (0.004,), bound_s=0.0005, bandwidth=32e9).describe()
    assert "packed at least 0.500 (its passes over P at 32.0 GB/s)" in bounded


def test_the_traffic_bound_counts_the_packed_kernels_passes_over_the_parameters():
    heavy_ball = RunConfig(lr=0.1, momentum=0.9)
    assert packed_passes([heavy_ball, heavy_ball.replace(momentum=0.0)]) == 10
    assert packed_passes([heavy_ball, heavy_ball.replace(weight_decay=1e-3)]) == 13
    assert packed_passes([heavy_ball.replace(nesterov=True, weight_decay=1e-3)]) == 16
    # The lecture's MLP: P = 669,706, 26.8 MB per packed heavy-ball model-update; at 32 GB/s, 0.84 ms.
    assert packed_bound_s(669_706, 32e9, 10) == pytest.approx(40 * 669_706 / 32e9)
    assert working_set_bytes(669_706, 16) == 12 * 669_706 * 16


def test_the_bound_rules_packing_out_when_one_update_alone_is_not_slower_than_it():
    # Alone 0.5 ms per update; a packed model-update needs at least 0.67 ms: one at a time at once.
    alone = (0.5e-3,) * PROBE_SINGLE_UPDATES
    ruled_out = ProbeEvidence((), alone, bound_s=0.67e-3, bandwidth=32e9)
    assert packing_ruled_out(ruled_out)
    strategy, words = verdict(ruled_out)
    assert strategy == SEQUENTIAL and "cannot be faster by 10%" in words
    # Within the margin counts too: 0.5 ≤ 0.46 · 1.1.
    assert packing_ruled_out(ProbeEvidence((), alone, bound_s=0.46e-3))
    # A bound well below one update alone leaves it to the packed samples.
    open_question = ProbeEvidence((), alone, bound_s=0.1e-3)
    assert not packing_ruled_out(open_question)
    assert verdict(ProbeEvidence((0.2e-3,) * 3, alone, bound_s=0.1e-3))[0] == PACKED
    assert verdict(ProbeEvidence((0.48e-3,) * 3, alone, bound_s=0.1e-3)) == (
        SEQUENTIAL, "trained one at a time (packing not faster by 10% in fastest and median)")
    assert not packing_ruled_out(evidence([1.0], [1.0]))  # no bound: nothing ruled out


def test_deciding_costs_a_few_updates_of_one_run_and_the_packed_probe_steps():
    # Timed and untimed (3 in the first turn, then one a turn) updates of the throwaway copy, and
    # the packed steps.
    assert measurement_cost(16) == PROBE_SINGLE_UPDATES + 3 + 3 + PROBE_PACKED_STEPS * 16


# A pack that decides while training, on injected timings: every run ends as it does alone.
AUTO_SMALL = dict(dataset="mnist-5k", model="mlp", hidden=(16,), epochs=2, batch_size=256, device="cpu")
AUTO_RUNS = [
    RunConfig(**AUTO_SMALL, lr=0.05, momentum=0.9, seed=1),
    RunConfig(**AUTO_SMALL, lr=0.1, momentum=0.0, seed=2),
    RunConfig(**AUTO_SMALL, lr=0.02, momentum=0.5, nesterov=True, seed=3),
    RunConfig(**AUTO_SMALL, lr=1e6, momentum=0.9, seed=5),  # diverges in epoch 1
]


@pytest.fixture(scope="module")
def alone():
    return [batchlab.train(config, progress=False) for config in AUTO_RUNS]


def inject(monkeypatch, *, alone_s: float, packed_s: float, bandwidth: float) -> None:
    monkeypatch.setattr(packed_auto.SingleProbe, "sample", lambda self, count, untimed=1: (alone_s,) * count)
    monkeypatch.setattr(packed_auto, "copy_bandwidth", lambda working_set, threads: bandwidth)
    monkeypatch.setattr(packed._PackTimer, "per_update_seconds", lambda self: [packed_s] * len(self._pack_sizes))


# The bound decides before any packed step; a packed probe that loses stops once its median
# cannot pass (2 of 3 samples); a winning one takes all its samples (the first step left out).
@pytest.mark.parametrize("alone_s, packed_s, bandwidth, expected, words, samples", [
    (1e-3, 1e-4, 1e15, PACKED, "packed (faster by more than 10%)", PROBE_PACKED_STEPS - 1),
    (1e-3, 0.95e-3, 1e15, SEQUENTIAL, "not faster by 10% in fastest and median", 2),
    (1e-5, 1e-4, 1e9, SEQUENTIAL, "packing cannot be faster by 10%", 0),
])
def test_an_auto_pack_follows_the_rule_and_each_run_ends_as_it_does_alone(
        monkeypatch, alone, alone_s, packed_s, bandwidth, expected, words, samples):
    from test_packed import assert_same_result

    inject(monkeypatch, alone_s=alone_s, packed_s=packed_s, bandwidth=bandwidth)
    monkeypatch.setattr(packed, "plan_packs", lambda configs, **kwargs: [
        packed.Pack(tuple(configs), AUTO, "4 runs: decided on its first updates")])
    results = packed.train_pack(AUTO_RUNS, progress=False)
    (choice,) = results.plan
    assert choice.strategy == expected and words in choice.reason
    # Three updates alone for the bound; with packed samples, the one alone after each of them.
    assert choice.evidence.sequential_s == (alone_s,) * (samples or PROBE_SINGLE_FIRST)
    assert len(choice.evidence.packed_s) == samples
    for result, solo in zip(results, alone):
        assert_same_result(result, solo)
        assert result.summary["pack_choice"] == expected and result.summary["pack_choice_reason"] == choice.reason


def test_the_probe_times_a_run_of_the_packs_commonest_update_rule():
    grid = [RunConfig(**SMALL, momentum=momentum, seed=seed) for seed in (0, 1) for momentum in (0.0, 0.5, 0.8, 0.9)]
    assert packed_auto.representative_run(grid) == 1  # λ = 0 first, but most runs carry momentum
    assert packed_auto.representative_run([config.replace(momentum=0.0) for config in grid]) == 0
    # A tie goes to the rule met first.
    mixed = [grid[1], grid[0], grid[0].replace(seed=7), grid[2]]
    assert packed_auto.representative_run(mixed) == 0
    assert packed_auto.representative_run([grid[0], grid[1].replace(nesterov=True), grid[1]]) == 0


def test_the_probe_times_a_throwaway_copy_by_the_training_loop_in_turns_with_the_pack(monkeypatch, alone):
    from test_packed import assert_same_result

    probes, events = [], []
    real_sample, real_step = packed_auto.SingleProbe.sample, packed.PackStep.train_epoch

    def sample(self, count, untimed=1):
        probes.append(self)
        seconds = real_sample(self, count, untimed)
        events.append(("alone", len(seconds)))
        return seconds

    def packed_step(self, *args, **kwargs):
        events.append(("packed", 1))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(packed_auto.SingleProbe, "sample", sample)
    monkeypatch.setattr(packed.PackStep, "train_epoch", packed_step)
    monkeypatch.setattr(packed_auto, "copy_bandwidth", lambda working_set, threads: 1e15)  # no bound
    monkeypatch.setattr(packed._PackTimer, "per_update_seconds", lambda self: [1.0] * len(self._pack_sizes))
    monkeypatch.setattr(packed, "plan_packs", lambda configs, **kwargs: [
        packed.Pack(tuple(configs), AUTO, "4 runs: decided on its first updates")])
    results = packed.train_pack(AUTO_RUNS, progress=False)
    (probe,) = set(probes)
    assert probe.single.config == AUTO_RUNS[0] and probe.single.model is not None
    # 3 alone; the untimed packed step; then packed and alone in turns until the median cannot pass.
    assert events[:6] == [("alone", PROBE_SINGLE_FIRST), ("packed", 1), ("packed", 1), ("alone", 1), ("packed", 1),
                          ("alone", 1)]
    evidence = results.plan[0].evidence
    assert results.plan[0].strategy == SEQUENTIAL and evidence.packed_s == (1.0, 1.0)
    assert len(evidence.sequential_s) == 2 and min(evidence.sequential_s) > 0
    assert probe.made == PROBE_SINGLE_FIRST + 2 + 3 + 2  # untimed: 3 in the first turn, one in each later
    for result, solo in zip(results, alone):
        assert_same_result(result, solo)


def test_the_probe_goes_round_its_epoch_again_when_the_epoch_is_shorter_than_the_probe():
    from batchlab.training.loop import SingleStep, initial_model_and_optimizer
    from batchlab.training.methods import run_shape
    from batchlab.training.objective import CLASSIFICATION

    splits = batchlab.data.prepare_splits("mnist-5k", device="cpu")
    config = RunConfig(**SMALL, momentum=0.9).replace(batch_size=len(splits.train) // 2)  # 2 batches an epoch
    model, optimizer = initial_model_and_optimizer(config, splits, torch.device("cpu"))
    step = SingleStep(model, optimizer, splits.train, CLASSIFICATION, run_shape(config, len(splits.train)), config, 1)
    probe = packed_auto.SingleProbe(step, 1)
    assert len(probe.sample(3, untimed=3)) == 3 and len(probe.sample(1)) == 1 and probe.made == 8


def test_runs_with_momentum_correction_train_one_at_a_time():
    from batchlab.config import RunConfig
    from batchlab.training.packed_plan import can_pack

    config = RunConfig(dataset="mnist-5k", model="mlp", hidden=(8,), batch_size=64, momentum=0.9, warmup_epochs=1.0,
                       device="cpu")
    assert can_pack(config)[0]
    packable, why = can_pack(config.replace(momentum_correction=True))
    assert not packable and "momentum correction" in why


def test_the_packed_probe_stops_once_its_median_cannot_pass():
    alone = (1.0,) * PROBE_SINGLE_UPDATES
    planned = 3  # samples; the median of 3 fails as soon as 2 miss the bar 1.0 / 1.1
    assert not median_cannot_win([], alone, planned)
    assert not median_cannot_win([2.0], alone, planned)  # one slow sample: the other two may still win
    assert median_cannot_win([2.0, 0.95], alone, planned)
    assert not median_cannot_win([0.5, 2.0], alone, planned)
    # Never stops a probe whose samples would all pass.
    assert not median_cannot_win([0.5, 0.5, 0.5], alone, planned)
    assert median_cannot_win([2.0, 2.0], alone, 4) is False and median_cannot_win([2.0] * 3, alone, 4)


def test_an_auto_pack_whose_epochs_are_too_short_to_decide_in_trains_packed(monkeypatch):
    from test_packed import assert_same_result

    configs = [config.replace(batch_size=1024) for config in AUTO_RUNS[:2]]  # 4 batches per epoch
    inject(monkeypatch, alone_s=1e-5, packed_s=1e-4, bandwidth=1e9)  # would go one at a time if asked
    monkeypatch.setattr(packed, "plan_packs", lambda configs, **kwargs: [
        packed.Pack(tuple(configs), AUTO, "2 runs: decided on its first updates")])
    results = packed.train_pack(configs, progress=False)
    assert [pack.strategy for pack in results.plan] == [AUTO]
    for result, config in zip(results, configs):
        assert_same_result(result, batchlab.train(config, progress=False))
        assert result.summary["pack_choice"] is None and result.summary["pack_size"] == 2
