"""The large-batch experiment's pure parts: SWAP's averaging and batch-norm recomputation, the
verdict rule, the table and the report section, on tiny models and made-up numbers."""

from __future__ import annotations

import json
import math
import re
import statistics

import pytest
import torch
from torch import nn

from batchlab.errors import ConfigError
from batchlab.experiments.largebatch import tables
from batchlab.experiments.largebatch.experiment import plan_largebatch
from batchlab.experiments.largebatch.report import largebatch_figures, largebatch_section
from batchlab.report.context import ReportContext
from batchlab.experiments.largebatch.swap import average_runs, average_state_dicts, recompute_batch_norm, swap_key, swap_weights_id
from batchlab.experiments.largebatch.tables import (
    CLOSES,
    NARROWS,
    NO_GAP,
    NO_INTERVAL,
    NO_RESULT,
    NOT_HERE,
    UNRESOLVED,
    MethodNumbers,
    methods_table,
    verdict_for,
    verdict_paragraph,
    verdicts,
)
from batchlab.report.html import render_section
from batchlab.store import RunStore

# ------------------------------------------------------------------------------ SWAP


def test_average_of_known_tensors_is_their_mean_and_keeps_integer_buffers():
    states = [
        {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor(3.0), "n": torch.tensor(5)},
        {"w": torch.tensor([3.0, 6.0]), "b": torch.tensor(-1.0), "n": torch.tensor(7)},
        {"w": torch.tensor([2.0, 1.0]), "b": torch.tensor(1.0), "n": torch.tensor(9)},
    ]
    averaged = average_state_dicts(states)
    assert torch.equal(averaged["w"], torch.tensor([2.0, 3.0]))
    assert torch.equal(averaged["b"], torch.tensor(1.0))
    assert averaged["n"].item() == 5 and averaged["n"].dtype == torch.int64


def test_average_of_equal_copies_is_the_copy_exactly():
    torch.manual_seed(0)
    state = nn.Linear(7, 3).state_dict()
    averaged = average_state_dicts([state] * 5)
    assert all(torch.equal(averaged[k], state[k]) for k in state)


def test_average_refuses_different_architectures():
    with pytest.raises(ConfigError, match="different entries"):
        average_state_dicts([{"a": torch.zeros(2)}, {"b": torch.zeros(2)}])
    with pytest.raises(ConfigError, match="shapes"):
        average_state_dicts([{"a": torch.zeros(2)}, {"a": torch.zeros(3)}])
    with pytest.raises(ConfigError):
        average_state_dicts([])


def test_batch_norm_recompute_gives_the_population_statistics():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model[1].running_mean.fill_(100.0)  # stale statistics, as after averaging
    model[1].running_var.fill_(100.0)
    x = torch.randn(64, 3)
    model.eval()
    recompute_batch_norm(model, x, batch_size=16)
    assert not model.training  # mode restored
    with torch.no_grad():
        h = model[0](x)
    # Equal batches: mean of batch means = population mean; variance = mean of unbiased batch variances.
    batch_vars = torch.stack([h[i:i + 16].var(dim=0, unbiased=True) for i in range(0, 64, 16)]).mean(dim=0)
    torch.testing.assert_close(model[1].running_mean, h.mean(dim=0))
    torch.testing.assert_close(model[1].running_var, batch_vars)


def test_batch_norm_recompute_leaves_a_model_without_batch_norm_alone():
    model = nn.Linear(3, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recompute_batch_norm(model, torch.randn(8, 3), batch_size=4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ConfigError, match="batch size"):
        recompute_batch_norm(model, torch.randn(8, 3), batch_size=0)


def test_swap_key_does_not_depend_on_the_order_of_the_workers():
    assert swap_key(["b", "a"], 32) == swap_key(["a", "b"], 32) != swap_key(["a", "b"], 64)
    assert swap_weights_id(swap_key(["a"], 1)).startswith("swap-")


@pytest.mark.slow
def test_phase_three_averages_stored_runs_and_is_idempotent(tmp_path):
    from batchlab.config import RunConfig
    from batchlab.training import train

    torch.set_num_threads(1)
    with RunStore(tmp_path / "runs.db") as store:
        ids = []
        for seed in (0, 1):
            config = RunConfig(dataset="mnist-5k", model="keskar-f1", hidden=(8,), batch_size=500, epochs=1,
                               seed=seed, val_fraction=0.0, train_subset=1000, device="cpu")
            ids.append(train(config, store=store, progress=False).run_id)
        average, averaged = average_runs(store, ids, bn_batch_size=100)
        assert not average.from_store and 0 <= average.test_acc <= 1
        expected = average_state_dicts([store.load_weights(i) for i in ids])
        stored = store.load_weights(average.weights_id)
        linear = "1.weight"
        torch.testing.assert_close(stored[linear], expected[linear])
        # Batch-norm statistics are recomputed, not averaged.
        assert not torch.allclose(stored["2.running_mean"], expected["2.running_mean"])
        again, _ = average_runs(store, list(reversed(ids)), bn_batch_size=100)
        assert again.from_store and again.test_acc == average.test_acc
        assert averaged.run_id == average.weights_id


# --------------------------------------------------------------------------- verdicts


def method(key, test, train=None, *, sharp=(1.0, 2.0), seeds=None, failed=None):
    """A row of made-up per-seed numbers (fractions); seeds 0, 1, … unless given."""
    test = tuple(test)
    return MethodNumbers(key, key.upper(), 32 if key == "sb" else 512, (10.0,) * len(test), (80,) * len(test),
                         tuple(train or test), test, sharp if test else (), (1.0,) * len(test),
                         failed=(0 if test else 2) if failed is None else failed,
                         seeds=tuple(range(len(test)) if seeds is None else seeds))


def shifted(row, points, key="m", seeds=None, failed=None):
    """``row``'s test accuracies moved by ``points`` (one per seed)."""
    return method(key, [round(t + p / 100, 6) for t, p in zip(row.test_acc, points)], seeds=seeds, failed=failed)


# Three paired seeds: SB's seeds differ by a point, LB tests 4.8–5.2 points lower in each seed.
SB = method("sb", (0.900, 0.910, 0.905))
LB = shifted(SB, (-5.0, -4.8, -5.2), "lb")


@pytest.mark.parametrize("points, verdict", [
    ((-0.2, 0.3, -0.1), CLOSES),        # within noise of SB, beyond noise above LB
    ((2.0, 2.2, 1.9), CLOSES),          # above SB
    ((-2.0, -2.3, -1.8), NARROWS),      # below SB, above LB, both beyond noise
    ((-4.7, -5.0, -5.1), NOT_HERE),     # below SB, within noise of LB
    ((-15.0, -14.0, -16.0), NOT_HERE),  # worse than LB
    ((-4.0, 3.0, -1.0), UNRESOLVED),    # within noise of SB and of LB: the seeds cannot tell
])
def test_verdict_rule_by_where_the_paired_intervals_lie(points, verdict):
    found = verdict_for(shifted(SB, points), SB, LB)
    assert found.verdict == verdict
    assert found.vs_sb.method == "paired t" and found.vs_sb.n == 3
    assert found.vs_sb.estimate == pytest.approx(sum(points) / 3)
    assert found.gap_size.low > 0  # the equal-epochs gap is beyond noise
    if verdict == CLOSES and points[0] < 0:
        assert found.vs_sb.within_noise and not found.vs_lb.within_noise
    # A power line exactly for each difference left within noise.
    assert len(found.power) == found.vs_sb.within_noise + found.vs_lb.within_noise


def test_paired_interval_is_the_t_interval_of_the_per_seed_differences():
    found = verdict_for(shifted(SB, (-0.2, 0.3, -0.1)), SB, LB)
    differences = [-0.2, 0.3, -0.1]
    mean, spread = sum(differences) / 3, statistics.stdev(differences)
    half = 4.302652729911275 * spread / math.sqrt(3)  # t_{0.975, 2}
    assert (found.vs_sb.low, found.vs_sb.high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert found.vs_sb.df == 2


def test_every_seed_failed_gives_no_result():
    assert verdict_for(method("m", ()), SB, LB).verdict == NO_RESULT


def test_one_seed_gives_no_interval_and_says_so():
    one = verdict_for(shifted(SB, (0.0,), seeds=(0,), failed=2), SB, LB)
    assert one.verdict == NO_INTERVAL == "one seed: no interval"
    assert one.vs_sb is None and "no interval" in one.text and "2 failed seeds left out" in one.text
    # One seed of SB and of LB: the gap itself has no interval, and no margin stands in for it.
    sb, lb = method("sb", (0.90,)), method("lb", (0.85,))
    rows = verdicts([sb, lb, method("lars", (0.89,))])
    assert [v.verdict for v in rows] == [tables.BASELINE, NO_INTERVAL, NO_INTERVAL]
    assert all(v.vs_sb is None and v.power == () for v in rows)
    assert "of 1 method: 1 with one seed (no interval)." in verdict_paragraph(rows)


def test_failed_seeds_are_left_out_of_the_pairs_and_counted():
    # Seed 1 of the method diverged: it is paired with SB over seeds 0 and 2 only.
    partial = method("m", (0.899, 0.906), seeds=(0, 2), failed=1)
    found = verdict_for(partial, SB, LB)
    assert found.vs_sb.n == 2 and found.vs_sb.estimate == pytest.approx((-0.1 + 0.1) / 2)
    assert "1 failed seed left out" in found.text
    table = methods_table([SB, LB, partial], verdicts([SB, LB, partial]), setting="tiny")
    assert table.rows[2][table.columns.index("seeds")] == "2 (+1 failed)"


def test_pairing_decides_when_seeds_differ_more_than_the_methods():
    # The seeds' test accuracies spread over 15 points; within a seed the method is 0.9–1.1 points
    # below SB and about 4 above LB. Paired, both differences are beyond noise: it narrows the gap.
    sb = method("sb", (0.80, 0.90, 0.85, 0.95))
    lb = shifted(sb, (-5.0, -4.9, -5.1, -5.0), "lb")
    paired = shifted(sb, (-1.0, -0.9, -1.1, -1.0))
    assert verdict_for(paired, sb, lb).verdict == NARROWS
    # The same numbers from seeds SB and LB did not run: Welch's interval, and the seed spread hides both.
    unpaired = shifted(sb, (-1.0, -0.9, -1.1, -1.0), seeds=(10, 11, 12, 13))
    found = verdict_for(unpaired, sb, lb)
    assert found.vs_sb.method == "Welch t" and found.vs_sb.within_noise and found.vs_lb.within_noise
    assert found.verdict == UNRESOLVED
    assert any("seeds per batch size are needed" in line for line in found.power)


def test_records_without_seeds_pair_by_position_only_when_no_seed_failed():
    old = MethodNumbers.from_dict({k: v for k, v in shifted(SB, (-2.0, -2.3, -1.8)).to_dict().items() if k != "seeds"})
    assert old.seed_keys == (0, 1, 2) and tables.difference(old, SB).method == "paired t"
    gappy = MethodNumbers.from_dict({**{k: v for k, v in method("m", (0.88, 0.89)).to_dict().items()
                                        if k != "seeds"}, "failed": 1})
    assert gappy.seed_keys is None and tables.difference(gappy, SB).method == "Welch t"


def test_no_gap_to_close_when_plain_large_batch_is_within_noise_of_small():
    lb = shifted(SB, (-0.5, 0.4, 0.0), "lb")
    assert verdict_for(shifted(SB, (-10, -10, -10)), SB, lb).verdict == NO_GAP
    assert verdicts([SB, lb])[1].verdict == tables.NO_GAP_FOUND


def test_table_from_synthetic_results_has_intervals_claims_and_verdicts():
    rows = [SB, LB, shifted(SB, (-0.2, 0.4, -0.1), "linear-warmup"), method("lars", ())]
    found = verdicts(rows)
    table = methods_table(rows, found, setting="tiny")
    columns = {name: i for i, name in enumerate(table.columns)}
    assert [r[0] for r in table.rows] == ["SB", "LB", "LINEAR-WARMUP", "LARS"]
    assert table.rows[0][columns["test acc %"]] == "90.50 ± 0.50" and table.rows[2][columns["verdict"]] == CLOSES
    claim = columns["paper's claim (their setting)"]
    assert "0.14 % top-1" in table.rows[2][claim] and "32K" in table.rows[3][claim]
    assert table.rows[3][columns["seeds"]] == "0 (+2 failed)" and table.rows[3][columns["verdict"]] == NO_RESULT
    # Differences as "estimate [low, high]" in points, paired by seed.
    assert re.fullmatch(r"-5\.00 \[-5\.\d\d, -4\.\d\d\]", table.rows[1][columns["test − SB (95 %)"]])
    assert re.fullmatch(r"\+0\.03 \[-0\.\d\d, \+0\.\d\d\]", table.rows[2][columns["test − SB (95 %)"]])
    assert table.rows[2][columns["test − its gap's LB row (95 %)"]].startswith("+5.03 [+")
    vs_sb, vs_lb = columns["test − SB (95 %)"], columns["test − its gap's LB row (95 %)"]
    assert table.rows[0][vs_sb] == table.rows[1][vs_lb] == "—"
    # The power line where a difference is within noise, none where it is beyond.
    power = columns["seeds to resolve (within noise)"]
    assert table.rows[2][power].startswith("against SB: to resolve a difference of") and table.rows[1][power] == "—"
    assert "2·SE" not in table.caption and "contains 0" in table.caption
    # Every row names its protocol and the gap it is judged against; plain LB's is the equal-epochs gap.
    assert [r[columns["protocol"]] for r in table.rows] == ["baseline (E epochs)", "equal epochs", "equal epochs",
                                                           "equal epochs"]
    assert table.rows[1][columns["judged against"]] == tables.EQUAL_EPOCHS_GAP
    assert table.rows[1][columns["verdict"]] == tables.GAP and "Keskar" not in table.rows[1][claim]
    assert "BERT" in tables.PAPER_CLAIMS["lamb"]
    paragraph = verdict_paragraph(found)
    assert "1 closes the gap" in paragraph and "1 no result" in paragraph and "paired t interval" in paragraph
    with pytest.raises(ValueError):
        verdicts([SB])


def test_verdicts_carry_their_intervals_into_json_and_back():
    found = verdicts([SB, LB, shifted(SB, (-2.0, -2.3, -1.8), "sqrt")])
    data = json.loads(json.dumps([v.to_dict() for v in found]))
    narrows = data[2]
    assert {"estimate", "low", "high", "n", "method"} <= set(narrows["vs_sb"]) and narrows["vs_sb"]["n"] == 3
    assert narrows["vs_lb"]["method"] == "paired t" and narrows["gap_size"]["low"] > 0
    assert [tables.Verdict.from_dict(v) for v in data] == found
    # A record written under the earlier margin rule keeps its verdict, without intervals.
    old = tables.Verdict.from_dict({"key": "sqrt", "verdict": CLOSES, "text": "…", "vs_sb": -0.1, "margin_sb": 0.5,
                                    "vs_lb": 4.9, "margin_lb": 0.5, "gap": tables.EQUAL_EPOCHS_GAP})
    assert old.verdict == CLOSES and old.vs_sb is None and old.vs_lb is None


def test_the_equal_epochs_gap_is_an_optimization_gap_when_lb_fits_the_training_set_worse():
    sb = method("sb", (0.900, 0.902), train=(0.998, 0.997))
    lb = method("lb", (0.850, 0.852), train=(0.903, 0.904))  # 24 updates: far from SB's training accuracy
    lb_train = method("lb-train-acc", (0.899, 0.903), train=(0.998, 0.998))
    found = {v.key: v for v in verdicts([sb, lb, lb_train])}
    assert found["lb"].verdict == tables.GAP and "mostly an optimization gap" in found["lb"].text
    # At equal training accuracy the 5-point gap is gone: no generalization gap, against Keskar's claim.
    assert found["lb-train-acc"].verdict == tables.NO_GAP_FOUND and found["lb-train-acc"].gap_size.within_noise
    assert found["lb-train-acc"].gap == tables.GENERALIZATION_GAP and "against Keskar" in found["lb-train-acc"].text


def test_each_method_is_judged_against_the_gap_it_claims_to_close():
    sb = method("sb", (0.900, 0.902), train=(0.998, 0.997))
    lb = method("lb", (0.850, 0.852), train=(0.903, 0.904))
    lb_train = method("lb-train-acc", (0.870, 0.872), train=(0.998, 0.998))  # a 3-point generalization gap
    rows = [sb, lb, lb_train, method("linear-warmup", (0.880, 0.882)), method("longer", (0.880, 0.882))]
    found = {v.key: v for v in verdicts(rows)}
    # Goyal keeps the epoch budget: 3 points above plain LB, 2 below SB — it narrows the equal-epochs gap.
    assert (found["linear-warmup"].gap, found["linear-warmup"].verdict) == (tables.EQUAL_EPOCHS_GAP, NARROWS)
    assert found["linear-warmup"].vs_lb.estimate == pytest.approx(3.0)
    # Train longer claims the generalization gap: 1 point above LB at SB's training accuracy.
    assert (found["longer"].gap, found["longer"].verdict) == (tables.GENERALIZATION_GAP, NARROWS)
    assert found["longer"].vs_lb.estimate == pytest.approx(1.0)
    # When LB missed SB's training accuracy within its cap, that gap was not measured.
    missed = {v.key: v for v in verdicts(rows, missed_target=1)}
    assert missed["lb-train-acc"].verdict == missed["longer"].verdict == tables.NOT_AT_EQUAL_TRAIN
    assert missed["linear-warmup"].verdict == NARROWS


def test_every_row_of_a_seed_starts_from_the_same_initial_weights():
    """The premise of the paired verdicts: each row's run of seed s builds its model right after
    seeding with s (ghost BN and Akiba's recipe swap batch-norm layers but keep their parameters)."""
    from dataclasses import replace

    from batchlab.data.identity import load_splits
    from batchlab.training.loop import initial_model_and_optimizer

    plan = plan_largebatch("quick")
    plan = replace(plan, setting=replace(plan.setting, dataset="mnist-5k", train_subset=1000, hidden=(8,),
                                         small_batch=50, large_batch=250), device="cpu")
    cpu = torch.device("cpu")
    splits = load_splits(plan.base_config(0), cpu)

    def initial(config):
        model, _ = initial_model_and_optimizer(config, splits, cpu)
        return model.state_dict()

    for seed in (0, 1):
        configs = {key: plan.config(key, seed, len(splits.train)) for key in plan.rows if key != "lb-train-acc"}
        configs["lb-train-acc"] = plan.equal_train_config(seed, len(splits.train), 0.99)
        sb = initial(configs["sb"])
        for key, config in configs.items():
            assert config.seed == seed and config.init_from is None
            state = initial(config)
            assert state.keys() == sb.keys() and all(torch.equal(state[k], sb[k]) for k in sb), key
    other_seed = initial(plan.config("sb", 1, len(splits.train)))
    assert not torch.equal(other_seed["1.weight"], initial(plan.config("sb", 0, len(splits.train)))["1.weight"])


def test_lb_to_sbs_training_accuracy_is_capped_at_sbs_updates():
    plan = plan_largebatch("quick")
    config = plan.equal_train_config(1, 4096, 0.99787)
    assert (config.batch_size, config.seed, config.target_train_acc) == (1024, 1, 0.9978)
    assert config.max_updates == 6 * 128 and config.epochs * 4 >= config.max_updates
    assert config.lr == plan.setting.lr and config.momentum == plan.setting.momentum  # plain LB, trained on
    with pytest.raises(ValueError):
        plan.config("lb-train-acc", 0, 4096)


def test_numbers_round_trip_through_a_dictionary():
    assert MethodNumbers.from_dict(SB.to_dict()) == SB


# ------------------------------------------------------------------------- plan, report


def test_plan_rejects_bad_input_in_one_line():
    for kwargs, text in (({"scale": "huge"}, "unknown scale"), ({"seeds": 0}, "seeds"),
                         ({"methods": ["magic"]}, "unknown method")):
        with pytest.raises(ConfigError, match=text) as error:
            plan_largebatch(**kwargs)
        assert "\n" not in str(error.value)


def test_quick_plan_counts():
    plan = plan_largebatch("quick")
    s = plan.setting
    assert plan.seeds == 3 and plan.rows[:3] == ("sb", "lb", "lb-train-acc") and len(plan.rows) == 11
    assert s.large_batch % s.small_batch == 0 and s.swap_epochs < s.epochs


def synthetic_record() -> dict:
    rows = [SB, LB, shifted(SB, (-0.2, 0.3, -0.1), "swap")]
    found = verdicts(rows)
    table = methods_table(rows, found, setting="keskar-f1 on tiny data")
    plan = plan_largebatch("quick", methods=["swap"])
    return {
        "plan": plan.to_dict(), "numbers": [r.to_dict() for r in rows], "verdicts": [v.to_dict() for v in found],
        "table": table.to_dict(), "paragraph": verdict_paragraph(found), "created": "2030-01-01T00:00:00+00:00",
        "runs": [{"method": "swap", "seed": 0, "status": "finished", "from_store": False,
                  "extra": {"parallel_seconds": 1.5}},
                 {"method": "lb", "seed": 0, "status": "diverged", "from_store": False, "extra": {}}],
        "environment": {"device_name": "cpu"}, "seconds": 3.0, "load_average": [1.0, 2.0],
    }


def test_report_section_renders_from_a_stored_record(tmp_path):
    with RunStore(tmp_path / "runs.db") as store:
        assert largebatch_section(ReportContext(store)) is None
        store.put_record("largebatch", "k", synthetic_record())
        section = largebatch_section(ReportContext(store))
    html = render_section(section)
    assert section.id == "largebatch" and len(section.figures) == 1 and section.figures[0].png
    assert "closes the gap" in html and "Goyal" in html
    assert any("parallel" not in n and "diverged" in n for n in section.notes)
    assert any("1.5 s" in n for n in section.notes)
    figure_id, _, caption, _ = largebatch_figures(synthetic_record())[0]
    assert figure_id == "largebatch-methods"
    assert "SB − LB = +5.00 points (95 % paired t interval [+4.50, +5.50]" in caption


def test_the_report_registry_knows_the_section():
    from batchlab.report.registry import section_builders

    ids = [b.id for b in section_builders()]
    # The report leads with its summary; the methods come right after the gap they try to close.
    assert ids.index("summary") < ids.index("gap") < ids.index("largebatch")


@pytest.mark.slow
def test_a_swap_stopped_after_phase_two_resumes_from_the_store(tmp_path):
    from batchlab.config import RunConfig
    from batchlab.experiments.largebatch.swap import RECORD_KIND, phase2_configs, run_swap

    torch.set_num_threads(1)
    phase1 = RunConfig(dataset="mnist-5k", model="keskar-f1", hidden=(8,), batch_size=250, epochs=2, lr=0.05,
                       seed=3, val_fraction=0.0, train_subset=1000, target_train_acc=0.2, device="cpu")
    with RunStore(tmp_path / "runs.db") as store:
        first = run_swap(phase1, store, small_batch=100, epochs=1, workers=2)
        assert first.phase1.summary["epochs_completed"] == 1  # the accuracy target ended phase 1
        workers = phase2_configs(phase1, first.phase1.run_id, batch_size=100, epochs=1, workers=2)
        assert [c.seed for c in workers] == [6, 7] and {c.init_from for c in workers} == {first.phase1.run_id}
        # As if killed while phase 3 was written: a record without its weights is not a result.
        (store.weights_dir / f"{first.average.weights_id}.pt").unlink()
        store.put_record(RECORD_KIND, first.average.key, {})
        again = run_swap(phase1, store, small_batch=100, epochs=1, workers=2)
        last = run_swap(phase1, store, small_batch=100, epochs=1, workers=2)
    assert again.phase1.from_store and all(r.from_store for r in again.phase2)
    assert not again.average.from_store and again.average.test_acc == first.average.test_acc
    assert last.average.from_store and last.average.test_acc == first.average.test_acc


# ------------------------------------------------------------------------- SB's η search


class FakeRun:
    def __init__(self, status, val_acc):
        self.status, self.summary = status, ({} if val_acc is None else {"val_acc": val_acc})


def fake_training(monkeypatch, score):
    """SB's runs replaced by a validation accuracy ``score(lr)`` (None: the run diverges)."""
    from batchlab.experiments.largebatch import tuning

    trained = []

    def train(config, **_):
        trained.append(config)
        value = score(config.lr)
        return FakeRun("diverged" if value is None else "finished", value)

    monkeypatch.setattr(tuning, "train", train)
    return trained


def test_sb_eta_on_an_edge_is_extended_on_validation_until_interior(monkeypatch):
    from batchlab.experiments.largebatch.tuning import tune_small_batch_lr

    plan = plan_largebatch("quick", seeds=2)
    trained = fake_training(monkeypatch, lambda lr: 1 - abs(lr - 0.08))
    search = tune_small_batch_lr(plan, store=None)
    assert search.grid == (0.01, 0.02, 0.04) and search.tried == (0.01, 0.02, 0.04, 0.08, 0.16)
    assert (search.best, search.kind) == (0.08, "interior")
    assert all(c.val_fraction == 0.1 and c.batch_size == 32 for c in trained) and len(trained) == 2 * 5
    assert "η = 0.08" in search.describe() and "interior" in search.describe()


def test_sb_eta_search_is_bounded_by_divergence_or_the_cap(monkeypatch):
    from batchlab.experiments.largebatch.tuning import tune_small_batch_lr

    plan = plan_largebatch("quick", seeds=1)
    fake_training(monkeypatch, lambda lr: None if lr > 0.1 else lr)
    diverged = tune_small_batch_lr(plan, store=None)
    assert (diverged.best, diverged.reason) == (0.08, "bounded by divergence at η = 0.16")
    fake_training(monkeypatch, lambda lr: -lr)
    capped = tune_small_batch_lr(plan, store=None)
    assert capped.best == 0.00125 and capped.reason == "cap of 3 added values reached on the low side"
    fake_training(monkeypatch, lambda lr: None)
    with pytest.raises(ConfigError, match="no η that trains"):
        tune_small_batch_lr(plan, store=None)
