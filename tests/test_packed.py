"""Packed training: K runs in one stacked step give each run exactly what it gets alone — metrics,
divergence, early stopping, store rows, checkpoints and weights — and runs that cannot be packed
fall back to one at a time with the reason said."""

import math

import pytest
import torch

import batchlab
from batchlab.config import RunConfig, run_id
from batchlab.data import prepare_splits
from batchlab.errors import ConfigError
from batchlab.models.registry import build_model
from batchlab.optim import Momentum
from batchlab.store import RunStore
from batchlab.training.packed import AUTO, PACKED, SEQUENTIAL, can_pack, pack_key, plan_packs, train_pack
from batchlab.training.packed_state import PackedMomentum

SMALL = dict(dataset="mnist-5k", model="mlp", hidden=(32,), epochs=2, batch_size=128, device="cpu")
N_VAL, N_TEST = 400, 1000  # mnist-5k with the default val_fraction 0.1
# Relative tolerance of a packed run's losses against the run alone: the stacked step's batched
# matrix products sum in another order than one model's, a difference of ~1e-7 per update.
LOSS_RTOL = 1e-5
# ReLU's gradient jumps where a pre-activation crosses 0, so such a difference can switch one
# example's gradient and grow from there: 784-32-10 at η = 0.02, λ = 0.9, B = 128 was within 1e-7
# of the run alone after 8 updates, 9e-5 after 12, 1.7e-4 after 29 and 2e-3 after four epochs on an
# Intel Xeon with AVX-512 (within 1e-5 on an AMD EPYC). Tests that train that long use this; a wrong
# rate, momentum or batch moves the losses by far more within an epoch. Accuracies then differ by a
# few examples (5 of 3,600 training, 2 of 1,000 test examples there), not one.
LONG_RUN_LOSS_RTOL = 1e-2
LONG_RUN_ACC_ABS = 0.01

# Different η, λ (0 included), Nesterov, weight decay and seeds: one pack, five different rules.
MIXED = [
    RunConfig(**SMALL, lr=0.05, momentum=0.9, seed=1),
    RunConfig(**SMALL, lr=0.1, momentum=0.0, seed=2),
    RunConfig(**SMALL, lr=0.02, momentum=0.5, nesterov=True, seed=3),
    RunConfig(**SMALL, lr=0.05, momentum=0.8, weight_decay=1e-3, seed=4),
    RunConfig(**SMALL, lr=1e6, momentum=0.9, seed=5),  # diverges in epoch 1
]


def assert_same_rows(packed_rows, solo_rows, rtol=LOSS_RTOL, acc_abs=None):
    assert [row["epoch"] for row in packed_rows] == [row["epoch"] for row in solo_rows]
    for packed, solo in zip(packed_rows, solo_rows):
        assert set(packed) == set(solo)
        for key in packed:
            if key == "epoch_time_s":
                continue
            if key.endswith("_acc"):
                # A prediction on a near-tie may flip under float rounding: allow one example
                # unless told otherwise.
                assert packed[key] == pytest.approx(solo[key], abs=acc_abs or 1.01 / N_VAL), key
            elif math.isfinite(solo[key]):
                assert packed[key] == pytest.approx(solo[key], rel=rtol, abs=1e-7), key
            else:
                assert not math.isfinite(packed[key]), key


def assert_same_result(packed, solo, rtol=LOSS_RTOL, acc_abs=None):
    assert packed.run_id == solo.run_id
    assert packed.status == solo.status
    assert packed.summary["diverged_epoch"] == solo.summary["diverged_epoch"]
    assert packed.summary["stopped_early_at"] == solo.summary["stopped_early_at"]
    assert packed.summary["updates"] == solo.summary["updates"]
    assert_same_rows(packed.epochs, solo.epochs, rtol, acc_abs)
    if solo.status == "finished":
        assert packed.summary["test_loss"] == pytest.approx(solo.summary["test_loss"], rel=rtol)
        assert packed.summary["test_acc"] == pytest.approx(solo.summary["test_acc"], abs=acc_abs or 1.01 / N_TEST)
    # Every key of a single run's summary is there, plus the pack's own.
    assert set(solo.summary) <= set(packed.summary)
    assert {"pack_size", "pack_step_time_s", "pack_capture_time_s"} <= set(packed.summary)


@pytest.fixture(scope="module")
def solo_results():
    return [batchlab.train(config, progress=False) for config in MIXED]


@pytest.mark.slow
def test_packed_run_equals_each_run_trained_alone_and_divergence_stays_inside_its_run(solo_results):
    packed = train_pack(MIXED, progress=False, strategy="packed")
    assert [pack.strategy for pack in packed.plan] == [PACKED]
    assert [r.status for r in packed] == ["finished"] * 4 + ["diverged"]
    assert packed[4].summary["diverged_epoch"] == 1
    for packed_result, solo_result in zip(packed, solo_results):
        assert_same_result(packed_result, solo_result)
    assert packed[0].summary["pack_size"] == 5


RULE_MIXES = {
    "every rule": [
        RunConfig(lr=0.1, momentum=0.9),
        RunConfig(lr=0.05, momentum=0.0),
        RunConfig(lr=0.02, momentum=0.7, nesterov=True),
        RunConfig(lr=0.3, momentum=0.5, weight_decay=0.01),
    ],
    "heavy ball and plain": [RunConfig(lr=0.1, momentum=0.9), RunConfig(lr=0.05, momentum=0.0)],
    "all Nesterov, all decayed": [RunConfig(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
                                  RunConfig(lr=0.05, momentum=0.3, nesterov=True, weight_decay=0.01)],
    "all plain": [RunConfig(lr=0.1), RunConfig(lr=0.2)],
}


@pytest.mark.parametrize("mix", RULE_MIXES)
def test_packed_step_follows_the_momentum_optimizer_rule_per_run(mix):
    configs = RULE_MIXES[mix]
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(len(configs), 7, generator=generator)
    grads = [torch.randn(len(configs), 7, generator=generator) for _ in range(5)]

    params = start.clone()
    # Two parameter tensors of 3 and 4 elements, updated block by block.
    rule = PackedMomentum(configs, torch.zeros_like(params), [(0, 3), (3, 7)])
    for grad in grads:
        rule.step(params, [grad[:, :3].clone(), grad[:, 3:].clone()])

    for k, config in enumerate(configs):
        single = start[k].clone().requires_grad_(True)
        optimizer = Momentum([single], lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                             weight_decay=config.weight_decay)
        for grad in grads:
            single.grad = grad[k].clone()
            optimizer.step()
        torch.testing.assert_close(params[k], single.detach(), rtol=1e-6, atol=1e-7)
        buffer = optimizer.state[single].get("momentum_buffer", torch.zeros(7))
        torch.testing.assert_close(rule.buffer[k], buffer, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_store_holds_what_solo_training_would_and_finished_runs_come_back(tmp_path):
    configs = MIXED[:2] + MIXED[4:]
    packed = train_pack(configs, store=tmp_path / "packed.db", progress=False, strategy="packed")
    solo = [batchlab.train(c, store=tmp_path / "solo.db", progress=False) for c in configs]
    packed_store, solo_store = RunStore(tmp_path / "packed.db"), RunStore(tmp_path / "solo.db")

    assert sorted(r.run_id for r in packed_store.runs()) == sorted(r.run_id for r in solo_store.runs())
    for config, result in zip(configs, packed):
        identity = run_id(config, "cpu")
        assert result.run_id == identity
        packed_record, solo_record = packed_store.get(identity), solo_store.get(identity)
        assert packed_record.status == solo_record.status
        assert packed_record.config == solo_record.config
        assert set(solo_record.summary) <= set(packed_record.summary)
        assert_same_rows(packed_store.metrics(identity), solo_store.metrics(identity))
        assert packed_store.load_checkpoint(identity) is None
        assert set(packed_store.load_weights(identity)) == set(solo_store.load_weights(identity))
    # The saved weights load into the single model and score what the run reported.
    model = build_model("mlp", (1, 28, 28), 10, (32,))
    model.load_state_dict(packed_store.load_weights(packed[0].run_id))
    splits = prepare_splits("mnist-5k", val_fraction=0.1, split_seed=0)
    assert batchlab.evaluate(model, splits.test)[0] == pytest.approx(packed[0].summary["test_loss"], rel=1e-6)

    again = train_pack(configs, store=tmp_path / "packed.db", progress=False, strategy="packed")
    assert all(r.from_store for r in again)
    for stored, trained in zip(again, packed):
        assert stored.status == trained.status
        assert_same_rows(stored.epochs, trained.epochs)
    assert [r.status for r in solo] == [r.status for r in packed]


class Crash(Exception):
    pass


def crash_at_epoch(monkeypatch, epoch):
    original = RunStore.log_epoch

    def log_then_crash(self, identity, logged_epoch, metrics):
        original(self, identity, logged_epoch, metrics)
        if logged_epoch == epoch:
            raise Crash()

    monkeypatch.setattr(RunStore, "log_epoch", log_then_crash)
    return lambda: monkeypatch.setattr(RunStore, "log_epoch", original)


@pytest.mark.slow
def test_a_pack_checkpoint_resumes_alone_and_a_solo_checkpoint_resumes_in_a_pack(tmp_path, monkeypatch):
    three_epochs = [c.replace(epochs=3) for c in MIXED[:3]]
    uninterrupted = [batchlab.train(c, progress=False) for c in three_epochs]
    store_path = tmp_path / "runs.db"

    # A pack killed in epoch 2 leaves checkpoints after epoch 1; one run resumes alone.
    restore = crash_at_epoch(monkeypatch, 2)
    with pytest.raises(Crash):
        train_pack(three_epochs[:2], store=store_path, progress=False, strategy="packed")
    restore()
    alone = batchlab.train(three_epochs[0], store=store_path, progress=False)
    assert_same_result_rows(alone, uninterrupted[0])

    # A single run killed in epoch 3 resumes at epoch 3 in a pack beside the other two: the first
    # is finished (from the store), the second resumes at epoch 2; each resume point is its own group.
    restore = crash_at_epoch(monkeypatch, 3)
    with pytest.raises(Crash):
        batchlab.train(three_epochs[2], store=store_path, progress=False)
    restore()
    assert RunStore(store_path).load_checkpoint(run_id(three_epochs[2], "cpu"))["epoch"] == 2
    resumed = train_pack(three_epochs, store=store_path, progress=False, strategy="packed")
    assert resumed[0].from_store
    for result, expected in zip(resumed, uninterrupted):
        assert_same_result_rows(result, expected)
    store = RunStore(store_path)
    assert [row["epoch"] for row in store.metrics(resumed[2].run_id)] == [1, 2, 3]
    assert all(store.get(r.run_id).status == "finished" for r in resumed)


def assert_same_result_rows(result, expected):
    assert result.status == expected.status
    assert_same_rows(result.epochs, expected.epochs)
    assert result.summary["test_acc"] == pytest.approx(expected.summary["test_acc"], abs=1.01 / N_TEST)


@pytest.mark.slow
def test_early_stopping_and_update_budget_end_runs_as_they_would_alone():
    # lr = 0 never improves, so stop_patience = 1 ends it after epoch 2; the others go on.
    patient = [RunConfig(**{**SMALL, "epochs": 4}, lr=lr, momentum=0.9, seed=s, stop_patience=1)
               for lr, s in ((0.0, 1), (0.05, 2), (0.02, 3))]
    packed = train_pack(patient, progress=False, strategy="packed")
    assert packed[0].summary["stopped_early_at"] == 2
    for packed_result, config in zip(packed, patient):
        assert_same_result(packed_result, batchlab.train(config, progress=False), LONG_RUN_LOSS_RTOL,
                           LONG_RUN_ACC_ABS)

    budget = [RunConfig(**{**SMALL, "batch_size": 100, "epochs": 5}, lr=0.05, seed=s, max_updates=50)
              for s in (1, 2)]
    packed = train_pack(budget, progress=False, strategy="packed")
    assert [r.summary["updates"] for r in packed] == [50, 50]
    assert [r.summary["epochs_completed"] for r in packed] == [2, 2]
    assert_same_result(packed[1], batchlab.train(budget[1], progress=False))


@pytest.mark.slow
def test_unpackable_runs_train_one_at_a_time_and_say_why(capsys):
    tiny = dict(SMALL, epochs=1, batch_size=512)
    batch_norm = RunConfig(**{**tiny, "model": "keskar-f1", "hidden": (16, 16)}, lr=0.05)
    adam = RunConfig(**tiny, optimizer="adam", lr=0.001)
    momentum = RunConfig(**tiny, lr=0.05, momentum=0.9)

    assert can_pack(momentum) == (True, "")
    assert can_pack(batch_norm) == (False, "keskar-f1 has batch-norm running statistics: trained one at a time")
    assert can_pack(RunConfig(model="keskar-c1"))[1].startswith("keskar-c1 has batch-norm running statistics")
    assert "optimizer adam has no packed update rule" in can_pack(adam)[1]

    results = train_pack([batch_norm, adam, momentum], progress=False, strategy="packed")
    assert [r.status for r in results] == ["finished"] * 3
    assert [(p.strategy, len(p.configs)) for p in results.plan] == [(SEQUENTIAL, 1)] * 3
    assert results.plan[0].reason == "keskar-f1 has batch-norm running statistics: trained one at a time"
    err = capsys.readouterr().err
    assert "keskar-f1 has batch-norm running statistics: trained one at a time" in err
    assert "optimizer adam has no packed update rule (packable: momentum, sgd): trained one at a time" in err
    assert "nothing to pack it with" in err


def test_plan_groups_by_pack_key_and_leaves_the_cpu_choice_to_training():
    # 10 epochs of 29 updates: enough training to decide on its first updates (plans train nothing).
    a = RunConfig(**{**SMALL, "epochs": 10}, lr=0.1, momentum=0.9, seed=1)
    b = a.replace(lr=0.01, momentum=0.0, seed=2, optimizer="sgd", nesterov=False)
    other_batch = a.replace(batch_size=64)
    assert pack_key(a) == pack_key(b) != pack_key(other_batch)
    assert pack_key(a) == pack_key(a.replace(device="auto"))  # the same device, whatever its name

    plan = plan_packs([a, other_batch, b], "cpu")
    assert [len(p.configs) for p in plan] == [2, 1]
    assert plan[0].configs == (a, b)
    assert plan[0].strategy == AUTO  # decided on its first updates, while it trains
    assert "decided on its first updates on this cpu" in plan[0].reason
    assert plan[1].strategy == SEQUENTIAL

    short = plan_packs([a.replace(epochs=1), b.replace(epochs=1)], "cpu")
    assert [p.strategy for p in short] == [SEQUENTIAL]
    assert "58 model-updates in all are too few to be worth measuring" in short[0].reason
    assert [p.strategy for p in plan_packs([a, b], "cpu", strategy="sequential")] == [SEQUENTIAL]
    assert [p.strategy for p in plan_packs([a, b], "cpu", strategy="packed")] == [PACKED]
    with pytest.raises(ConfigError, match="unknown packing strategy 'fast'; allowed: auto, packed, sequential"):
        train_pack([a], strategy="fast")


@pytest.mark.slow
def test_equal_configs_train_once_and_auto_strategy_finishes(capsys):
    config = RunConfig(**{**SMALL, "epochs": 1}, lr=0.05, momentum=0.9)
    twin = config.replace(seed=7)
    results = train_pack([config, twin, config], progress=False)
    assert results[0] is results[2]
    assert results[0].run_id != results[1].run_id
    assert "too few to be worth measuring" in capsys.readouterr().err


@pytest.mark.gpu
def test_cuda_graph_step_equals_the_eager_packed_step():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from batchlab.data import TensorSplit
    from batchlab.training.packed_step import PackedModel, make_step

    device = torch.device("cuda")
    generator = torch.Generator().manual_seed(0)
    train = TensorSplit(torch.randn(300, 1, 28, 28, generator=generator),
                        torch.randint(0, 10, (300,), generator=generator)).to(device)
    configs = [RunConfig(lr=0.05, momentum=0.9, seed=1), RunConfig(lr=0.1, momentum=0.0, seed=2),
               RunConfig(lr=0.02, momentum=0.5, nesterov=True, weight_decay=1e-3, seed=3)]

    def fresh_pack():
        models = []
        for config in configs:
            torch.manual_seed(config.seed)
            models.append(build_model("mlp", (1, 28, 28), 10, (64,)).to(device))
        model = PackedModel.from_models(models)
        return model, PackedMomentum(configs, torch.zeros_like(model.flat), model.layout.columns)

    batches = [torch.randint(0, 300, (3, length), generator=generator).to(device) for length in (16, 16, 7, 16)]
    eager_model, eager_rule = fresh_pack()
    eager = make_step(eager_model, eager_rule, train, graphed=False)
    graphed_model, graphed_rule = fresh_pack()
    graphed = make_step(graphed_model, graphed_rule, train, graphed=True)
    assert graphed.prepare([16, 7]) > 0
    for index in batches:
        eager(index)
        graphed(index)
    torch.cuda.synchronize()
    torch.testing.assert_close(graphed_model.flat, eager_model.flat, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(graphed_rule.buffer, eager_rule.buffer, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(graphed.loss_sum, eager.loss_sum, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("had_buffers", [False, True], ids=["fresh optimizers", "optimizers holding buffers"])
def test_handing_a_run_over_leaves_what_loading_its_checkpoint_would(had_buffers):
    from batchlab.training.methods import build_run_optimizer, run_shape
    from batchlab.training.objective import CLASSIFICATION
    from batchlab.training.packed import PackStep

    configs = [RunConfig(**SMALL, lr=0.1, momentum=0.9, seed=1), RunConfig(**SMALL, lr=0.05, momentum=0.0, seed=2),
               RunConfig(**SMALL, lr=0.02, momentum=0.5, nesterov=True, weight_decay=0.01, seed=3)]
    splits = prepare_splits("mnist-5k", device="cpu")
    n_train = len(splits.train)

    def runs():
        models = []
        for config in configs:
            torch.manual_seed(config.seed)
            models.append(build_model("mlp", splits.input_shape, splits.num_classes, config.hidden))
        optimizers = [build_run_optimizer(config, model.parameters(), run_shape(config, n_train))
                      for config, model in zip(configs, models)]
        if had_buffers:  # e.g. runs resumed from checkpoints: their buffers exist and get overwritten
            for model, optimizer in zip(models, optimizers):
                for param in model.parameters():
                    param.grad = torch.ones_like(param)
                optimizer.step()
        return models, optimizers

    models, optimizers = runs()
    pack = PackStep(configs, models, optimizers, torch.device("cpu"), splits.train, CLASSIFICATION, threads=1)
    pack.train_epoch(1, 0, 3)
    for row, config in enumerate(configs):
        (handed, loaded), (handed_opt, loaded_opt) = zip(*[runs() for _ in range(2)])
        pack.hand_over(row, handed[row], handed_opt[row])
        payload = pack.checkpoint(row, 1, 3)
        loaded[row].load_state_dict(payload["model"])
        loaded_opt[row].load_state_dict(payload["optimizer"])
        for (name, mine), theirs in zip(handed[row].state_dict().items(), loaded[row].state_dict().values()):
            torch.testing.assert_close(mine, theirs, rtol=0, atol=0, msg=name)
        mine = [handed_opt[row].state[p].get("momentum_buffer") for p in handed[row].parameters()]
        theirs = [loaded_opt[row].state[p].get("momentum_buffer") for p in loaded[row].parameters()]
        assert [m is None for m in mine] == [t is None for t in theirs] == [config.momentum == 0.0] * len(mine)
        for m, t in zip(mine, theirs):
            if m is not None:
                torch.testing.assert_close(m, t, rtol=0, atol=0)
