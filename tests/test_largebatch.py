"""The large-batch experiment's pure parts: SWAP's averaging and batch-norm recomputation, the
verdict rule, the table and the report section, on tiny models and made-up numbers."""

from __future__ import annotations

import math

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
    NO_RESULT,
    NOT_HERE,
    MethodNumbers,
    margin,
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


def method(key, test, train=None, *, sharp=(1.0, 2.0)):
    test = tuple(test)
    return MethodNumbers(key, key.upper(), 32 if key == "sb" else 512, (10.0,) * len(test), (80,) * len(test),
                         tuple(train or test), test, sharp if test else (), (1.0,) * len(test),
                         failed=0 if test else 2)


SB = method("sb", (0.900, 0.902))
LB = method("lb", (0.850, 0.852))


def test_margin_is_at_least_half_a_point():
    assert margin((0.9, 0.9), (0.9, 0.9), 10000) == 0.5
    wide = margin((0.80, 0.90), (0.85, 0.85), 10000)
    # s² of (0.80, 0.90) is 0.005, of (0.85, 0.85) is 0: SE = √(0.005/2) = 0.05, i.e. 5 points, ×2.
    assert wide == pytest.approx(2 * 100 * math.sqrt(0.005 / 2))


@pytest.mark.parametrize("test, verdict", [
    ((0.899, 0.901), CLOSES),     # within the margin of SB
    ((0.950, 0.950), CLOSES),     # better than SB
    ((0.880, 0.882), NARROWS),    # between, clear of both
    ((0.853, 0.855), NOT_HERE),   # within the margin of plain LB
    ((0.700, 0.710), NOT_HERE),   # worse than plain LB
    ((), NO_RESULT),              # every seed diverged
])
def test_verdict_rule(test, verdict):
    found = verdict_for(method("m", test), SB, LB, 10000)
    assert found.verdict == verdict
    if verdict != NO_RESULT:
        assert found.vs_sb == pytest.approx(100 * (sum(test) / 2 - 0.901))


def test_no_gap_to_close_when_plain_large_batch_matches_small():
    found = verdict_for(method("m", (0.7, 0.7)), SB, method("lb", (0.899, 0.900)), 10000)
    assert found.verdict == NO_GAP


def test_seed_spread_widens_the_margin():
    steady = verdict_for(method("m", (0.88, 0.88)), SB, LB, 10000)
    noisy = verdict_for(method("m", (0.84, 0.92)), SB, LB, 10000)  # same mean, seeds 8 points apart
    assert steady.verdict == NARROWS
    assert noisy.verdict == CLOSES and noisy.margin_sb > 4


def test_table_from_synthetic_results_has_claims_and_verdicts():
    rows = [SB, LB, method("linear-warmup", (0.899, 0.901)), method("lars", ())]
    found = verdicts(rows, 10000)
    table = methods_table(rows, found, setting="tiny")
    columns = {name: i for i, name in enumerate(table.columns)}
    assert [r[0] for r in table.rows] == ["SB", "LB", "LINEAR-WARMUP", "LARS"]
    assert table.rows[0][columns["test acc %"]] == "90.10 ± 0.14" and table.rows[2][columns["verdict"]] == CLOSES
    claim = columns["paper's claim (their setting)"]
    assert "0.14 % top-1" in table.rows[2][claim] and "32K" in table.rows[3][claim]
    assert table.rows[3][columns["seeds"]] == "0 (+2 failed)" and table.rows[3][columns["verdict"]] == NO_RESULT
    assert table.rows[1][columns["Δ test vs SB"]] == "-5.00"
    # Every row names its protocol and the gap it is judged against; plain LB's is the equal-epochs gap.
    assert [r[columns["protocol"]] for r in table.rows] == ["baseline (E epochs)", "equal epochs", "equal epochs",
                                                           "equal epochs"]
    assert table.rows[1][columns["judged against"]] == tables.EQUAL_EPOCHS_GAP
    assert table.rows[1][columns["verdict"]] == tables.GAP and "Keskar" not in table.rows[1][claim]
    assert "BERT" in tables.PAPER_CLAIMS["lamb"]
    paragraph = verdict_paragraph(found)
    assert "1 closes the gap" in paragraph and "1 no result" in paragraph
    with pytest.raises(ValueError):
        verdicts([SB], 10000)


def test_the_equal_epochs_gap_is_an_optimization_gap_when_lb_fits_the_training_set_worse():
    sb = method("sb", (0.900, 0.902), train=(0.998, 0.997))
    lb = method("lb", (0.850, 0.852), train=(0.903, 0.904))  # 24 updates: far from SB's training accuracy
    lb_train = method("lb-train-acc", (0.899, 0.903), train=(0.998, 0.998))
    found = {v.key: v for v in verdicts([sb, lb, lb_train], 10000)}
    assert found["lb"].verdict == tables.GAP and "mostly an optimization gap" in found["lb"].text
    # At equal training accuracy the 5-point gap is gone: no generalization gap, against Keskar's claim.
    assert found["lb-train-acc"].verdict == tables.NO_GAP_FOUND
    assert found["lb-train-acc"].gap == tables.GENERALIZATION_GAP and "against Keskar" in found["lb-train-acc"].text


def test_each_method_is_judged_against_the_gap_it_claims_to_close():
    sb = method("sb", (0.900, 0.902), train=(0.998, 0.997))
    lb = method("lb", (0.850, 0.852), train=(0.903, 0.904))
    lb_train = method("lb-train-acc", (0.870, 0.872), train=(0.998, 0.998))  # a 3-point generalization gap
    rows = [sb, lb, lb_train, method("linear-warmup", (0.880, 0.882)), method("longer", (0.880, 0.882))]
    found = {v.key: v for v in verdicts(rows, 10000)}
    # Goyal keeps the epoch budget: 3 points above plain LB, 2 below SB — it narrows the equal-epochs gap.
    assert (found["linear-warmup"].gap, found["linear-warmup"].verdict) == (tables.EQUAL_EPOCHS_GAP, NARROWS)
    assert found["linear-warmup"].vs_lb == pytest.approx(3.0)
    # Train longer claims the generalization gap: 1 point above LB at SB's training accuracy.
    assert (found["longer"].gap, found["longer"].verdict) == (tables.GENERALIZATION_GAP, NARROWS)
    assert found["longer"].vs_lb == pytest.approx(1.0)
    # When LB missed SB's training accuracy within its cap, that gap was not measured.
    missed = {v.key: v for v in verdicts(rows, 10000, missed_target=1)}
    assert missed["lb-train-acc"].verdict == missed["longer"].verdict == tables.NOT_AT_EQUAL_TRAIN
    assert missed["linear-warmup"].verdict == NARROWS


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
    assert plan.seeds == 2 and plan.rows[:3] == ("sb", "lb", "lb-train-acc") and len(plan.rows) == 11
    assert s.large_batch % s.small_batch == 0 and s.swap_epochs < s.epochs


def synthetic_record() -> dict:
    rows = [SB, LB, method("swap", (0.899, 0.901))]
    found = verdicts(rows, 10000)
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
    assert largebatch_figures(synthetic_record())[0][0] == "largebatch-methods"


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
