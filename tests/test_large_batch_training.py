"""Large-batch methods in real training: learning-rate schedules at the rate actually used per
update, packed runs with schedules, resuming mid-warm-up, ghost batch norm, LARS, LAMB, Akiba's
recipe, the accuracy target, init_from, and bad input (one line, exit 2, nothing stored)."""

import math

import pytest
import torch

import batchlab
from batchlab.cli import main
from batchlab.config import RunConfig, run_id
from batchlab.errors import ConfigError, StoreError
from batchlab.optim import LAMB, LARS, Momentum, RMSpropWarmup
from batchlab.store import RunStore
from batchlab.training.packed import can_pack, train_pack
from test_packed import Crash, crash_at_epoch

# mnist-5k: 3600 training examples after the default validation split, so B = 400 makes 9
# equal updates per epoch.
SMALL = dict(dataset="mnist-5k", model="mlp", hidden=(16,), batch_size=400, device="cpu")
BN_SMALL = dict(SMALL, model="keskar-f1", hidden=(16, 16))


def record_rates(monkeypatch, optimizer_class):
    """The learning rate of every update ``optimizer_class`` makes, in order: through its ``step``,
    or, for the lecture's momentum on a plain MLP, through the fused update that applies its rule
    without calling ``step`` (batchlab.training.fused_mlp)."""
    from batchlab.training.fused_mlp import FusedMomentumMLP

    rates = []
    original = optimizer_class.step
    original_fused = FusedMomentumMLP.__call__

    def step(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    def fused(self, *args, **kwargs):
        if isinstance(self.optimizer, optimizer_class):
            rates.append(self.optimizer.param_groups[0]["lr"])
        return original_fused(self, *args, **kwargs)

    monkeypatch.setattr(optimizer_class, "step", step)
    monkeypatch.setattr(FusedMomentumMLP, "__call__", fused)
    return rates


def test_default_large_batch_fields_leave_old_run_ids_unchanged():
    # Ids computed before the large-batch fields existed.
    assert run_id(RunConfig(), "cpu") == "0df578769b86af4b"
    assert run_id(RunConfig(batch_size=32, momentum=0.9), "cpu") == "12f855645a25fbf0"
    assert run_id(RunConfig(warmup_epochs=0), "cpu") == "0df578769b86af4b"
    base = RunConfig(model="keskar-f1", optimizer="lars", batch_size=64)
    changed = [
        dict(lr_scaling="linear", base_batch=32), dict(warmup_epochs=1), dict(lr_decay="cosine"),
        dict(lr_decay="step", decay_epochs=(2,)), dict(ghost_batch=16), dict(trust_coefficient=0.01),
        dict(target_train_acc=0.9), dict(init_from="0123456789abcdef"),
    ]
    ids = {run_id(base.replace(**change), "cpu") for change in changed} | {run_id(base, "cpu")}
    assert len(ids) == len(changed) + 1


@pytest.mark.slow
def test_linear_scaling_warmup_and_step_decay_are_the_rates_training_uses(monkeypatch):
    rates = record_rates(monkeypatch, Momentum)
    config = RunConfig(**SMALL, lr=0.05, momentum=0.9, epochs=3, lr_scaling="linear", base_batch=200,
                       warmup_epochs=1, lr_decay="step", decay_epochs=(2,), decay_factor=0.5)
    result = batchlab.train(config, progress=False)
    assert result.status == "finished" and len(rates) == 27
    peak = 0.05 * 400 / 200  # Goyal et al.'s linear scaling rule
    for t, rate in enumerate(rates):
        if t < 9:  # warm-up over one epoch (9 updates), from the base rate to the scaled one
            expected = 0.05 + (peak - 0.05) * t / 9
        elif t < 18:
            expected = peak
        else:  # ×0.5 from epoch 2 on
            expected = peak * 0.5
        assert rate == pytest.approx(expected, rel=1e-12), t


@pytest.mark.slow
def test_sqrt_scaling_with_cosine_decay_and_warmup_from_zero(monkeypatch):
    rates = record_rates(monkeypatch, Momentum)
    config = RunConfig(**SMALL, lr=0.1, epochs=2, lr_scaling="sqrt", base_batch=100, lr_decay="cosine")
    batchlab.train(config, progress=False)
    peak = 0.1 * math.sqrt(400 / 100)
    assert rates == pytest.approx([peak * (1 + math.cos(math.pi * t / 18)) / 2 for t in range(18)], rel=1e-12)

    rates.clear()
    batchlab.train(RunConfig(**SMALL, lr=0.1, epochs=2, warmup_epochs=1), progress=False)
    assert rates == pytest.approx([0.1 * t / 9 for t in range(9)] + [0.1] * 9, rel=1e-12)


@pytest.mark.slow
def test_schedules_stop_with_max_updates_and_lars_gets_the_rate_too(monkeypatch):
    rates = record_rates(monkeypatch, LARS)
    config = RunConfig(**SMALL, optimizer="lars", lr=1.0, momentum=0.9, epochs=2, max_updates=12,
                       lr_decay="cosine", trust_coefficient=0.01)
    batchlab.train(config, progress=False)
    assert rates == pytest.approx([(1 + math.cos(math.pi * t / 12)) / 2 for t in range(12)], rel=1e-12)


PACK_SCHEDULES = [
    RunConfig(**SMALL, epochs=3, lr=0.05, momentum=0.9, seed=1, lr_scaling="linear", base_batch=250, warmup_epochs=1.5),
    RunConfig(**SMALL, epochs=3, lr=0.1, momentum=0.0, seed=2, lr_decay="cosine"),
    RunConfig(**SMALL, epochs=3, lr=0.05, momentum=0.8, seed=3, lr_decay="step", decay_epochs=(1, 2), decay_factor=0.3),
    RunConfig(**SMALL, epochs=3, lr=0.05, momentum=0.5, nesterov=True, seed=4, lr_scaling="sqrt", base_batch=1000),
    RunConfig(**SMALL, epochs=3, lr=0.05, momentum=0.9, seed=5),  # constant: mixed with scheduled rows
]


def assert_same_rows(first, second):
    assert [row["epoch"] for row in first] == [row["epoch"] for row in second]
    for a, b in zip(first, second):
        for key in ("train_loss", "val_loss", "batch_loss_mean"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key
        for key in ("train_acc", "val_acc"):
            assert a[key] == pytest.approx(b[key], abs=1.01 / 400), key


@pytest.mark.slow
def test_packed_runs_with_schedules_equal_each_run_trained_alone(tmp_path):
    solo = [batchlab.train(config, progress=False) for config in PACK_SCHEDULES]
    packed = train_pack(PACK_SCHEDULES, store=tmp_path / "runs.db", progress=False, strategy="packed")
    assert [pack.strategy for pack in packed.plan] == ["packed"]
    for p, s in zip(packed, solo):
        assert p.run_id == s.run_id and p.status == s.status == "finished"
        assert_same_rows(p.epochs, s.epochs)
        assert p.summary["test_loss"] == pytest.approx(s.summary["test_loss"], rel=1e-5)


@pytest.mark.slow
def test_run_resumed_mid_warmup_continues_the_schedule_exactly(tmp_path, monkeypatch):
    store_path = tmp_path / "runs.db"
    config = RunConfig(**SMALL, lr=0.05, momentum=0.9, epochs=4, lr_scaling="linear", base_batch=125,
                       warmup_epochs=2.5, lr_decay="step", decay_epochs=(3,))
    rates = record_rates(monkeypatch, Momentum)
    uninterrupted = batchlab.train(config, progress=False)
    uninterrupted_rates = list(rates)
    rates.clear()
    restore_store = crash_at_epoch(monkeypatch, 2)  # crashes inside the warm-up (2.5 epochs)
    with pytest.raises(Crash):
        batchlab.train(config, store=store_path, progress=False)
    restore_store()
    resumed = batchlab.train(config, store=store_path, progress=False)
    assert resumed.status == "finished" and not resumed.from_store
    # Epochs 1–2 ran before the crash; epoch 2's checkpoint was never written, so the run resumed
    # at epoch 2 (update 9, inside the warm-up) and made the rates of updates 9 … 35 again.
    assert rates == uninterrupted_rates[:18] + uninterrupted_rates[9:]
    assert [row["epoch"] for row in RunStore(store_path).metrics(resumed.run_id)] == [1, 2, 3, 4]
    for a, b in zip(resumed.epochs, uninterrupted.epochs):
        assert {k: v for k, v in a.items() if k != "epoch_time_s"} == {k: v for k, v in b.items() if k != "epoch_time_s"}
    assert resumed.summary["test_acc"] == uninterrupted.summary["test_acc"]


@pytest.mark.slow
def test_ghost_batch_norm_with_g_equal_to_b_is_batch_norm_through_training():
    plain = batchlab.train(RunConfig(**BN_SMALL, lr=0.05, momentum=0.9, epochs=2), progress=False)
    ghost_b = batchlab.train(RunConfig(**BN_SMALL, lr=0.05, momentum=0.9, epochs=2, ghost_batch=400), progress=False)
    ghost_50 = batchlab.train(RunConfig(**BN_SMALL, lr=0.05, momentum=0.9, epochs=2, ghost_batch=50), progress=False)
    for a, b in zip(plain.epochs, ghost_b.epochs):
        assert {k: v for k, v in a.items() if k != "epoch_time_s"} == {k: v for k, v in b.items() if k != "epoch_time_s"}
    assert ghost_b.summary["test_loss"] == plain.summary["test_loss"]
    assert ghost_50.epochs[-1]["train_loss"] != plain.epochs[-1]["train_loss"]
    assert ghost_50.summary["train_acc"] > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("optimizer, extra, optimizer_class", [
    ("lars", dict(momentum=0.9, lr=2.0, trust_coefficient=0.02), LARS),
    ("lamb", dict(lr=0.05, weight_decay=1e-4), LAMB),
])
def test_lars_and_lamb_runs_train_and_are_stored(tmp_path, monkeypatch, optimizer, extra, optimizer_class):
    rates = record_rates(monkeypatch, optimizer_class)
    store_path = tmp_path / "runs.db"
    config = RunConfig(**SMALL, optimizer=optimizer, epochs=2, **extra)
    result = batchlab.train(config, store=store_path, progress=False)
    assert result.status == "finished" and len(rates) == 18
    assert result.summary["train_acc"] > 0.5
    store = RunStore(store_path)
    assert store.get(result.run_id).status == "finished" and store.has_weights(result.run_id)
    packable, reason = can_pack(config)
    assert not packable and "one at a time" in reason


@pytest.mark.slow
def test_recipe_akiba_trains_with_its_three_parts(tmp_path, monkeypatch):
    rates = record_rates(monkeypatch, RMSpropWarmup)
    store_path = tmp_path / "runs.db"
    config = RunConfig(**BN_SMALL, recipe="akiba", lr=0.2, momentum=0.9, epochs=3)
    result = batchlab.train(config, store=store_path, progress=False)
    assert result.status == "finished" and result.summary["train_acc"] > 0.5
    # Akiba's slow start: 0.5, 0.075, 0.01, 0.001 × η̂ over 40/90, 30/90, 15/90, 5/90 of the 27 updates.
    # Boundaries at round(40/90·27) = 12, round(70/90·27) = 21 and round(85/90·27) = 26.
    assert rates == pytest.approx([0.1] * 12 + [0.015] * 9 + [0.002] * 5 + [0.0002], rel=1e-12)
    assert not can_pack(config)[0] and "recipe akiba" in can_pack(config)[1]
    # Batch norm without moving averages: evaluating the final weights with each batch's own
    # statistics gives the stored accuracy.
    restored = RunStore(store_path).load_weights(result.run_id)
    from batchlab.data.identity import load_splits
    from batchlab.training.loop import evaluate, initial_model_and_optimizer

    splits = load_splits(config, torch.device("cpu"))
    model, _ = initial_model_and_optimizer(config, splits, torch.device("cpu"))
    model.load_state_dict(restored)
    assert evaluate(model, splits.test) == (result.summary["test_loss"], result.summary["test_acc"])
    model.apply(lambda m: setattr(m, "eval_statistics", "running") if hasattr(m, "eval_statistics") else None)
    assert evaluate(model, splits.test)[0] != result.summary["test_loss"]


@pytest.mark.slow
def test_target_train_acc_ends_the_run_finished_at_the_first_epoch_reaching_it(tmp_path):
    config = RunConfig(**SMALL, lr=0.1, momentum=0.9, epochs=6)
    full = batchlab.train(config, progress=False)
    target = full.epochs[1]["train_acc"]  # reached at epoch 2 at the latest
    first = next(row["epoch"] for row in full.epochs if row["train_acc"] >= target)
    ended = batchlab.train(config.replace(target_train_acc=target), store=tmp_path / "runs.db", progress=False)
    assert ended.status == "finished" and len(ended.epochs) == first
    assert ended.summary["reached_target_at"] == first and "test_acc" in ended.summary
    missed = batchlab.train(config.replace(epochs=1, target_train_acc=1.0), progress=False)
    assert missed.summary["reached_target_at"] is None and len(missed.epochs) == 1


@pytest.mark.slow
def test_init_from_starts_from_the_stored_final_weights(tmp_path):
    store_path = tmp_path / "runs.db"
    source = batchlab.train(RunConfig(**SMALL, lr=0.1, momentum=0.9, epochs=2), store=store_path, progress=False)
    # η = 0 trains nothing: the run's metrics are those of the source's final weights.
    frozen = batchlab.train(RunConfig(**SMALL, lr=0.0, epochs=1, init_from=source.run_id), store=store_path,
                            progress=False)
    assert frozen.epochs[0]["train_loss"] == source.epochs[-1]["train_loss"]
    assert frozen.summary["test_acc"] == source.summary["test_acc"]
    # In a pack too (SWAP's second phase: several runs from one start, each with its own seed).
    refined = train_pack([RunConfig(**SMALL, lr=0.0, epochs=1, seed=s, init_from=source.run_id) for s in (7, 8)],
                         store=store_path, progress=False, strategy="packed")
    assert [r.epochs[0]["train_loss"] for r in refined] == pytest.approx([source.epochs[-1]["train_loss"]] * 2, rel=1e-6)
    with pytest.raises(StoreError, match="init_from run 0123456789abcdef is not in"):
        batchlab.train(RunConfig(**SMALL, epochs=1, init_from="0123456789abcdef"), store=store_path, progress=False)
    with pytest.raises(ConfigError, match="needs the store"):
        batchlab.train(RunConfig(**SMALL, epochs=1, init_from=source.run_id), progress=False)
    with pytest.raises(StoreError, match="do not fit model mlp"):
        batchlab.train(RunConfig(**{**SMALL, "hidden": (8,)}, epochs=1, init_from=source.run_id), store=store_path,
                       progress=False)
    assert len(RunStore(store_path).runs()) == 4
    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text('[fixed]\nepochs = 1\nhidden = [16]\n[grid]\nseed = [1, 2]\n'
                          'init_from = ["%s", "0123456789abcdef"]\n' % source.run_id, encoding="utf-8")
    assert main(["sweep", "--config", str(sweep_file), "--batch-size", "400", "--device", "cpu",
                 "--store", str(store_path), "--no-progress"]) == 2
    assert len(RunStore(store_path).runs()) == 4  # checked before any of the sweep's runs trained


TRAIN_BAD_INPUT = [
    (["--warmup-epochs", "6"], "warm-up of 6 epochs does not fit the run of 5 epochs; allowed: 0 ≤ warmup_epochs ≤ 5"),
    (["--warmup-epochs", "2", "--max-updates", "10"], "warm-up of 2 epochs (18 updates) is longer than the run of 10 updates"),
    (["--warmup-epochs", "-1"], "warm-up of -1 epochs does not fit"),
    (["--lr-scaling", "linear"], "lr_scaling 'linear' needs base_batch"),
    (["--lr-scaling", "cubic"], "invalid choice 'cubic'"),
    (["--base-batch", "256"], "base_batch 256 is given but lr_scaling is 'none'"),
    (["--lr-scaling", "sqrt", "--base-batch", "0"], "base batch 0 is too small"),
    (["--lr-decay", "step"], "step decay needs decay_epochs; allowed: increasing epochs in 1 … 4"),
    (["--lr-decay", "step", "--decay-epochs", "3", "2"], "decay epochs [3, 2] are invalid"),
    (["--lr-decay", "step", "--decay-epochs", "5"], "allowed: strictly increasing whole epochs in 1 … 4"),
    (["--lr-decay", "step", "--decay-epochs", "3", "--max-updates", "20"], "decay epoch 3 falls after the run's last update"),
    (["--decay-epochs", "2"], "decay_epochs are given but lr_decay is 'none'"),
    (["--lr-decay", "step", "--decay-epochs", "2", "--decay-factor", "1.5"], "decay factor 1.5 is outside (0, 1]"),
    (["--decay-factor", "0.5"], "decay factor 0.5 is given but lr_decay is 'none'"),
    (["--lr-decay", "cosine", "--warmup-epochs", "5"], "cosine decay needs updates after the warm-up"),
    (["--ghost-batch", "100"], "ghost batch norm needs a model with batch norm, and mlp has none; allowed: keskar-f1, keskar-c1"),
    (["--model", "keskar-f1", "--ghost-batch", "300"], "ghost batch 300 does not divide the batch size 400"),
    (["--model", "keskar-f1", "--batch-size", "700", "--ghost-batch", "70"],
     "ghost batch 70 does not divide the batch of 100 examples (the epoch's last batch; --drop-last drops it)"),
    (["--model", "keskar-f1", "--ghost-batch", "0"], "ghost batch 0 is too small"),
    (["--recipe", "akiba"], "recipe 'akiba' includes batch norm without moving averages, and mlp has no batch norm"),
    (["--model", "keskar-f1", "--recipe", "akiba", "--optimizer", "lars"], "recipe 'akiba' brings its own optimizer"),
    (["--model", "keskar-f1", "--recipe", "akiba", "--lr-decay", "cosine"], "recipe 'akiba' brings its own learning-rate decay"),
    (["--recipe", "goyal"], "invalid choice 'goyal'"),
    (["--trust-coefficient", "0.01"], "optimizer 'momentum' has no trust coefficient; allowed with: optimizer 'lars'"),
    (["--optimizer", "lamb", "--trust-coefficient", "0.01"], "optimizer 'lamb' has no trust coefficient"),
    (["--optimizer", "lars", "--trust-coefficient", "-1"], "trust coefficient -1.0 is not positive"),
    (["--optimizer", "lars", "--nesterov", "--momentum", "0.9"], "optimizer 'lars' has no Nesterov form"),
    (["--optimizer", "lamb", "--momentum", "0.9"], "optimizer 'lamb' takes no momentum"),
    (["--target-train-acc", "1.5"], "target training accuracy 1.5 is outside (0, 1]"),
    (["--init-from", "nope"], "init_from 'nope' is not a run id"),
    (["--init-from", "0123456789abcdef"], "init_from run 0123456789abcdef is not in"),
]


@pytest.mark.parametrize("flags, expected", TRAIN_BAD_INPUT)
def test_bad_large_batch_input_is_one_line_exit_2_and_nothing_stored(tmp_path, capsys, flags, expected):
    store_path = tmp_path / "r.db"
    base = ["train", "--batch-size", "400", "--hidden", "8", "--device", "cpu", "--store", str(store_path), "--no-progress"]
    code = main([*base, *flags])
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not store_path.exists() or RunStore(store_path).runs() == []


SWEEP_BAD_TOML = [
    ('[fixed]\nwarmup_epochs = 9\nepochs = 2\n', "warm-up of 9 epochs does not fit the run of 2 epochs"),
    ('[fixed]\nlr_scaling = "sqrt"\n', "lr_scaling 'sqrt' needs base_batch"),
    ('[grid]\nlr_scaling = ["none", "cubic"]\n', "lr_scaling=cubic: unknown lr_scaling 'cubic'"),
    ('[fixed]\nmodel = "keskar-f1"\n[grid]\nghost_batch = [50, 300]\n', "ghost_batch=300: ghost batch 300 does not divide"),
    ('[fixed]\nlr_decay = "step"\ndecay_epochs = [1, 1]\nepochs = 3\n', "decay epochs [1, 1] are invalid"),
    ('[fixed]\noptimizer = "lars"\ntrust_coefficient = 0\n', "trust coefficient 0.0 is not positive"),
    ('[fixed]\nrecipe = "akiba"\n', "recipe 'akiba' includes batch norm without moving averages"),
    ('[fixed]\nwarmup_epochs = 1\nmax_updates = 5\n', "is longer than the run of 5 updates"),
    ('lr_scaling = "linear"\nbase_batch = 64\n[fixed]\nlr_scaling = "linear"\nbase_batch = 64\n', "would scale lr twice"),
    ('[fixed]\ntarget_train_acc = 0\n', "target training accuracy 0.0 is outside (0, 1]"),
]


@pytest.mark.parametrize("text, expected", SWEEP_BAD_TOML)
def test_bad_large_batch_values_in_a_sweep_file_are_one_line_exit_2(tmp_path, capsys, text, expected):
    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text(text, encoding="utf-8")
    store_path = tmp_path / "r.db"
    code = main(["sweep", "--config", str(sweep_file), "--batch-size", "400", "--hidden", "8", "--device", "cpu",
                 "--store", str(store_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not store_path.exists() or RunStore(store_path).runs() == []


def test_sweep_flags_take_several_schedule_values(tmp_path, capsys):
    code = main(["sweep", "--batch-size", "400", "--hidden", "8", "--epochs", "2", "--lr-scaling", "none", "sqrt",
                 "--base-batch", "200", "--warmup-epochs", "0", "1", "--device", "cpu", "--dry-run",
                 "--store", str(tmp_path / "r.db")])
    out, err = capsys.readouterr()
    assert code == 2 and "base_batch 200 is given but lr_scaling is 'none'" in err
    code = main(["sweep", "--batch-size", "400", "--hidden", "8", "--epochs", "2", "--lr-scaling", "linear", "sqrt",
                 "--base-batch", "200", "--warmup-epochs", "0", "1", "--lr-decay", "step", "--decay-epochs", "1",
                 "--device", "cpu", "--dry-run", "--store", str(tmp_path / "r.db")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "4 run" in out
