"""Paired and unpaired intervals of a difference, the within-noise rule, and the seeds a difference needs."""

import math

import pytest
from scipy import stats as scipy_stats

from batchlab.analysis.stats import (
    BOOTSTRAP,
    MAX_SEEDS,
    PAIRED,
    WELCH,
    bootstrap_interval,
    compare,
    paired_differences,
    paired_interval,
    power_line,
    seeds_needed,
    welch_interval,
)

SB = {0: 0.86, 1: 0.85, 2: 0.87, 3: 0.84}
LB = {0: 0.85, 1: 0.838, 2: 0.861, 3: 0.829}


def test_paired_differences_use_the_shared_seeds_only():
    assert paired_differences({0: 1.0, 1: 2.0, 5: 3.0}, {1: 0.5, 0: 0.25, 7: 1.0}) == {0: 0.75, 1: 1.5}
    assert paired_differences({0: 1.0, 1: math.nan}, {0: 0.0, 1: 0.0}) == {0: 1.0}


def test_paired_interval_by_hand():
    # Differences 1, 2, 3: mean 2, s = 1, t_{0.975, 2} = 4.3027: 2 ± 4.3027 / √3 = 2 ± 2.4841.
    interval = paired_interval({0: 2.0, 1: 4.0, 2: 6.0}, {0: 1.0, 1: 2.0, 2: 3.0})
    assert (interval.estimate, interval.spread, interval.n, interval.df) == (2.0, 1.0, 3, 2.0)
    assert interval.low == pytest.approx(2 - 2.48414, abs=1e-4)
    assert interval.high == pytest.approx(2 + 2.48414, abs=1e-4)
    assert interval.method == PAIRED and interval.within_noise  # the interval reaches below 0


def test_paired_interval_matches_scipy_ttest_rel():
    seeds = sorted(SB)
    reference = scipy_stats.ttest_rel([SB[s] for s in seeds], [LB[s] for s in seeds]).confidence_interval(0.95)
    interval = paired_interval(SB, LB)
    assert (interval.low, interval.high) == pytest.approx((reference.low, reference.high))
    assert not interval.within_noise  # SB better by 0.009–0.012 in every seed: 0 is outside


def test_pairing_resolves_what_the_unpaired_interval_cannot():
    # Seeds differ a lot from each other, but within a seed SB is always ahead by about 0.01.
    sb = {0: 0.80, 1: 0.90, 2: 0.85, 3: 0.95}
    lb = {0: 0.79, 1: 0.888, 2: 0.841, 3: 0.941}
    assert not paired_interval(sb, lb).within_noise
    assert welch_interval(list(sb.values()), list(lb.values())).within_noise


def test_within_noise_exactly_when_the_interval_contains_zero():
    interval = paired_interval({0: 1.0, 1: 1.0}, {0: 1.0, 1: 1.0})  # all differences 0: the point 0
    assert (interval.low, interval.high) == (0.0, 0.0) and interval.within_noise
    interval = paired_interval({0: 1.0, 1: 1.0}, {0: 0.5, 1: 0.5})  # all differences 0.5, no spread
    assert (interval.low, interval.high) == (0.5, 0.5) and not interval.within_noise


def test_welch_interval_matches_scipy():
    a, b = [0.86, 0.85, 0.87, 0.84, 0.88], [0.80, 0.86, 0.83]
    reference = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    interval = welch_interval(a, b)
    assert (interval.low, interval.high) == pytest.approx((reference.low, reference.high))
    assert interval.method == WELCH and interval.n == 8


def test_bootstrap_of_two_differences_by_hand():
    # Resampling two differences 0 and 1 gives means 0, 0.5, 1 with chances 1/4, 1/2, 1/4: the 2.5 %
    # and 97.5 % quantiles are 0 and 1.
    interval = bootstrap_interval([0.0, 1.0], resamples=4000, seed=1)
    assert (interval.low, interval.high, interval.estimate) == (0.0, 1.0, 0.5)
    assert interval.method == BOOTSTRAP and interval.within_noise


def test_bootstrap_is_reproducible_from_its_seed():
    differences = [0.01, 0.02, 0.015, 0.03, -0.005]
    assert bootstrap_interval(differences, seed=3) == bootstrap_interval(differences, seed=3)
    assert bootstrap_interval(differences, seed=3) != bootstrap_interval(differences, seed=4)
    interval = bootstrap_interval(differences, seed=3)
    assert interval.low < interval.estimate < interval.high


def test_compare_takes_pairs_then_welch_then_nothing():
    assert compare(SB, LB).method == PAIRED
    assert compare({0: 0.8, 1: 0.9}, {5: 0.7, 6: 0.75}).method == WELCH
    assert compare({0: 0.8}, {0: 0.7}) is None


@pytest.mark.parametrize("call", [
    lambda: paired_interval({0: 1.0}, {0: 0.0}),
    lambda: welch_interval([1.0], [0.0, 1.0]),
    lambda: bootstrap_interval([1.0]),
    lambda: paired_interval(SB, LB, confidence=1.0),
    lambda: seeds_needed(0.0, 1.0),
    lambda: seeds_needed(1.0, -1.0),
    lambda: seeds_needed(1.0, 1.0, power=1.0),
])
def test_bad_input_is_refused(call):
    with pytest.raises(ValueError):
        call()


def exact_power(n, difference, spread, paired):
    """The power of the two-sided t test at n seeds, from the noncentral t distribution."""
    df = n - 1 if paired else 2 * n - 2
    se = spread / math.sqrt(n) if paired else spread * math.sqrt(2 / n)
    t = scipy_stats.t.ppf(0.975, df)
    return 1 - scipy_stats.nct.cdf(t, df, difference / se) + scipy_stats.nct.cdf(-t, df, difference / se)


@pytest.mark.parametrize("difference, spread, paired", [(0.22, 0.7, False), (0.22, 0.7, True), (0.85, 1.0, True),
                                                        (1.0, 1.0, False), (-0.5, 1.0, True)])
def test_seeds_needed_reach_power_08_and_one_fewer_does_not(difference, spread, paired):
    n = seeds_needed(difference, spread, paired=paired)
    assert exact_power(n, abs(difference), spread, paired) >= 0.8 > exact_power(n - 1, abs(difference), spread, paired)


def test_seeds_needed_by_the_normal_formula_for_large_n():
    # Keskar's F1 gap, 0.22 points at a spread of 0.7 per arm: 2 · ((1.960 + 0.842) · 0.7 / 0.22)² = 159.0,
    # and the t correction adds one.
    assert seeds_needed(0.22, 0.7, paired=False) == 160
    assert seeds_needed(1.0, 0.0) == 2
    assert seeds_needed(1e-9, 1.0) == MAX_SEEDS


def test_power_05_is_the_interval_just_excluding_zero():
    n = seeds_needed(1.0, 1.0, power=0.5)
    assert scipy_stats.t.ppf(0.975, n - 1) / math.sqrt(n) <= 1.0 < scipy_stats.t.ppf(0.975, n - 2) / math.sqrt(n - 1)


def test_power_line_words():
    line = power_line(0.85, 1.0, 4, unit=" points")
    assert line == ("to resolve a difference of 0.85 points at this spread (s = 1 point), 13 paired seeds are "
                    "needed (95 % interval, power 0.8); 4 pairs were run")
    assert power_line(-0.22, 0.7, 1, paired=False).endswith("160 seeds per batch size are needed "
                                                            "(95 % interval, power 0.8); 1 seed was run")


def test_binomial_interval_of_one_seed_a_side_by_hand():
    from batchlab.analysis.stats import BINOMIAL, binomial_interval

    # 0.9 and 0.8 on 1,000 examples: se = √(0.09/1000 + 0.16/1000) = 0.01581, half width 1.96 · se = 0.03099.
    interval = binomial_interval(0.9, 0.8, 1000)
    assert interval.estimate == pytest.approx(0.1)
    assert interval.half_width == pytest.approx(1.959964 * 0.0158114, rel=1e-5)
    assert interval.method == BINOMIAL and not interval.within_noise
    assert binomial_interval(0.9, 0.89, 1000).within_noise


def test_mean_interval_is_the_one_sample_t_interval():
    from batchlab.analysis.stats import mean_interval

    low, high = mean_interval([1.0, 2.0, 3.0])
    reference = scipy_stats.ttest_1samp([1.0, 2.0, 3.0], 0.0).confidence_interval(0.95)
    assert (low, high) == pytest.approx((reference.low, reference.high))
    assert mean_interval([1.0]) is None
