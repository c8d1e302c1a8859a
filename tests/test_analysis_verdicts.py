"""Verdicts under each claim's protocol: a table of protocol × outcome → verdict, and its words."""

import pytest

from batchlab.analysis.verdicts import (
    AGREES,
    CONTEXT,
    DISAGREES,
    ENOUGH_UPDATES,
    EQUAL_EPOCHS,
    EQUAL_TRAIN_ACC,
    EQUAL_UPDATES,
    GENERALIZATION,
    MACHINE_BUSY,
    NOT_CONVERGED,
    NOT_MEASURED,
    OPTIMIZATION,
    OTHER,
    SMALL_HIGHER,
    SMALL_LOWER,
    STEP_LIMITED,
    TIMING,
    WITHIN_NOISE,
    Outcome,
    Side,
    count_text,
    counts_sentence,
    failed_note,
    seed_outcome,
    still_falling,
    verdict,
)

HOLDS = Outcome()
REVERSED = Outcome(holds=False)
NOISE = Outcome(within_noise=True)
NOISE_REVERSED = Outcome(holds=False, within_noise=True)
LB_FALLING = Outcome(large_still_falling=True)
LB_FALLING_REVERSED = Outcome(holds=False, large_still_falling=True)
LB_UNCONVERGED = Outcome(large_converged=False)
SB_UNCONVERGED_REVERSED = Outcome(holds=False, small_converged=False)
BUSY = Outcome(busy=True)
UNMEASURED = Outcome(measured=False)

TABLE = [
    # equal epochs: the lecture's own setting
    (EQUAL_EPOCHS, OPTIMIZATION, HOLDS, AGREES),
    (EQUAL_EPOCHS, OPTIMIZATION, REVERSED, DISAGREES),
    (EQUAL_EPOCHS, OPTIMIZATION, NOISE, WITHIN_NOISE),
    (EQUAL_EPOCHS, OPTIMIZATION, LB_FALLING, AGREES),  # "step-limited" is its reason
    (EQUAL_EPOCHS, OPTIMIZATION, LB_FALLING_REVERSED, DISAGREES),
    (EQUAL_EPOCHS, OPTIMIZATION, LB_UNCONVERGED, AGREES),  # the lecture's "optimization fails" is no failure to judge
    (EQUAL_EPOCHS, GENERALIZATION, HOLDS, AGREES),
    (EQUAL_EPOCHS, GENERALIZATION, LB_FALLING, STEP_LIMITED),
    (EQUAL_EPOCHS, GENERALIZATION, NOISE, WITHIN_NOISE),
    (EQUAL_EPOCHS, GENERALIZATION, REVERSED, DISAGREES),
    (EQUAL_EPOCHS, OPTIMIZATION, UNMEASURED, NOT_MEASURED),
    # given enough updates: each B until its loss plateaus, with an update cap
    (ENOUGH_UPDATES, OPTIMIZATION, HOLDS, AGREES),
    (ENOUGH_UPDATES, GENERALIZATION, REVERSED, DISAGREES),
    (ENOUGH_UPDATES, GENERALIZATION, NOISE_REVERSED, WITHIN_NOISE),
    (ENOUGH_UPDATES, GENERALIZATION, LB_UNCONVERGED, NOT_CONVERGED),
    (ENOUGH_UPDATES, OPTIMIZATION, SB_UNCONVERGED_REVERSED, NOT_CONVERGED),
    (ENOUGH_UPDATES, GENERALIZATION, LB_FALLING, AGREES),  # converged by its own plateau rule
    # equal updates: context beyond the lecture, never a disagreement
    (EQUAL_UPDATES, OPTIMIZATION, HOLDS, CONTEXT),
    (EQUAL_UPDATES, OPTIMIZATION, REVERSED, CONTEXT),
    (EQUAL_UPDATES, GENERALIZATION, NOISE_REVERSED, CONTEXT),
    (EQUAL_UPDATES, GENERALIZATION, LB_UNCONVERGED, CONTEXT),
    (EQUAL_UPDATES, GENERALIZATION, UNMEASURED, NOT_MEASURED),
    # equal training accuracy: Keskar's generalization gap, paired interval rule
    (EQUAL_TRAIN_ACC, GENERALIZATION, HOLDS, AGREES),
    (EQUAL_TRAIN_ACC, GENERALIZATION, REVERSED, DISAGREES),
    (EQUAL_TRAIN_ACC, GENERALIZATION, NOISE, WITHIN_NOISE),
    (EQUAL_TRAIN_ACC, OTHER, LB_UNCONVERGED, NOT_CONVERGED),
    (EQUAL_TRAIN_ACC, OTHER, REVERSED, DISAGREES),
    # timing rows
    (TIMING, OTHER, HOLDS, AGREES),
    (TIMING, OTHER, REVERSED, DISAGREES),
    (TIMING, OTHER, NOISE, WITHIN_NOISE),
    (TIMING, OTHER, BUSY, MACHINE_BUSY),
    (TIMING, OTHER, UNMEASURED, NOT_MEASURED),
]


@pytest.mark.parametrize("protocol, claim, outcome, expected", TABLE)
def test_protocol_by_outcome_gives_the_verdict(protocol, claim, outcome, expected):
    assert verdict(protocol, claim, outcome).word == expected


def test_equal_updates_never_disagree_whatever_the_outcome():
    for holds in (True, False):
        for noise in (True, False):
            assert verdict(EQUAL_UPDATES, GENERALIZATION, Outcome(holds=holds, within_noise=noise)).word == CONTEXT


def test_reasons_name_step_limits_and_unconverged_sides():
    assert verdict(EQUAL_EPOCHS, OPTIMIZATION, LB_FALLING).reason.startswith("step-limited")
    assert "optimization gap" in verdict(EQUAL_EPOCHS, GENERALIZATION, LB_FALLING).reason
    assert verdict(ENOUGH_UPDATES, OPTIMIZATION, LB_UNCONVERGED).reason == \
        "the large batch reached its update cap still falling"
    both = Outcome(small_converged=False, large_converged=False)
    assert verdict(EQUAL_TRAIN_ACC, GENERALIZATION, both).reason == "the small and the large batch missed the target"


def test_unknown_protocol_or_claim_is_refused():
    with pytest.raises(ValueError, match="unknown protocol"):
        verdict("equal seconds", OTHER, HOLDS)
    with pytest.raises(ValueError, match="unknown claim"):
        verdict(EQUAL_EPOCHS, "speed", HOLDS)


@pytest.mark.parametrize("losses, falling", [
    ([1.0, 0.5, 0.4], True),        # 20 % over the last epoch
    ([1.0, 0.5, 0.496], False),     # 0.8 %
    ([1.0, 0.5, 0.494], True),      # 1.2 %
    ([1.0, 0.5, 0.6], False),       # rising
    ([0.5], False), ([], False), ([0.0, 0.0], False),
])
def test_still_falling_is_a_last_epoch_fall_above_one_percent(losses, falling):
    assert still_falling(losses) is falling


def test_seed_outcome_pairs_shared_seeds():
    small = Side(8, {0: 0.90, 1: 0.95, 2: 0.85})
    large = Side(512, {0: 0.89, 1: 0.941, 2: 0.838}, still_falling=True)
    outcome, interval = seed_outcome(SMALL_HIGHER, small, large)
    assert interval.method == "paired t" and not outcome.within_noise and outcome.holds
    assert outcome.large_still_falling
    outcome, _ = seed_outcome(SMALL_LOWER, small, large)
    assert not outcome.holds
    outcome, interval = seed_outcome(SMALL_HIGHER, Side(8, {0: 0.9}), Side(512, {0: 0.8}))
    assert interval is None and outcome.holds and not outcome.within_noise
    outcome, interval = seed_outcome(SMALL_HIGHER, Side(8, {0: 0.9}), Side(512, {}, failed=3))
    assert not outcome.measured and interval is None


def test_counts_in_words_with_correct_number():
    assert count_text(1, "is within noise", "are within noise") == "1 is within noise"
    assert count_text(2, "is within noise", "are within noise") == "2 are within noise"
    sentence = counts_sentence({AGREES: 3, DISAGREES: 0, WITHIN_NOISE: 1, CONTEXT: 2, NOT_MEASURED: 4})
    assert sentence == "3 agree, 1 is within noise and 2 are context beyond the lecture"
    assert counts_sentence({AGREES: 1}) == "1 agrees"
    assert counts_sentence({NOT_MEASURED: 2}) == "no row was measured"


def test_failed_note_counts_runs_left_out():
    assert failed_note({8: 0, 3600: 2}) == ("left out of the means: 2 failed runs (2 at B = 3600; diverged or "
                                             "failed to train)")
    assert failed_note({8: 1}).startswith("left out of the means: 1 failed run (")
    assert failed_note({8: 0}) == ""
