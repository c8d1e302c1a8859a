"""Keskar's tables and the agree/disagree verdict, on made-up numbers."""

from __future__ import annotations

import math

from batchlab.experiments.gap.tables import (
    AGREES,
    DISAGREES,
    FULL,
    INCONCLUSIVE,
    SUBSPACE,
    NetworkNumbers,
    RegimeNumbers,
    accuracy_difference,
    accuracy_table,
    findings_paragraph,
    minima_table,
    paired_difference,
    paired_table,
    gap_finding,
    network_findings,
    sharpness_table,
    summarize,
    training_fit_finding,
)


def network(sb_test, lb_test, *, sb_train=(0.999, 0.998, 0.999), lb_train=(0.999, 1.0, 0.999),
            sb_sharp=(1.0, 2.0, 1.5), lb_sharp=(40.0, 60.0, 50.0), paper="F1", test_examples=10000,
            sb_notes=None, lb_notes=None) -> NetworkNumbers:
    sharp_sb = {(FULL, 1e-3): tuple(sb_sharp), (FULL, 5e-4): tuple(None if v is None else v / 2 for v in sb_sharp)}
    sharp_lb = {(FULL, 1e-3): tuple(lb_sharp), (FULL, 5e-4): tuple(None if v is None else v / 2 for v in lb_sharp)}
    seeds = tuple(range(len(sb_test)))
    return NetworkNumbers(paper, "keskar-f1", "mnist", test_examples,
                          RegimeNumbers(256, tuple(sb_train), tuple(sb_test), sharp_sb, seeds=seeds,
                                        minimum_notes=sb_notes or (None,) * len(seeds)),
                          RegimeNumbers(6000, tuple(lb_train), tuple(lb_test), sharp_lb, seeds=seeds,
                                        minimum_notes=lb_notes or (None,) * len(seeds)))


def test_summarize_mean_and_sample_std():
    stat = summarize([1.0, 2.0, 3.0])
    assert stat.mean == 2.0 and stat.std == 1.0 and stat.n == 3
    assert summarize([5.0]).std is None and summarize([5.0]).show() == "5.00"
    assert math.isnan(summarize([]).mean)


def test_paper_columns_sit_beside_ours_with_the_paired_difference():
    table = accuracy_table([network((0.981, 0.979, 0.980), (0.970, 0.972, 0.971))])
    row = table.rows[0]
    assert table.columns[4:8] == ("train SB", "paper", "train LB", "paper")
    assert row[0] == "F1" and row[3] == "3"
    assert row[8] == "98.00 ± 0.10" and row[9] == "98.03"
    assert row[10] == "97.10 ± 0.10" and row[11] == "97.81"
    assert row[12].startswith("+0.9 [")  # the mean per-seed difference, points, with its t interval
    assert "98.03" in table.render()


def test_sharpness_table_has_ratios_the_papers_values_and_the_rule():
    table = sharpness_table([network((0.98, 0.98), (0.97, 0.97), sb_sharp=(1.0, 2.0), lb_sharp=(40.0, 60.0),
                                     sb_train=(1, 1), lb_train=(1, 1))])
    assert [r[2] for r in table.rows] == ["0.001", "0.0005"]
    first = table.rows[0]
    assert first[3] == "2 of 2 / 2 of 2"
    assert first[4] == "1.500 ± 0.707" and first[5] == "1.23"
    assert first[6] == "50.000 ± 14.142" and first[7] == "205.14"
    assert first[8] == "×33.3" and first[9] == "×167"
    assert "‖∇f‖ ≤ 1 % of ‖∇f(θ₀)‖" in table.caption


def test_points_not_at_a_minimum_get_the_note_not_a_number():
    note = "not at a minimum (‖∇f‖ = 0.11 > 0.0093 = 1 % of ‖∇f(θ₀)‖)"
    net = network((0.98, 0.97, 0.98), (0.97, 0.97, 0.96), lb_sharp=(40.0, None, 50.0),
                  lb_notes=(None, note, None))
    table = minima_table([net])
    lb_seed1 = [row for row in table.rows if row[1] == "1" and row[2].startswith("LB")][0]
    assert lb_seed1[6] == note and not any(ch.isdigit() for ch in "".join(lb_seed1[7:]))
    assert "‖∇f‖ ≤ 1 % of ‖∇f(θ₀)‖" in table.caption
    assert sharpness_table([net]).rows[0][3] == "3 of 3 / 2 of 3"
    sharp = [f for f in network_findings(net) if f.aspect.startswith("sharpness")][0]
    assert "LB sharper in 2 of 2 seeds with both at a minimum" in sharp.text


def test_lb_lower_and_sharper_agrees_in_direction_with_sizes_and_a_power_line():
    net = network((0.981, 0.979, 0.980), (0.970, 0.972, 0.971))
    findings = network_findings(net)
    gap = findings[0]
    assert gap.verdict == AGREES and math.isclose(gap.ours, 0.9, abs_tol=1e-9)
    assert math.isclose(gap.paper, 0.22, abs_tol=1e-9)
    assert "as in the paper" in gap.text and "4.1× the paper's" in gap.text
    assert "paired t interval" in gap.text and "paired seeds are needed" in gap.text
    sharp = [f for f in findings if f.aspect.startswith("sharpness")]
    assert [f.verdict for f in sharp] == [AGREES, AGREES]
    assert "LB sharper in 3 of 3 seeds" in sharp[0].text and "paper ×167" in sharp[0].text
    paragraph = findings_paragraph([net], findings)
    assert paragraph.startswith("F1 (keskar-f1 on mnist), SB = 256 vs LB = 6000, both adam, 3 paired seeds")
    assert paragraph.split("\n\n")[1].startswith("In all, 3 of 3 comparisons with the paper agree in direction, "
                                                  "0 disagree and 0 are inconclusive")


def test_lb_higher_and_flatter_disagrees():
    net = network((0.960, 0.962, 0.961), (0.975, 0.977, 0.976), sb_sharp=(30.0, 50.0, 40.0), lb_sharp=(3.0, 5.0, 4.0))
    findings = network_findings(net)
    assert findings[0].verdict == DISAGREES and "unlike the paper" in findings[0].text
    assert all(f.verdict == DISAGREES for f in findings if f.aspect.startswith("sharpness"))
    assert "LB sharper in 0 of 3 seeds" in findings[2].text


def test_a_gap_whose_paired_interval_contains_zero_is_inconclusive():
    net = network((0.980, 0.950, 0.970), (0.960, 0.975, 0.965))
    finding = gap_finding(net)
    assert finding.verdict == INCONCLUSIVE and "within noise" in finding.text
    interval = accuracy_difference(net, "test")
    assert interval.method == "paired t" and interval.low < 0 < interval.high
    assert "1 is inconclusive" in findings_paragraph([net], network_findings(net)) or "are inconclusive" in \
        findings_paragraph([net], network_findings(net))


def test_pairs_follow_seeds_not_positions():
    # SB seed 1 and LB seed 0 did not finish: only seed 2 is shared, so no paired interval (Welch needs 2 a side).
    sb = RegimeNumbers(256, (1.0, 1.0), (0.95, 0.97), seeds=(0, 2))
    lb = RegimeNumbers(6000, (1.0, 1.0), (0.94, 0.96), seeds=(1, 2))
    interval = paired_difference(sb, lb, sb.test_acc, lb.test_acc)
    assert interval.method == "Welch t"  # fewer than two shared seeds: unpaired


def test_one_seed_uses_the_binomial_noise_of_the_test_set():
    small = network((0.95,), (0.94,), sb_train=(1.0,), lb_train=(1.0,), sb_sharp=(1.0,), lb_sharp=(9.0,),
                    test_examples=1000)
    large = network((0.95,), (0.94,), sb_train=(1.0,), lb_train=(1.0,), sb_sharp=(1.0,), lb_sharp=(9.0,),
                    test_examples=1_000_000)
    assert gap_finding(small).verdict == INCONCLUSIVE  # 1 point on 1,000 examples: the interval is ±2.4 points
    assert gap_finding(large).verdict == AGREES
    assert accuracy_table([small]).rows[0][8] == "95.00"


def test_worse_training_fit_is_called_an_optimization_gap():
    net = network((0.98, 0.98, 0.98), (0.95, 0.95, 0.95), lb_train=(0.96, 0.962, 0.961))
    finding = training_fit_finding(net)
    assert finding.verdict == DISAGREES and "optimization gap" in finding.text
    assert training_fit_finding(network((0.98, 0.98, 0.98), (0.95, 0.95, 0.95))).verdict == AGREES
    worse_sb = training_fit_finding(network((0.98, 0.98, 0.98), (0.95, 0.95, 0.95), sb_train=(0.985, 0.99, 0.987)))
    assert worse_sb.verdict == DISAGREES and "SB fit the training set" in worse_sb.text and "favours LB" in worse_sb.text


def test_networks_without_paper_values_and_the_subspace_row():
    net = NetworkNumbers("C1", "keskar-c1", "fashion-mnist", 10000,
                         RegimeNumbers(256, (1.0,), (0.9,), {(SUBSPACE, 1e-3): (2.0,)}),
                         RegimeNumbers(6000, (1.0,), (0.8,), {(SUBSPACE, 1e-3): (100.0,)}))
    row = sharpness_table([net]).rows[0]
    assert row[1] == "random subspace (100)" and row[5] == "2.18" and row[7] == "137.25"
    unknown = NetworkNumbers("X9", "mlp", "mnist-5k", 1000, net.sb, net.lb)
    assert accuracy_table([unknown]).rows[0][5] == "—"
    assert "paper:" not in gap_finding(unknown).text and "paper's gap" not in gap_finding(unknown).text


def test_round_trip_through_dicts():
    net = network((0.98, 0.97), (0.96, 0.95), sb_train=(1, 1), lb_train=(1, 1), sb_sharp=(1.0, None),
                  lb_sharp=(3.0, 4.0), sb_notes=(None, "not at a minimum (‖∇f‖ = 0.2 > 0.01 = 1 % of ‖∇f(θ₀)‖)"))
    assert NetworkNumbers.from_dict(net.to_dict()) == net


def test_sharpness_difference_inside_the_paired_interval_is_inconclusive_and_the_paired_table_says_so():
    net = network((0.98, 0.98, 0.98), (0.97, 0.97, 0.97), sb_sharp=(377.0, 426.0, 354.0), lb_sharp=(392.0, 392.0, 405.0))
    sharp = [f for f in network_findings(net) if f.aspect.startswith("sharpness")]
    assert [f.verdict for f in sharp] == [INCONCLUSIVE, INCONCLUSIVE]
    assert "within noise" in sharp[0].text and "LB sharper in 2 of 3 seeds" in sharp[0].text
    rows = {row[1]: row for row in paired_table([net]).rows}
    assert rows["φ (full space, ε = 0.001)"][4] == "within noise"
    assert "paired seeds are needed" in rows["test accuracy"][5]
