"""The CPU packing choice: its rule on injected timings and bandwidths, the evidence and reason a
pack keeps, and a pack that decides on its first updates — packed, or handed over to one run at
a time mid-epoch — giving each run what it gets alone (never its speed)."""

import time

import pytest
import torch

import batchlab
from batchlab.config import RunConfig
from batchlab.training import packed, packed_auto
from batchlab.training.packed_plan import (
    AUTO,
    PACKED,
    PACKING_MARGIN,
    PROBE_MAX_TURNS,
    PROBE_SINGLE_FIRST,
    PROBE_SINGLE_WARMUP,
    PROBE_TURN_STEPS,
    PROBE_TURN_TIMED,
    PROBE_TURN_UNTIMED,
    SEQUENTIAL,
    ProbeEvidence,
    choose_strategy,
    measurement_cost,
    packed_bound_s,
    packed_passes,
    packing_ruled_out,
    plan_packs,
    probe_over_budget,
    probe_turn_room,
    turn_ratios,
    turns_verdict,
    verdict,
    working_set_bytes,
)

SMALL = dict(dataset="mnist-5k", model="mlp", hidden=(16,), epochs=10, batch_size=128, device="cpu")


def evidence(packed, sequential):
    return ProbeEvidence(tuple(packed), tuple(sequential))


def turns(ratios, steps=1, timed=1):
    """Evidence of turns whose one-at-a-time median over packed median is each of ``ratios``."""
    return ProbeEvidence(tuple(1.0 for _ in ratios for _ in range(steps)),
                         tuple(ratio for ratio in ratios for _ in range(timed)), turn_steps=steps, turn_timed=timed)


def test_each_turn_compares_its_median_alone_with_its_median_packed():
    samples = ProbeEvidence((1.0, 3.0, 2.0, 2.0), (3.0, 9.0, 4.0, 5.0, 1.0, 6.0), turn_steps=2, turn_timed=3)
    assert samples.turns == 2 and turn_ratios(samples) == [4.0 / 2.0, 5.0 / 2.0]
    with pytest.raises(ValueError, match="whole turns"):
        ProbeEvidence((1.0, 1.0, 1.0), (1.0, 1.0), turn_steps=2, turn_timed=1)


def test_far_apart_options_are_told_apart_in_one_turn_close_ones_take_more():
    assert turns_verdict(turns([2.0])) == PACKED  # packing twice as fast
    assert turns_verdict(turns([0.6])) == SEQUENTIAL  # the lecture MLP at B = 16 on a 2-core CPU
    assert turns_verdict(turns([1.15])) is None  # one turn cannot tell 15 % from noise
    assert turns_verdict(turns([1.15, 1.17, 1.13])) == PACKED  # three agreeing turns can
    assert turns_verdict(turns([0.85, 0.83, 0.86])) == SEQUENTIAL
    # Close to the margin, the turns do not decide; the median turn does, at the budget.
    close = turns([1.03, 0.99, 1.05, 1.01])
    assert turns_verdict(close) is None
    assert choose_strategy(close) == SEQUENTIAL  # median 1.02, not above 1 + m
    assert choose_strategy(turns([1.05, 1.04, 1.06, 1.10, 0.97])) == PACKED


def test_one_turn_hit_by_a_burst_of_load_does_not_decide():
    # The median and the median absolute deviation ignore one wild turn either way.
    assert turns_verdict(turns([0.8, 0.82, 3.0, 0.79, 0.81])) == SEQUENTIAL
    assert turns_verdict(turns([1.3, 1.32, 0.2, 1.29, 1.31])) == PACKED
    assert choose_strategy(turns([0.3, 1.3, 1.32])) == PACKED


def test_the_margin_is_a_parameter():
    samples = turns([1.05] * 3)
    assert choose_strategy(samples, margin=0.0) == PACKED
    assert choose_strategy(samples, margin=0.1) == SEQUENTIAL


def test_the_probe_stops_once_deciding_has_cost_its_share_of_the_training():
    # 16 runs with 100 updates left at 3 ms each alone: 4.8 s of training, 1.5 % of it is 72 ms.
    assert not probe_over_budget(0.100, 10, 16, 3e-3, 100)  # 100 ms, of which 10 × 16 × 3 ms was training
    assert not probe_over_budget(0.166, 2, 16, 3e-3, 100)  # 166 − 96 = 70 ms spent, under 72
    assert probe_over_budget(0.172, 2, 16, 3e-3, 100)  # 76 ms: over
    assert not probe_over_budget(0.200, 2, 16, 3e-3, 1_000)  # a ten times longer training repays it
    # Turns fit in the probe's epoch after its first (untimed) packed step.
    assert probe_turn_room(5) == 4 // PROBE_TURN_STEPS and probe_turn_room(1) == 0
    assert probe_turn_room(10_000) == PROBE_MAX_TURNS


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
    alone = (0.5e-3,) * PROBE_SINGLE_FIRST
    ruled_out = ProbeEvidence((), alone, bound_s=0.67e-3, bandwidth=32e9)
    assert packing_ruled_out(ruled_out)
    strategy, words = verdict(ruled_out)
    assert strategy == SEQUENTIAL and f"cannot be faster by {PACKING_MARGIN:.0%}" in words
    # Within the margin counts too: 0.5 ≤ 0.495 · 1.02.
    assert packing_ruled_out(ProbeEvidence((), alone, bound_s=0.495e-3))
    # A bound well below one update alone leaves it to the packed samples.
    open_question = ProbeEvidence((), alone, bound_s=0.1e-3)
    assert not packing_ruled_out(open_question)
    assert verdict(ProbeEvidence((0.2e-3,) * 3, alone, bound_s=0.1e-3))[0] == PACKED
    assert verdict(ProbeEvidence((0.495e-3,) * 3, alone, bound_s=0.1e-3)) == (
        SEQUENTIAL, f"trained one at a time (packing not faster by {PACKING_MARGIN:.0%}: packing 1.01× as fast in "
                    "the median of 3 turns; the turns left it open, the median turn decided)")
    assert not packing_ruled_out(evidence([1.0], [1.0]))  # no bound: nothing ruled out
    # Once packed steps were timed, they decide, not the bound: the turns' updates alone (faster
    # than the first ones) must not turn a measured verdict into "cannot be faster".
    measured = ProbeEvidence((0.5e-3,), (0.5e-3,), bound_s=0.67e-3, bandwidth=32e9)
    assert packing_ruled_out(measured) and "cannot be faster" not in verdict(measured)[1]


def test_deciding_costs_a_few_updates_of_one_run_and_the_packed_probe_steps():
    # Untimed and timed updates of the throwaway copy before the packed steps (the timed ones are
    # the one turn's updates alone), and the packed steps (the first one untimed).
    throwaway = PROBE_SINGLE_WARMUP + PROBE_SINGLE_FIRST
    assert measurement_cost(16) == throwaway + (PROBE_TURN_STEPS + 1) * 16


# A pack that decides while training, on injected timings: every run ends as it does alone.
AUTO_SMALL = dict(dataset="mnist-5k", model="mlp", hidden=(16,), epochs=2, batch_size=256, device="cpu")
AUTO_RUNS = [
    RunConfig(**AUTO_SMALL, lr=0.05, momentum=0.9, seed=1),
    RunConfig(**AUTO_SMALL, lr=0.1, momentum=0.0, seed=2),
    RunConfig(**AUTO_SMALL, lr=0.02, momentum=0.5, nesterov=True, seed=3),
    RunConfig(**AUTO_SMALL, lr=1e6, momentum=0.9, seed=5),  # diverges in epoch 1
    # Handed over mid-warm-up: its rate changes every update of the first epoch.
    RunConfig(**AUTO_SMALL, lr=0.05, momentum=0.8, warmup_epochs=1.0, weight_decay=1e-3, seed=6),
]


@pytest.fixture(scope="module")
def alone():
    return [batchlab.train(config, progress=False) for config in AUTO_RUNS]


def inject(monkeypatch, *, alone_s: float, packed_s: float, bandwidth: float) -> None:
    monkeypatch.setattr(packed_auto.SingleProbe, "sample", lambda self, count, untimed=1: (alone_s,) * count)
    monkeypatch.setattr(packed_auto, "copy_bandwidth", lambda working_set, threads: bandwidth)
    monkeypatch.setattr(packed._PackTimer, "per_update_seconds", lambda self: [packed_s] * len(self._pack_sizes))


def plan_one_auto_pack(monkeypatch) -> None:
    """Plan every run of a train_pack call as one pack that decides on its first updates, however
    short its training (plan_packs would train a short one one at a time)."""
    monkeypatch.setattr(packed, "plan_packs", lambda configs, **kwargs: [
        packed.Pack(tuple(configs), AUTO, f"{len(configs)} runs: decided on its first updates")])


# The bound decides before any packed step; a packed probe far from the margin stops after one
# turn; a close one takes every turn its budget allows, then the median turn decides.
@pytest.mark.parametrize("alone_s, packed_s, bandwidth, expected, words, samples", [
    (1e-3, 1e-4, 1e15, PACKED, "packed (faster by more than 2%", PROBE_TURN_STEPS),
    (1e-3, 0.99e-3, 1e15, SEQUENTIAL, "the turns left it open", None),
    (1e-3, 2e-3, 1e15, SEQUENTIAL, "packing 0.50× as fast in the median of 1 turn", PROBE_TURN_STEPS),
    (1e-5, 1e-4, 1e9, SEQUENTIAL, "packing cannot be faster by 2%", 0),
])
def test_an_auto_pack_follows_the_rule_and_each_run_ends_as_it_does_alone(
        monkeypatch, alone, alone_s, packed_s, bandwidth, expected, words, samples):
    from test_packed import assert_same_result

    inject(monkeypatch, alone_s=alone_s, packed_s=packed_s, bandwidth=bandwidth)
    plan_one_auto_pack(monkeypatch)
    results = packed.train_pack(AUTO_RUNS, progress=False)
    (choice,) = results.plan
    assert choice.strategy == expected and words in choice.reason
    if samples is None:  # every turn that fit before the probe's cost reached its share of the training
        samples = len(choice.evidence.packed_s)
        assert 1 <= samples // PROBE_TURN_STEPS <= probe_turn_room(15)
    # Three updates alone for the bound; with packed samples, the ones alone in each turn.
    turns_made = samples // PROBE_TURN_STEPS
    assert choice.evidence.sequential_s == (alone_s,) * (turns_made * PROBE_TURN_TIMED or PROBE_SINGLE_FIRST)
    assert len(choice.evidence.packed_s) == samples
    for result, solo in zip(results, alone):
        assert_same_result(result, solo)
        assert result.summary["pack_choice"] == expected and result.summary["pack_choice_reason"] == choice.reason


def test_each_turn_after_the_first_times_updates_alone_right_after_its_packed_step(monkeypatch):
    events = []

    def sample(self, count, untimed=1):
        events.append(("alone", count, untimed))
        return (1e-3,) * count

    real_step = packed.PackStep.train_epoch

    def packed_step(self, *args, **kwargs):
        events.append(("packed", args[2]))
        return real_step(self, *args, **kwargs)

    inject(monkeypatch, alone_s=1e-3, packed_s=0.99e-3, bandwidth=1e15)  # close: the turns go on
    # The budget counts real wall time against the injected timings; left out, the turns go on
    # to the epoch's room on any machine.
    monkeypatch.setattr(packed_auto, "probe_over_budget", lambda *args, **kwargs: False)
    monkeypatch.setattr(packed_auto.SingleProbe, "sample", sample)
    monkeypatch.setattr(packed.PackStep, "train_epoch", packed_step)
    plan_one_auto_pack(monkeypatch)
    results = packed.train_pack(AUTO_RUNS, progress=False)
    assert events[:6] == [("alone", PROBE_SINGLE_FIRST, PROBE_SINGLE_WARMUP), ("packed", 1),
                          ("packed", PROBE_TURN_STEPS), ("packed", PROBE_TURN_STEPS),
                          ("alone", PROBE_TURN_TIMED, PROBE_TURN_UNTIMED), ("packed", PROBE_TURN_STEPS)]
    evidence = results.plan[0].evidence
    assert evidence.turns == probe_turn_room(15)  # every turn that fits in the epoch's 16 batches
    assert len(evidence.sequential_s) == evidence.turns * PROBE_TURN_TIMED


def test_the_probes_budget_counts_stacking_and_the_first_packed_step(monkeypatch):
    # Stacking is made slow; the budget must see it in the time deciding has cost, with the
    # first (untimed) packed step among the updates it subtracts.
    calls = []
    real_stack = packed.PackStep.__init__

    def slow_stack(self, *args, **kwargs):
        time.sleep(0.2)
        real_stack(self, *args, **kwargs)

    def budget(elapsed_s, packed_steps, runs, alone_s, remaining_updates):
        calls.append((elapsed_s, packed_steps))
        return True  # stop after the first turn

    inject(monkeypatch, alone_s=1e-3, packed_s=0.99e-3, bandwidth=1e15)  # close: the turns go on
    monkeypatch.setattr(packed.PackStep, "__init__", slow_stack)
    monkeypatch.setattr(packed_auto, "probe_over_budget", budget)
    plan_one_auto_pack(monkeypatch)
    results = packed.train_pack(AUTO_RUNS, progress=False)
    assert len(calls) == 1 and results.plan[0].evidence.turns == 1
    elapsed_s, packed_steps = calls[0]
    assert elapsed_s >= 0.2
    assert packed_steps == 1 + PROBE_TURN_STEPS


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
        events.append(("packed", args[2]))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(packed_auto.SingleProbe, "sample", sample)
    monkeypatch.setattr(packed.PackStep, "train_epoch", packed_step)
    monkeypatch.setattr(packed_auto, "copy_bandwidth", lambda working_set, threads: 1e15)  # no bound
    monkeypatch.setattr(packed._PackTimer, "per_update_seconds", lambda self: [1.0] * len(self._pack_sizes))
    plan_one_auto_pack(monkeypatch)
    results = packed.train_pack(AUTO_RUNS, progress=False)
    (probe,) = set(probes)
    assert probe.single.config == AUTO_RUNS[0] and probe.single.model is not None
    # 3 alone; the untimed packed step; then packed and alone in turns, the first turn's updates
    # alone being the 3 just made (one turn: a packed update of 1 s loses at once).
    assert events == [("alone", PROBE_SINGLE_FIRST), ("packed", 1), ("packed", PROBE_TURN_STEPS)]
    evidence = results.plan[0].evidence
    assert results.plan[0].strategy == SEQUENTIAL and evidence.packed_s == (1.0,) * PROBE_TURN_STEPS
    assert len(evidence.sequential_s) == PROBE_TURN_TIMED and min(evidence.sequential_s) > 0
    assert evidence.turn_steps == PROBE_TURN_STEPS and evidence.turn_timed == PROBE_TURN_TIMED
    assert probe.made == PROBE_SINGLE_WARMUP + PROBE_SINGLE_FIRST
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
    # Its first two updates were the run's own; from the third on it walked the epoch again.
    assert not probe.in_order and probe.work.updates == 2


# Which way the pack goes, and whether the copy's updates stay within the epoch, decide whether the
# copied run goes on from the copy: its updates then count, and none is made twice.
@pytest.mark.parametrize("how, in_order", [
    ("ruled out by the bound", True),
    ("one at a time after a turn", True),
    ("packed after a turn", True),
    ("one at a time after turns longer than the epoch", False),
])
def test_the_copied_run_goes_on_from_the_copy_when_it_goes_one_at_a_time(monkeypatch, alone, how, in_order):
    from batchlab.training.loop import SingleStep
    from test_packed import assert_same_result

    made: dict[int, dict[int, int]] = {}  # run seed → one-model step → updates it made
    real_epoch = SingleStep.train_epoch

    def counted(self, *args, **kwargs):
        work = real_epoch(self, *args, **kwargs)
        steps = made.setdefault(self.config.seed, {})
        steps[id(self)] = steps.get(id(self), 0) + work.updates
        return work

    monkeypatch.setattr(SingleStep, "train_epoch", counted)
    drawn: dict[tuple[int, int], int] = {}  # (seed, epoch) → permutations drawn
    real_permutation = batchlab.data.epoch_permutation

    def permutation(n, epoch, seed, shuffle):
        drawn[seed, epoch] = drawn.get((seed, epoch), 0) + 1
        return real_permutation(n, epoch, seed, shuffle)

    monkeypatch.setattr(batchlab.data, "epoch_permutation", permutation)
    bandwidth = 1e9 if how == "ruled out by the bound" else 1e15
    monkeypatch.setattr(packed_auto, "copy_bandwidth", lambda working_set, threads: bandwidth)
    packed_s = 1e-9 if how == "packed after a turn" else 1.0
    monkeypatch.setattr(packed._PackTimer, "per_update_seconds", lambda self: [packed_s] * len(self._pack_sizes))
    if how == "one at a time after turns longer than the epoch":
        monkeypatch.setattr(packed_auto, "turns_verdict", lambda evidence: None)  # every turn the epoch has room for
        monkeypatch.setattr(packed_auto, "probe_over_budget", lambda *args: False)
    plan_one_auto_pack(monkeypatch)
    probes = []
    real_init = packed_auto.SingleProbe.__init__
    monkeypatch.setattr(packed_auto.SingleProbe, "__init__",
                        lambda self, *args, **kwargs: (probes.append(self), real_init(self, *args, **kwargs))[1])
    results = packed.train_pack(AUTO_RUNS, progress=False)
    (probe,) = probes
    assert probe.in_order == in_order
    copied = AUTO_RUNS[packed_auto.representative_run(AUTO_RUNS)].seed
    updates = {result.config.seed: result.summary["updates"] for result in results}
    if results.plan[0].strategy == PACKED:
        assert set(made) == {copied} and sum(made[copied].values()) == probe.made  # only the copy trained alone
    elif in_order:
        # The copy is the run's one-model step: every update alone, each made once.
        assert len(made[copied]) == 1 and made[copied][id(probe.single)] == updates[copied]
    else:
        # The copy's updates are thrown away: the run is handed back from the pack like the others.
        assert len(made[copied]) == 2 and made[copied][id(probe.single)] == probe.made
    # An epoch trained in parts draws each run's order once per step that trains it (the pack, the
    # copy, the run's own step), not once per part.
    assert max(drawn.values()) <= 3
    for result, solo in zip(results, alone):
        assert_same_result(result, solo)


def test_runs_with_momentum_correction_train_one_at_a_time():
    from batchlab.config import RunConfig
    from batchlab.training.packed_plan import can_pack

    config = RunConfig(dataset="mnist-5k", model="mlp", hidden=(8,), batch_size=64, momentum=0.9, warmup_epochs=1.0,
                       device="cpu")
    assert can_pack(config)[0]
    packable, why = can_pack(config.replace(momentum_correction=True))
    assert not packable and "momentum correction" in why


def test_an_auto_pack_whose_epochs_are_too_short_to_decide_in_trains_packed(monkeypatch):
    from test_packed import assert_same_result

    configs = [config.replace(batch_size="full") for config in AUTO_RUNS[:2]]  # 1 batch per epoch: no room for a turn
    inject(monkeypatch, alone_s=1e-5, packed_s=1e-4, bandwidth=1e9)  # would go one at a time if asked
    plan_one_auto_pack(monkeypatch)
    results = packed.train_pack(configs, progress=False)
    assert [pack.strategy for pack in results.plan] == [AUTO]
    for result, config in zip(results, configs):
        assert_same_result(result, batchlab.train(config, progress=False))
        assert result.summary["pack_choice"] is None and result.summary["pack_size"] == 2
