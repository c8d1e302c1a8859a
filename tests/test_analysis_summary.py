"""The lecture's summary table: each row's verdict is decided from the numbers, in both directions."""

import math
import statistics

import pytest

from batchlab.analysis.accuracy import AccuracyCurve, AccuracyPanel, AccuracyPoint
from batchlab.analysis.noise import BatchSizeNoise, NoiseReport
from batchlab.analysis.summary import (
    ABOUT_SAME,
    AGREES,
    CONTEXT,
    DISAGREES,
    LARGE_LOWER,
    LOSS_FALLING_FAST,
    MACHINE_BUSY,
    NOT_CONVERGED,
    NOT_MEASURED,
    SAME_SPEED_RATIO,
    SMALL_HIGHER,
    SMALL_LOWER,
    STEP_LIMITED,
    WITHIN_NOISE,
    Measured,
    convergence_threshold,
    judge,
    machine_busy,
    primary_panel,
    protocol_panels,
    summary_table,
)
from batchlab.timing import TimingPoint


def timing_point(batch_size, per_update, device="cpu", path="resident", per_epoch=None, spread=0.01):
    n = 60000
    updates = -(-n // batch_size)
    return TimingPoint(path=path, device=device, device_name=f"test {device}", model="mlp", dataset="mnist-5k",
                       optimizer="momentum", batch_size=batch_size, n_examples=n, updates_per_epoch=updates,
                       per_update_s=[per_update * (1 - spread), per_update, per_update, per_update,
                                     per_update * (1 + spread)],
                       updates_per_repeat=1, warmup_updates=1,
                       per_epoch_s=per_epoch if per_epoch is not None else per_update * updates,
                       extrapolated=True, synthetic_data=True)


def accuracy_point(batch_size, train, val, std=0.01, seeds=3, full=False, loss_drop=None, last_drop=None):
    """A point known only by its means and standard deviations (no per-seed values: Welch's interval)."""
    return AccuracyPoint(batch_size=batch_size, full_batch=full, seeds=list(range(seeds)), n_diverged=0,
                         updates=None, means={"train_acc": train, "val_acc": val, "test_acc": None},
                         stds={"train_acc": std, "val_acc": std, "test_acc": None}, final_loss_drop=loss_drop,
                         last_epoch_drop=last_drop)


def seeded_point(batch_size, train_by_seed, failed=0, failures=None):
    """A point with per-seed training (and validation) accuracies and ``failed`` runs left out."""
    values = list(train_by_seed.values())
    mean, std = statistics.fmean(values), statistics.stdev(values)
    return AccuracyPoint(batch_size=batch_size, full_batch=False, seeds=sorted(train_by_seed), n_diverged=failed,
                         updates=None, means={"train_acc": mean, "val_acc": mean}, stds={"train_acc": std, "val_acc": std},
                         seed_values={"train_acc": dict(train_by_seed), "val_acc": dict(train_by_seed)},
                         failures=failures or {})


def noise_report(small_noise, large_noise, relative_se=0.0):
    def entry(batch, noise):
        return BatchSizeNoise(batch, [1.0], [1.0], noise, relative_se * noise, noise)

    return NoiseReport(n_train=1000, n_parameters=10, full_loss=0.1, full_grad_norm=0.01,
                       batch_sizes=[entry(8, small_noise), entry(512, large_noise)], scale=None, scan=None)


def test_judge_each_verdict():
    small, large = Measured(8, 1.0), Measured(512, 2.0)
    assert judge(SMALL_LOWER, small, large) == AGREES
    assert judge(SMALL_HIGHER, small, large) == DISAGREES
    assert judge(LARGE_LOWER, small, large) == DISAGREES
    assert judge(SMALL_LOWER, small, None) == NOT_MEASURED
    overlapping = Measured.mean_se(8, 1.0, 0.3), Measured.mean_se(512, 1.5, 0.3)
    assert judge(SMALL_HIGHER, *overlapping) == WITHIN_NOISE
    apart = Measured.mean_se(8, 1.0, 0.1), Measured.mean_se(512, 1.5, 0.1)
    assert judge(SMALL_LOWER, *apart) == AGREES
    assert judge(ABOUT_SAME, Measured(1, 1.0), Measured(1000, SAME_SPEED_RATIO)) == AGREES
    assert judge(ABOUT_SAME, Measured(1, 1.0), Measured(1000, SAME_SPEED_RATIO * 1.01)) == DISAGREES


def test_table_agrees_with_the_lecture_on_lecture_like_numbers():
    timing = [timing_point(1, 1e-4), timing_point(100, 1e-3), timing_point(10000, 5e-2)]
    timing += [timing_point(1, 1e-4, device="cuda"), timing_point(1000, 1.5e-4, device="cuda"),
               timing_point(60000, 5e-3, device="cuda")]
    panel = AccuracyPanel("mnist-5k", "mlp", None, "epochs", 5, [AccuracyCurve(
        {"momentum": 0.9}, "momentum, λ = 0.9",
        [accuracy_point(8, 0.97, 0.95), accuracy_point(128, 0.90, 0.89), accuracy_point(3600, 0.6, 0.6, full=True)])])
    table = summary_table(timing, noise_report(0.03, 0.0002, relative_se=0.1), panel)
    verdicts = {row.aspect.split(" — ")[0]: row.verdict for row in table.rows}
    assert verdicts["Speed of one update, no parallelism (CPU)"] == AGREES
    assert verdicts["Speed of one update, with parallelism (GPU)"] == AGREES  # 1.5× from B = 1 to B = 1000
    assert verdicts["Time of one epoch (CPU)"] == AGREES
    assert verdicts["Time of one epoch (GPU)"] == AGREES
    assert verdicts["Gradient"] == AGREES
    assert verdicts["Optimization (training accuracy)"] == AGREES
    assert verdicts["Generalization (validation accuracy)"] == AGREES
    gpu_row = next(r for r in table.rows if "GPU" in r.aspect and "update" in r.aspect)
    assert gpu_row.large.batch_size == 1000  # "very large" batches are left out of the "same speed" row
    assert table.counts()[AGREES] == len(table.rows)


def test_table_says_so_when_the_numbers_contradict_the_lecture():
    # A machine where the small batch is slower per update, and a run where large batches win.
    timing = [timing_point(1, 5e-3), timing_point(10000, 1e-3)]
    panel = AccuracyPanel("mnist-5k", "mlp", None, "epochs", 5, [AccuracyCurve(
        {"momentum": 0.0}, "momentum, λ = 0",
        [accuracy_point(8, 0.80, 0.79), accuracy_point(512, 0.95, 0.94)])])
    table = summary_table(timing, noise_report(0.001, 0.03), panel)
    verdicts = {row.aspect.split(" — ")[0]: row.verdict for row in table.rows}
    assert verdicts["Speed of one update, no parallelism (CPU)"] == DISAGREES
    assert "large batch is faster per update" in next(r.finding for r in table.rows if r.aspect.endswith("(CPU)")
                                                      and "update" in r.aspect)
    assert verdicts["Speed of one update, with parallelism (GPU)"] == NOT_MEASURED
    assert verdicts["Gradient"] == DISAGREES
    assert verdicts["Optimization (training accuracy)"] == DISAGREES
    assert verdicts["Generalization (validation accuracy)"] == DISAGREES


def test_overlapping_seed_spreads_are_within_noise():
    panel = AccuracyPanel("mnist-5k", "mlp", None, "epochs", 5, [AccuracyCurve(
        {"momentum": 0.0}, "momentum, λ = 0",
        [accuracy_point(8, 0.90, 0.90, std=0.05), accuracy_point(512, 0.89, 0.89, std=0.05)])])
    table = summary_table([], None, panel)
    verdicts = {row.aspect.split(" — ")[0]: row.verdict for row in table.rows}
    assert verdicts["Optimization (training accuracy)"] == WITHIN_NOISE
    assert verdicts["Gradient"] == NOT_MEASURED
    assert verdicts["Speed of one update, no parallelism (CPU)"] == NOT_MEASURED


def test_summary_compares_the_epoch_budget_panel_with_most_batch_sizes():
    def panel(kind, sizes, dataset="mnist-5k"):
        return AccuracyPanel(dataset, "mlp", None, kind, 5, [AccuracyCurve(
            {}, "c", [accuracy_point(b, 0.5, 0.5) for b in sizes])])

    few, many, updates = panel("epochs", [8, 64]), panel("epochs", [8, 64, 512]), panel("updates", [8, 64, 512, 1024])
    assert primary_panel([few, updates, many]) is many
    other = panel("epochs", [8, 64, 512, 1024], dataset="cifar10")
    assert primary_panel([many, other], dataset="mnist-5k") is many
    assert primary_panel([]) is None
    assert summary_table().to_dict()["counts"][NOT_MEASURED] == len(summary_table().rows)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_measurements_are_not_measured(value):
    assert judge(SMALL_LOWER, Measured(8, value), Measured(64, 1.0)) == NOT_MEASURED


def test_heavy_tailed_gradient_noise_is_compared_on_the_log_scale():
    # One batch in 32 with a huge gradient: a standard error of 70 % of the mean. On the linear scale
    # mean − 2 se < 0 would overlap anything smaller; on the log scale a 300× gap is not noise.
    report = noise_report(1.33, 0.0044)
    report.batch_sizes[0].noise_se = 0.93
    report.batch_sizes[1].noise_se = 0.00037
    row = next(r for r in summary_table([], report, None).rows if r.aspect == "Gradient")
    assert row.small.low > 0 and row.small.low * row.small.high == pytest.approx(1.33**2)
    assert row.verdict == AGREES
    report.batch_sizes[1].noise = 1.0
    row = next(r for r in summary_table([], report, None).rows if r.aspect == "Gradient")
    assert row.verdict == WITHIN_NOISE


def panel_of(points, kind="epochs", budget=5, dataset="mnist-5k"):
    return AccuracyPanel(dataset, "mlp", None, kind, budget, [AccuracyCurve({"momentum": 0.9}, "λ = 0.9", points)])


def accuracy_verdicts(table):
    return {row.aspect: row.verdict for row in table.rows if row.quantity.endswith("accuracy")}


@pytest.mark.parametrize("classes, threshold", [(10, 0.5), (2, 0.75), (3, 2 / 3), (100, 0.5), (None, 0.5)])
def test_convergence_threshold_is_near_chance(classes, threshold):
    assert convergence_threshold(classes) == pytest.approx(threshold)


def test_at_equal_epochs_a_large_batch_near_chance_is_step_limited_not_unconverged():
    # The lecture's own setting: B = 8 well trained, the full batch after 4 updates at 0.138 training
    # accuracy. That is the lecture's "optimization fails": the training row agrees, step-limited, and the
    # generalization row is step-limited (its gap is partly an optimization gap).
    table = summary_table([], None, panel_of([accuracy_point(8, 0.97, 0.95), accuracy_point(3600, 0.138, 0.14)]))
    verdicts = accuracy_verdicts(table)
    assert verdicts == {"Optimization (training accuracy) — equal epochs (5)": AGREES,
                        "Generalization (validation accuracy) — equal epochs (5)": STEP_LIMITED}
    training = next(r for r in table.rows if r.quantity == "training accuracy")
    assert "step-limited" in training.finding and "B = 3600: training accuracy 0.138 < 0.5" in training.finding
    # Just above the threshold, with a loss no longer falling, both rows agree.
    table = summary_table([], None, panel_of([accuracy_point(8, 0.97, 0.95), accuracy_point(3600, 0.51, 0.5)]))
    assert set(accuracy_verdicts(table).values()) == {AGREES}


def test_given_enough_updates_a_side_near_chance_or_still_falling_fast_is_not_converged():
    table = summary_table([], None, panel_of([accuracy_point(8, 0.97, 0.95), accuracy_point(3600, 0.138, 0.14)],
                                             kind="patience", budget=3))
    rows = [r for r in table.rows if r.quantity.endswith("accuracy")]
    assert rows and all(r.verdict == NOT_CONVERGED for r in rows)
    assert "B = 3600: training accuracy 0.138 < 0.5" in rows[0].finding
    fast = LOSS_FALLING_FAST * math.log(10)  # mnist-5k has ten classes
    points = [accuracy_point(8, 0.97, 0.95, loss_drop=0.01), accuracy_point(512, 0.80, 0.79, loss_drop=fast * 1.1)]
    table = summary_table([], None, panel_of(points, kind="patience", budget=3))
    assert set(accuracy_verdicts(table).values()) == {NOT_CONVERGED}
    assert "B = 512: training loss still falling" in table.rows[-1].finding
    points[1] = accuracy_point(512, 0.80, 0.79, loss_drop=fast * 0.9)
    assert set(accuracy_verdicts(summary_table([], None, panel_of(points, kind="patience", budget=3))).values()) \
        == {AGREES}
    # The small side not converged counts as well: it would otherwise "disagree".
    points = [accuracy_point(8, 0.80, 0.79, loss_drop=0.3), accuracy_point(512, 0.95, 0.94)]
    assert set(accuracy_verdicts(summary_table([], None, panel_of(points, kind="patience", budget=3))).values()) \
        == {NOT_CONVERGED}
    # Unknown number of classes: only the accuracy rule applies.
    points = [accuracy_point(8, 0.97, 0.95), accuracy_point(512, 0.80, 0.79, loss_drop=1.0)]
    table = summary_table([], None, panel_of(points, kind="patience", budget=3, dataset="my-data"))
    assert set(accuracy_verdicts(table).values()) == {AGREES}


def test_at_equal_epochs_a_large_batch_whose_last_epoch_still_fell_is_step_limited():
    points = [accuracy_point(8, 0.97, 0.95), accuracy_point(512, 0.90, 0.89, last_drop=0.02)]
    verdicts = accuracy_verdicts(summary_table([], None, panel_of(points)))
    assert sorted(verdicts.values()) == [AGREES, STEP_LIMITED]
    points[1] = accuracy_point(512, 0.90, 0.89, last_drop=0.005)  # under 1 %: no longer falling
    assert set(accuracy_verdicts(summary_table([], None, panel_of(points))).values()) == {AGREES}
    # The small batch still falling changes nothing at equal epochs: the lecture compares there.
    points = [accuracy_point(8, 0.80, 0.79, loss_drop=0.3, last_drop=0.1), accuracy_point(512, 0.95, 0.94)]
    assert set(accuracy_verdicts(summary_table([], None, panel_of(points))).values()) == {DISAGREES}


def test_equal_updates_rows_are_context_never_disagreements():
    points = [accuracy_point(8, 0.80, 0.79), accuracy_point(512, 0.95, 0.94)]
    table = summary_table([], None, panel_of(points, kind="updates", budget=450))
    assert set(accuracy_verdicts(table).values()) == {CONTEXT}
    assert table.counts()[DISAGREES] == 0 and "context beyond the lecture" in table.counts_sentence()


def test_paired_seeds_decide_where_the_spreads_overlap():
    # Seeds differ a lot, but in each seed the small batch is ahead by about 0.01: paired, not noise.
    small = seeded_point(8, {0: 0.80, 1: 0.90, 2: 0.85, 3: 0.95})
    large = seeded_point(512, {0: 0.79, 1: 0.888, 2: 0.841, 3: 0.941})
    row = next(r for r in summary_table([], None, panel_of([small, large])).rows if r.quantity == "training accuracy")
    assert row.verdict == AGREES and row.difference.method == "paired t" and not row.difference.within_noise
    # The same values under other seeds cannot be paired: Welch's interval, within noise, with a power line.
    large = seeded_point(512, {4: 0.79, 5: 0.888, 6: 0.841, 7: 0.941})
    row = next(r for r in summary_table([], None, panel_of([small, large])).rows if r.quantity == "training accuracy")
    assert row.verdict == WITHIN_NOISE and row.difference.method == "Welch t"
    assert row.power.startswith("to resolve a difference of 1 point at this spread (s = 6.46 points), 656 ") and row.power in row.finding
    assert "seeds per batch size are needed" in row.power


def test_failed_runs_are_left_out_and_counted_in_the_finding():
    small = seeded_point(8, {0: 0.97, 1: 0.96, 2: 0.98})
    large = seeded_point(512, {0: 0.90, 1: 0.91}, failed=2, failures={"diverged": 1, "failed to train": 1})
    row = next(r for r in summary_table([], None, panel_of([small, large])).rows if r.quantity == "training accuracy")
    assert "2 runs left out of the means: 1 diverged, 1 failed to train (at B = 512: 2)" in row.finding
    assert row.large.value == pytest.approx(0.905) and "2 failed (left out)" in row.large.detail


def test_one_seed_a_side_says_the_means_alone_decide():
    points = [seeded_point(8, {0: 0.97, 1: 0.96}), AccuracyPoint(
        batch_size=512, full_batch=False, seeds=[0], n_diverged=0, updates=None, means={"train_acc": 0.9},
        stds={"train_acc": 0.0}, seed_values={"train_acc": {0: 0.9}})]
    row = next(r for r in summary_table([], None, panel_of(points)).rows if r.quantity == "training accuracy")
    assert row.verdict == AGREES and row.difference is None
    assert "fewer than two seeds a side: no interval" in row.finding


def test_counts_sentence_has_correct_number():
    points = [accuracy_point(8, 0.90, 0.90, std=0.05), accuracy_point(512, 0.89, 0.89, std=0.05)]
    table = summary_table([], None, panel_of(points))
    assert table.counts_sentence() == "2 are within noise"
    assert table.to_dict()["counts_sentence"] == "2 are within noise"


def test_each_accuracy_row_names_its_protocol():
    points = [accuracy_point(8, 0.97, 0.95), accuracy_point(128, 0.90, 0.89)]
    panels = [panel_of(points, "epochs", 4), panel_of(points, "updates", 450), panel_of(points, "patience", 3)]
    table = summary_table([], None, panels)
    protocols = [r.protocol for r in table.rows if r.quantity == "training accuracy"]
    assert protocols == ["equal epochs (4)", "equal updates (450)",
                         "given enough updates (until the training loss stops improving, patience 3, update cap)"]
    assert all(r.protocol and r.protocol in r.aspect for r in table.rows if r.quantity.endswith("accuracy"))
    assert protocol_panels([panels[2], panels[0], panels[1]]) == panels


def spread_point(batch_size, median, spread, per_epoch=None):
    """A timing point whose five repeats run evenly from median · (1 − spread) to median · (1 + spread)."""
    point = timing_point(batch_size, median, per_epoch=per_epoch)
    repeats = [median * (1 + spread * k / 2) for k in (-2, -1, 0, 1, 2)]
    return TimingPoint.from_dict(point.to_dict() | {"per_update_s": repeats})


def test_timing_rows_with_overlapping_quartiles_are_within_noise():
    # Medians 1.0 and 1.2 ms, quartiles ±25 %: 0.75–1.25 and 0.9–1.5 ms overlap.
    table = summary_table([spread_point(1, 1.0e-3, 0.5), spread_point(100, 1.2e-3, 0.5)])
    row = next(r for r in table.rows if r.aspect == "Speed of one update, no parallelism (CPU)")
    assert (row.small.low, row.small.high) == pytest.approx((0.75e-3, 1.25e-3))
    assert row.verdict == WITHIN_NOISE
    table = summary_table([spread_point(1, 1.0e-3, 0.1), spread_point(100, 1.2e-3, 0.1)])
    row = next(r for r in table.rows if r.aspect == "Speed of one update, no parallelism (CPU)")
    assert row.verdict == AGREES


def test_epoch_rows_carry_the_update_spread():
    table = summary_table([spread_point(1, 1.0e-4, 0.5, per_epoch=6.0), spread_point(100, 5.0e-3, 0.5, per_epoch=5.5)])
    row = next(r for r in table.rows if r.aspect == "Time of one epoch (CPU)")
    assert (row.small.low, row.small.high) == pytest.approx((4.5, 7.5))
    assert row.verdict == WITHIN_NOISE


@pytest.mark.parametrize("load, busy", [
    ({"before": 3.5, "after": 3.0, "cpu_count": 2, "own_threads": 1}, True),
    ({"before": 0.5, "after": 4.0, "cpu_count": 2, "own_threads": 1}, True),
    ({"before": 1.5, "after": 2.5, "cpu_count": 2, "own_threads": 1}, False),
    ({"before": None, "after": None, "cpu_count": 2}, False),
    (None, False),
])
def test_machine_busy_is_load_above_the_cores(load, busy):
    assert machine_busy(load) is busy


def test_a_busy_machine_leaves_cpu_timing_rows_unjudged():
    timing = [timing_point(1, 1e-4), timing_point(10000, 5e-2), timing_point(1, 1e-4, device="cuda"),
              timing_point(1000, 1.5e-4, device="cuda")]
    table = summary_table(timing, busy=True)
    verdicts = {row.aspect: row.verdict for row in table.rows}
    assert verdicts["Speed of one update, no parallelism (CPU)"] == MACHINE_BUSY
    assert verdicts["Time of one epoch (CPU)"] == MACHINE_BUSY
    assert verdicts["Speed of one update, with parallelism (GPU)"] == AGREES
    assert verdicts["Time of one epoch (GPU)"] == AGREES


# ----------------------------------------------------------------------------- flat vs sharp rows


def flat_sharp(sb_test, lb_test, sb_phi, lb_phi, sb_train=(0.99, 0.991, 0.992), lb_train=(0.991, 0.99, 0.993)):
    from batchlab.experiments.gap.tables import NetworkNumbers, RegimeNumbers

    return NetworkNumbers("F1", "mlp", "fashion-mnist", 10000,
                          RegimeNumbers(32, tuple(sb_train), tuple(sb_test), {("full", 1e-3): tuple(sb_phi),
                                                                              ("full", 5e-4): (1.0,) * len(sb_phi)}),
                          RegimeNumbers(1024, tuple(lb_train), tuple(lb_test), {("full", 1e-3): tuple(lb_phi),
                                                                                ("full", 5e-4): (9.0,) * len(lb_phi)}))


def test_flat_vs_sharp_rows_agree_when_small_tests_better_and_sits_flatter():
    from batchlab.analysis.summary import sharp_minima_rows

    rows = sharp_minima_rows(flat_sharp((0.85, 0.851, 0.852), (0.83, 0.829, 0.831), (10, 11, 12), (30, 31, 33)), 0.99)
    assert [r.quantity for r in rows] == ["test accuracy", "sharpness φ"]
    assert [r.verdict for r in rows] == [AGREES, AGREES]
    assert all(r.protocol == "equal training accuracy (99%)" for r in rows)
    assert "ε = 0.001" in rows[1].aspect  # the paper's headline ε of the full space
    assert rows[0].small.batch_size == 32 and rows[0].large.batch_size == 1024


def test_flat_vs_sharp_rows_disagree_or_stay_within_noise_from_the_numbers():
    from batchlab.analysis.summary import sharp_minima_rows

    reversed_rows = sharp_minima_rows(flat_sharp((0.82, 0.821, 0.822), (0.84, 0.841, 0.842), (40, 41, 42),
                                                 (10, 11, 12)), 0.99)
    assert [r.verdict for r in reversed_rows] == [DISAGREES, DISAGREES]
    noisy = sharp_minima_rows(flat_sharp((0.83, 0.85, 0.84), (0.835, 0.845, 0.84), (10, 30, 20), (12, 28, 21)), 0.99)
    assert [r.verdict for r in noisy] == [WITHIN_NOISE, WITHIN_NOISE]
    assert all("within the noise" in r.finding and "better by" not in r.finding for r in noisy)


def test_flat_vs_sharp_is_not_converged_below_the_target_or_at_unequal_training_accuracy():
    from batchlab.analysis.summary import sharp_minima_rows

    numbers = flat_sharp((0.85, 0.851, 0.852), (0.83, 0.829, 0.831), (10, 11, 12), (30, 31, 33))
    missed = sharp_minima_rows(numbers, 0.99, missed_target=1)
    assert [r.verdict for r in missed] == [NOT_CONVERGED, NOT_CONVERGED]
    assert "1 run ended at the epoch cap" in missed[0].finding
    unequal = sharp_minima_rows(flat_sharp((0.85, 0.851, 0.852), (0.83, 0.829, 0.831), (10, 11, 12), (30, 31, 33),
                                           lb_train=(0.95, 0.951, 0.952)), 0.99)
    assert all(r.verdict == NOT_CONVERGED and "not equal" in r.finding for r in unequal)
    assert sharp_minima_rows(None) == []


def test_flat_vs_sharp_rows_close_the_summary_table():
    from batchlab.analysis.summary import sharp_minima_rows

    rows = sharp_minima_rows(flat_sharp((0.85, 0.851, 0.852), (0.83, 0.829, 0.831), (10, 11, 12), (30, 31, 33)), None)
    table = summary_table(sharp_minima=rows)
    assert table.rows[-2:] == rows
    assert rows[0].protocol == "until the training loss stops improving (Keskar et al.)"


def test_runs_given_enough_updates_under_an_epoch_cap_are_not_judged():
    """Patience runs stored before the update cap (max_updates None: 10 epochs were 10 full-batch
    updates) make no 'given enough updates' row; those with a cap do."""
    points = [seeded_point(128, {0: 0.99, 1: 0.98}), seeded_point(3600, {0: 0.97, 1: 0.975})]
    capped = AccuracyCurve({"momentum": 0.9, "max_updates": 100}, "update cap = 100", points)
    epoch_capped = AccuracyCurve({"momentum": 0.9, "max_updates": None}, "update cap = None", points)
    panel = AccuracyPanel("mnist-5k", "mlp", None, "patience", 2, [capped, epoch_capped])
    rows = [r for r in summary_table([], None, [panel]).rows if r.quantity == "training accuracy"]
    assert len(rows) == 1 and "update cap = 100" in rows[0].aspect
