"""The grid extension: η and λ grids grow beyond the edge the best value sits on, and say why they stopped."""

import pytest

from batchlab.analysis.grid import (
    CAP,
    DIVERGENCE,
    INTERIOR,
    NONE_TRAINED,
    PENDING,
    RANGE,
    GridState,
    next_values,
    outcome,
)

LR_GRID = [0.003, 0.01, 0.03, 0.1, 0.3]
MOMENTUM_GRID = [0.0, 0.5, 0.9]


def drive(state, score, diverges=lambda v: False, rounds=10):
    """A driver loop: train what the planner asks (validation score from ``score``) until it asks nothing."""
    asked = []
    for _ in range(rounds):
        todo = next_values(state)
        if not todo:
            return asked
        asked.append(todo)
        for value in todo:
            state.record(value, None if diverges(value) else score(value), diverged=diverges(value))
    raise AssertionError("the planner never finished")


def peak_at(best):
    return lambda value: -abs(value - best)


def test_extension_continues_the_grids_own_factor():
    state = GridState.learning_rate(LR_GRID)
    assert state.extension("high") == [1.0, 3.0, 10.0]  # the 1-3 pattern continues
    assert state.extension("low") == [0.001, 0.0003, 0.0001]
    assert GridState.learning_rate([0.01, 0.02, 0.04]).extension("high") == [0.08, 0.16, 0.32]
    assert GridState.learning_rate([0.01, 0.03, 0.1]).extension("high") == [0.333, 1.11, 3.7]  # edge ratio
    # λ on the scale of 1 − λ: {1, 0.5, 0.1} steps by 5 at the high edge; the low side is λ = 0 already.
    assert GridState.momentum(MOMENTUM_GRID).extension("high") == [0.98, 0.996, 0.9992]
    assert GridState.momentum(MOMENTUM_GRID).extension("low") == []
    assert GridState.momentum([0.9, 0.99]).extension("high") == [0.999, 0.9999, 0.99999]
    assert GridState.momentum([0.9, 0.99]).extension("low") == [0.0]  # 1 − λ = 1: the range ends


# Table: grid, where the validation score peaks, which values diverge → values asked for after the grid,
# the best value, the kind of stop.
CASES = [
    ("η interior", GridState.learning_rate, LR_GRID, peak_at(0.03), lambda v: False, [], 0.03, INTERIOR),
    ("η low edge", GridState.learning_rate, LR_GRID, peak_at(0.0015), lambda v: False,
     [[0.001], [0.0003]], 0.001, INTERIOR),
    ("η high edge", GridState.learning_rate, LR_GRID, peak_at(2.5), lambda v: False,
     [[1.0], [3.0], [10.0]], 3.0, INTERIOR),
    ("η bounded by divergence", GridState.learning_rate, LR_GRID, peak_at(5.0), lambda v: v >= 3.0,
     [[1.0], [3.0]], 1.0, DIVERGENCE),
    ("η cap reached", GridState.learning_rate, LR_GRID, peak_at(100.0), lambda v: False,
     [[1.0], [3.0], [10.0]], 10.0, CAP),
    ("λ interior", GridState.momentum, MOMENTUM_GRID, peak_at(0.5), lambda v: False, [], 0.5, INTERIOR),
    ("λ high edge", GridState.momentum, MOMENTUM_GRID, peak_at(0.985), lambda v: False,
     [[0.98], [0.996]], 0.98, INTERIOR),
    ("λ low edge: the range ends at 0", GridState.momentum, MOMENTUM_GRID, peak_at(-1.0), lambda v: False,
     [], 0.0, RANGE),
    ("λ low edge extended to 0", GridState.momentum, [0.5, 0.9], peak_at(0.3), lambda v: False,
     [[0.0]], 0.5, INTERIOR),
    ("λ bounded by divergence", GridState.momentum, MOMENTUM_GRID, peak_at(1.0), lambda v: v >= 0.99,
     [[0.98], [0.996]], 0.98, DIVERGENCE),
    ("λ cap reached", GridState.momentum, MOMENTUM_GRID, peak_at(1.0), lambda v: False,
     [[0.98], [0.996], [0.9992]], 0.9992, CAP),
]


@pytest.mark.parametrize("name, make, grid, score, diverges, extensions, best, kind", CASES, ids=[c[0] for c in CASES])
def test_grid_extension_table(name, make, grid, score, diverges, extensions, best, kind):
    state = make(grid)
    asked = drive(state, score, diverges)
    assert asked[0] == sorted(grid)  # the grid itself first
    assert asked[1:] == extensions
    result = outcome(state)
    assert (result.best, result.kind) == (best, kind)


def test_outcome_unpacks_as_best_and_reason_in_words():
    state = GridState.learning_rate(LR_GRID)
    drive(state, peak_at(5.0), lambda v: v >= 3.0)
    best, reason = outcome(state)
    assert (best, reason) == (1.0, "bounded by divergence at η = 3")
    state = GridState.learning_rate(LR_GRID)
    drive(state, peak_at(100.0))
    assert outcome(state).reason == "cap of 3 added values reached on the high side"
    state = GridState.momentum(MOMENTUM_GRID)
    drive(state, peak_at(-1.0))
    assert outcome(state).reason == "bounded by λ = 0, the end of its range"
    state = GridState.learning_rate(LR_GRID)
    drive(state, peak_at(0.03))
    assert tuple(outcome(state)) == (0.03, "interior")


def test_a_diverged_value_inside_the_grid_bounds_its_side():
    state = GridState.learning_rate(LR_GRID)
    for value in LR_GRID:
        state.record(value, value, diverged=value == 0.3)  # best among those that trained: 0.1
    assert next_values(state) == []
    assert tuple(outcome(state)) == (0.1, "bounded by divergence at η = 0.3")


def test_pending_while_values_remain():
    state = GridState.learning_rate(LR_GRID)
    assert next_values(state) == LR_GRID and outcome(state).kind == PENDING
    for value in LR_GRID:
        state.record(value, -value)  # the lowest η is best: extend below
    assert next_values(state) == [0.001]
    assert outcome(state).kind == PENDING


def test_when_every_value_diverges_the_grid_steps_down_until_the_cap():
    state = GridState.learning_rate([0.1, 0.3])
    asked = drive(state, peak_at(0.0), diverges=lambda v: True)
    assert asked[1:] == [[0.0333], [0.0111], [0.0037]]
    result = outcome(state)
    assert result.best is None and result.kind == NONE_TRAINED and result.reason.startswith("every value diverged")


def test_a_single_trained_value_is_extended_on_both_sides():
    state = GridState.learning_rate([0.01, 0.1])
    state.record(0.01, 0.5, diverged=True)
    state.record(0.1, 0.9)
    assert next_values(state) == [1.0]  # below it diverged: bounded there; above it, extend


def test_ties_go_to_the_smaller_value_and_values_are_matched_after_rounding():
    state = GridState.learning_rate([0.01, 0.03, 0.1])
    for value in (0.01, 0.03, 0.1):
        state.record(value, 0.9 if value != 0.01 else 0.5)
    state.record(0.3 * (0.1 / 0.3) + 1e-15, 0.9)  # the same 0.1, float noise aside
    assert len(state.trials) == 3 and outcome(state).best == 0.03


@pytest.mark.parametrize("make, grid", [
    (GridState.learning_rate, []), (GridState.learning_rate, [0.0, 0.1]), (GridState.momentum, [0.5, 1.0]),
    (GridState.momentum, [-0.1, 0.5]),
])
def test_bad_grids_are_refused(make, grid):
    with pytest.raises(ValueError):
        make(grid)


def test_a_one_value_grid_cannot_be_extended():
    state = GridState.learning_rate([0.1])
    state.record(0.1, 0.9)
    with pytest.raises(ValueError, match="one value"):
        next_values(state)


def test_the_docstrings_driver_loop():
    state = GridState.learning_rate([0.003, 0.01, 0.03, 0.1])
    asked = drive(state, lambda v: v, diverges=lambda v: v >= 1)
    assert asked == [[0.003, 0.01, 0.03, 0.1], [0.3], [1.0]]
    assert tuple(outcome(state)) == (0.3, "bounded by divergence at η = 1")
