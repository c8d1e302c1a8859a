"""advise's one answer: the rule that picks it under a quiet and a noisy injected clock, the
command that applies it, the learning-rate grid extended at an edge, a B_crit beyond the
measured batch sizes as a bound, and the estimate of a long run's time."""

from __future__ import annotations

import dataclasses
import shlex

import numpy as np
import pytest
import torch

from batchlab.cli import build_parser
from batchlab.config import RunConfig
from batchlab.experiments.advise.choose import (
    BY_STEPS,
    BY_TIME,
    recommend,
    recommend_measured,
    train_command,
    with_times,
)
from batchlab.experiments.advise.experiment import plan_advise, run_advise
from batchlab.experiments.advise.fit import fit_tradeoff, regime
from batchlab.experiments.advise.lr_search import next_learning_rates, search_outcome
from batchlab.experiments.advise.measure import median_interval, time_updates
from batchlab.experiments.advise.report import fit_sentence, recommendation_lines

# ------------------------------------------------------------------ the rule under an injected clock

# Steps to the target and the true time per update: T = S·t is shortest at B = 128; by steps and
# examples (the largest B within 25 % of the least examples, 3,200) the answer is B = 32.
STEPS = {8: 400.0, 32: 110.0, 128: 40.0, 512: 25.0}
TRUE_T = {8: 1.0e-3, 32: 1.2e-3, 128: 2.0e-3, 512: 6.0e-3}


def _rows():
    return [{"batch_size": b, "reached": True, "steps": s, "steps_high": s, "examples": s * b, "lr": 0.1,
             "momentum": 0.9, "lr_at_edge": False, "lr_search": "interior", "regime": None} for b, s in STEPS.items()]


def _advice(timer, load_average):
    """The recommendation as ``advise`` reaches it: timed, and timed again where intervals overlap."""
    def measure(batch_sizes):
        return time_updates(RunConfig(), batch_sizes, {}, 1000, device=torch.device("cpu"), budget_s=0.1,
                            timer=timer, load=lambda: load_average, cpu_count=2)

    return recommend_measured(_rows(), None, None, measure)[0]


def _clock(spread: float, seed: int):
    """Each repeat: the true time × a log-normal factor of σ = ``spread`` (0: exact)."""
    rng = np.random.default_rng(seed)
    return lambda b: TRUE_T[b] * float(np.exp(rng.normal(0.0, spread)))


def test_a_quiet_clock_ranks_by_time_and_is_not_uncertain():
    # advise's own training threads are all the 1-minute load there is: a quiet machine.
    for seed in range(5):
        advice = _advice(_clock(0.01, seed), load_average=float(torch.get_num_threads()))
        assert advice["uncertain"] is None and advice["measured_again"] == []
        assert advice["choice"]["batch_size"] == 128 and advice["choice"]["rule"] == BY_TIME


def test_a_noisy_clock_leaves_the_answer_unchanged_or_marks_it_uncertain():
    """Spikes as large as the ones that flipped the answer under load (×100 for a repeat)."""
    uncertain = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        spiky = lambda b: TRUE_T[b] * (100.0 if rng.random() < 0.3 else 1.0) * float(np.exp(rng.normal(0, 0.3)))
        advice = _advice(spiky, load_average=0.1)
        if advice["uncertain"] is None:
            assert advice["choice"]["batch_size"] == 128
        else:
            uncertain += 1
            assert advice["choice"]["rule"] == BY_STEPS
            assert set(advice["in_question"]) >= {128}
    assert uncertain > 0  # the noise was large enough to matter


def test_a_spike_in_the_first_timing_is_timed_again_not_followed():
    spiked = []

    def one_spike(b):  # the first repeat of B = 128 takes 50 times as long (another process woke up)
        if b == 128 and not spiked:
            spiked.append(b)
            return TRUE_T[b] * 50.0
        return TRUE_T[b]

    advice = _advice(one_spike, load_average=0.1)
    # Five repeats: the range of B = 128 reaches 50 × its time and overlaps every other B's.
    assert advice["measured_again"] == [8, 32, 128, 512]
    # Ten repeats, one of them the spike: the median's interval (2nd … 9th) is clear of the others now.
    assert advice["uncertain"] is None and advice["choice"]["batch_size"] == 128


def test_a_busy_machine_gives_the_same_answer_whatever_the_clock_says():
    answers = set()
    for seed in range(10):
        advice = _advice(_clock(1.5, seed), load_average=6.0)
        assert advice["uncertain"] and "busy" in advice["uncertain"].lower()
        answers.add(advice["choice"]["batch_size"])
    assert answers == {32}  # steps and examples only: no clock moves it


def test_overlapping_times_fall_back_to_steps_and_examples_among_those_in_question():
    rows = _rows()
    with_times(rows, {b: {"per_update_s": TRUE_T[b], "low_s": TRUE_T[b] * 0.5, "high_s": TRUE_T[b] * 2}
                      for b in STEPS})
    advice = recommend(rows, None, None, None)
    assert "overlaps" in advice["uncertain"]
    # B = 128 (0.04–0.16 s) overlaps 32 (0.066–0.26 s) and 512 (0.075–0.3 s), not 8 (0.2–0.8 s).
    assert advice["in_question"] == [128, 32, 512]
    assert advice["choice"]["batch_size"] == 32 and advice["choice"]["rule"] == BY_STEPS


def test_median_interval_is_the_sign_test_interval():
    assert median_interval([5, 1, 3, 2, 4]) == (1, 5)  # five samples: the range (94 %)
    assert median_interval(list(range(1, 11))) == (2, 9)  # ten: the 2nd and 9th (98 %)


# ------------------------------------------------------------------ the command


def _train_flags_parse(command: str):
    words = shlex.split(command)
    assert words[:2] == ["batchlab", "train"]
    return build_parser().parse_args(words[1:])


def test_the_recommended_command_is_a_valid_train_command():
    choice = {"batch_size": 64, "lr": 0.0612, "momentum": 0.9, "steps": 150.0, "steps_high": 170}
    template = RunConfig(dataset="mnist-5k", model="mlp", hidden=(16,), val_fraction=0.2).to_dict()
    args = _train_flags_parse(train_command(choice, template, 256, None))
    assert (args.batch_size, args.lr, args.momentum, args.hidden, args.val_fraction) == (64, 0.0612, 0.9, [16], 0.2)
    assert args.epochs == 43  # ⌈170 · 64 / 256⌉: every seed reached the target by then
    files = train_command(choice, template, 256, ("my dir/net.py:make_model", "data.py:load_data"))
    args = _train_flags_parse(files)
    assert args.model_file == "my dir/net.py:make_model" and args.model is None and args.hidden is None


def test_a_training_subset_is_applied_in_python_which_train_cannot_say():
    import batchlab

    choice = {"batch_size": 64, "lr": 0.0612, "momentum": 0.9, "steps": 150.0, "steps_high": 170}
    template = RunConfig(dataset="mnist-5k", model="mlp", hidden=(16,), train_subset=256).to_dict()
    call = train_command(choice, template, 256, None)
    config = eval(call.removeprefix("batchlab.train(").removesuffix(")"), {"batchlab": batchlab})
    assert (config.train_subset, config.hidden, config.batch_size, config.epochs) == (256, (16,), 64, 43)


# ------------------------------------------------------------------ the learning-rate grid at an edge


@pytest.fixture(scope="module")
def plan():
    template = RunConfig(dataset="mnist-5k", model="mlp", hidden=(16,), train_subset=256, device="cpu")
    # The target is met by the initial weights: these tests are about what surrounds the training.
    return plan_advise("quick", template, batch_sizes=[32], seeds=1, lr_points=3, lr_factor=3.0, min_updates=100,
                       target="train_loss=10")


def _entry(lr, status, steps=None, momentum=0.0):
    return {"lr": lr, "momentum": momentum, "status": status, "steps": steps}


def test_a_best_learning_rate_on_an_edge_extends_its_grid(plan):
    low, middle, high = plan.learning_rates(32, 0.0)
    entries = [_entry(low, "reached", 90), _entry(middle, "reached", 60), _entry(high, "reached", 40),
               *[_entry(lr, "not reached", momentum=0.9) for lr in plan.learning_rates(32, 0.9)]]
    extra = next_learning_rates(plan, 32, entries, 0.0)
    assert extra == [pytest.approx(high * 3, rel=1e-2)]
    assert search_outcome(plan, 32, 0.0, entries).reason == "values still to train"
    # One step further is worse: the best is interior now.
    done = entries + [_entry(extra[0], "reached", 55)]
    assert next_learning_rates(plan, 32, done, 0.0) == []
    assert search_outcome(plan, 32, 0.0, done).kind == "interior"
    # One step further diverges: the search is bounded by divergence, not left at the edge.
    bounded = entries + [_entry(extra[0], "diverged")]
    assert next_learning_rates(plan, 32, bounded, 0.0) == []
    assert search_outcome(plan, 32, 0.0, bounded).reason.startswith("bounded by divergence at η = ")


# ------------------------------------------------------------------ B_crit beyond the measured batch sizes


def test_a_curve_still_in_perfect_scaling_gives_a_bound_not_a_number():
    # S ∝ 1/B up to B = 16 with 3 % noise, 3 seeds: the fit lands B_crit in the thousands.
    rng = np.random.default_rng(4)
    steps = {b: list(1000 / b * np.exp(rng.normal(0, 0.03, 3))) for b in (1, 2, 4, 8, 16)}
    fit = fit_tradeoff(steps)
    assert fit.b_crit > 16  # what the fit says, unbounded by any data
    assert fit.b_crit_bound == (">", 16) and fit.b_crit_text == "B_crit > 16"
    assert fit.unresolved.startswith("B_crit > 16")
    assert regime(16, fit) is None
    record_fit = fit.to_dict()
    assert "B_crit > 16" in fit_sentence({"fit": record_fit})
    rows = [{"batch_size": b, "reached": True, "steps": float(np.mean(s)), "steps_high": max(s),
             "examples": float(np.mean(s)) * b, "lr": 0.1, "momentum": 0.0} for b, s in steps.items()]
    advice = recommend(rows, fit, None, None) | {"command": "batchlab train …"}
    assert advice["b_crit"] is None and advice["b_crit_bound"] == [">", 16]
    lines = recommendation_lines({"recommendation": advice, "plan": {"target": {"key": "val_acc>=0.9"}}})
    assert any(line.startswith("B_crit > 16") for line in lines)


def test_a_b_crit_within_the_measured_batch_sizes_stays_a_number():
    fit = fit_tradeoff({b: [100 * (1 + 64 / b)] for b in (1, 4, 16, 64, 256, 1024)})
    assert fit.b_crit_bound is None and fit.unresolved is None
    assert fit.b_crit_text == "B_crit = 64"


# ------------------------------------------------------------------ the estimate of a long run


def _tiny_plan(plan):
    return dataclasses.replace(plan, timing_budget_s=0.01, noise_batches=2, noise_examples=32)


@pytest.mark.slow
def test_a_long_run_prints_one_estimate_line_first(plan):
    tiny = dataclasses.replace(_tiny_plan(plan), lr_points=1, min_updates=4, budget_examples=4)
    ticks = iter(range(0, 10 ** 9, 1000))  # every clock reading 1,000 s later: a "long" pilot
    said: list[str] = []
    result = run_advise(tiny, None, log=lambda _: None, notice=said.append, clock=lambda: float(next(ticks)),
                        measure_noise=False, time_batches=False)
    assert len(said) == 1 and said[0].startswith("estimated time: up to about ")
    assert result.recommendation["uncertain"] == "no batch size was timed"
    quiet: list[str] = []
    run_advise(tiny, None, log=lambda _: None, notice=quiet.append, clock=lambda: 0.0, measure_noise=False,
               time_batches=False)
    assert quiet == []  # a short run says nothing
