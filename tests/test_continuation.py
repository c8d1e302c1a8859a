"""A run with ``continue_from`` trains its source on: the same weights as one uninterrupted run."""

from __future__ import annotations

import pytest
import torch

from batchlab.config import RunConfig
from batchlab.data.identity import load_splits
from batchlab.errors import StoreError
from batchlab.store import RunStore
from batchlab.store.status import FINISHED
from batchlab.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = RunConfig(dataset="mnist-5k", model="mlp", hidden=(16,), optimizer="adam", lr=3e-3, batch_size=25, epochs=2,
                 seed=1, val_fraction=0.0, train_subset=200, device="cpu")


@pytest.fixture(scope="module")
def splits():
    return load_splits(RunConfig(dataset="mnist-5k", val_fraction=0.0, train_subset=200))


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)


@pytest.mark.parametrize("keep_state", [True, False], ids=["source-state", "source-without-state"])
def test_a_continuation_with_adam_is_the_uninterrupted_run(tmp_path, splits, keep_state):
    with RunStore(tmp_path / "runs.db") as store:
        source = train(BASE, store=store, splits=splits, progress=False, keep_state=keep_state)
        assert store.has_final_state(source.run_id) is keep_state
        continued = train(BASE.replace(epochs=5, continue_from=source.run_id), store=store, splits=splits,
                          progress=False)
        whole = train(BASE.replace(epochs=5), store=store, splits=splits, progress=False)
        restarted = train(BASE.replace(epochs=3, init_from=source.run_id), store=store, splits=splits, progress=False)
        assert continued.status == FINISHED and continued.run_id != whole.run_id
        assert same_weights(store.load_weights(continued.run_id), store.load_weights(whole.run_id))
        # Adam restarted from zero moments at the same weights (init_from) lands elsewhere.
        assert not same_weights(store.load_weights(restarted.run_id), store.load_weights(whole.run_id))
        assert [row["epoch"] for row in store.metrics(continued.run_id)] == [1, 2, 3, 4, 5]
        for ours, theirs in zip(continued.epochs, whole.epochs):
            assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        assert continued.summary["updates"] == whole.summary["updates"] == 5 * 8
        # The failed-to-train rule's reference is the chain's start, θ₀ on the first batch.
        assert continued.summary["initial_loss"] == pytest.approx(source.summary["initial_loss"], rel=1e-6)


def test_a_chain_of_continuations_goes_on_from_each_final_state(tmp_path, splits):
    with RunStore(tmp_path / "runs.db") as store:
        source = train(BASE, store=store, splits=splits, progress=False, keep_state=True)
        first = train(BASE.replace(epochs=3, continue_from=source.run_id, target_train_acc=None), store=store,
                      splits=splits, progress=False, keep_state=True)
        second = train(BASE.replace(epochs=4, continue_from=first.run_id), store=store, splits=splits, progress=False)
        whole = train(BASE.replace(epochs=4), store=store, splits=splits, progress=False)
        assert same_weights(store.load_weights(second.run_id), store.load_weights(whole.run_id))
        assert second.summary["initial_loss"] == source.summary["initial_loss"]


def test_a_continuation_keeps_its_sources_settings_and_goes_past_its_end(tmp_path, splits):
    with RunStore(tmp_path / "runs.db") as store:
        source = train(BASE, store=store, splits=splits, progress=False, keep_state=True)
        with pytest.raises(StoreError, match="has lr 0.003, this run 0.01; allowed: the source's settings"):
            train(BASE.replace(lr=0.01, epochs=4, continue_from=source.run_id), store=store, splits=splits)
        with pytest.raises(StoreError, match="completed 2 epochs, and this run ends at 2 in all; allowed: epochs > 2"):
            train(BASE.replace(continue_from=source.run_id), store=store, splits=splits)
        with pytest.raises(StoreError, match="is not in"):
            train(BASE.replace(epochs=4, continue_from="0" * 16), store=store, splits=splits)


def test_the_final_state_goes_with_its_run(tmp_path, splits):
    with RunStore(tmp_path / "runs.db") as store:
        source = train(BASE, store=store, splits=splits, progress=False, keep_state=True)
        state = store.load_final_state(source.run_id)
        assert state["epoch"] == 2 and state["updates"] == 16 and len(state["history"]) == 2
        assert state["optimizer"]["state"]  # Adam's moments
        assert not store.has_checkpoint(source.run_id)
        train(BASE, store=store, splits=splits, progress=False, force=True)  # forced: no state asked for
        assert not store.has_final_state(source.run_id)
        train(BASE, store=store, splits=splits, progress=False, force=True, keep_state=True)
        assert store.delete_run(source.run_id)["final state"] == 1
        assert not store.has_final_state(source.run_id)


def test_a_ray_worker_continues_from_the_shipped_final_state(tmp_path, splits, capsys):
    from types import SimpleNamespace

    from batchlab.sweep.ray_executor import _init_sources, train_unit
    from batchlab.training.packed import SEQUENTIAL

    with RunStore(tmp_path / "runs.db") as store:
        source = train(BASE, store=store, progress=False, keep_state=True)
        config = BASE.replace(epochs=3, continue_from=source.run_id)
        sources = _init_sources(SimpleNamespace(configs=(config,)), store)
        capsys.readouterr()
        ((result, weights, state),) = train_unit((config,), SEQUENTIAL, {}, True, None, sources)
        assert f"continuing run {source.run_id} from epoch 3" in capsys.readouterr().err
        assert state is None  # not asked for
        whole = train(BASE.replace(epochs=3), store=store, progress=False)
        assert same_weights(weights, store.load_weights(whole.run_id))


MOMENTUM = RunConfig(dataset="mnist-5k", model="mlp", hidden=(8,), optimizer="momentum", lr=0.05, momentum=0.9,
                     batch_size=25, epochs=2, seed=1, val_fraction=0.0, train_subset=200, device="cpu")


@pytest.mark.parametrize("packing", ["packed", "sequential"])
def test_a_sweep_with_keep_state_is_continued_exactly(tmp_path, packing, capsys):
    """Two runs of a sweep keep their final states (packed: each row's); each continued by
    ``continue_from`` goes on from that state and is the uninterrupted run, momentum buffer included."""
    from batchlab.sweep import run_sweep

    configs = [MOMENTUM, MOMENTUM.replace(seed=2)]
    with RunStore(tmp_path / "runs.db") as store:
        sources = run_sweep(configs, store, packing=packing, progress=False, keep_state=True).runs
        assert [source.summary.get("pack_size") for source in sources] == ([2, 2] if packing == "packed" else [None] * 2)
        assert all(store.has_final_state(source.run_id) for source in sources)
        state = store.load_final_state(sources[0].run_id)
        assert state["epoch"] == 2 and state["updates"] == 16 and state["optimizer"]["state"]  # the buffer m
        capsys.readouterr()
        continued = run_sweep([c.replace(epochs=4, continue_from=s.run_id) for c, s in zip(configs, sources)], store,
                              packing=packing, progress=False).runs
        err = capsys.readouterr().err
        assert all(f"continuing run {source.run_id} from epoch 3" in err for source in sources)  # not from epoch 1
        whole = run_sweep([c.replace(epochs=4) for c in configs], store, packing=packing, progress=False).runs
        for ours, theirs in zip(continued, whole):
            assert ours.status == FINISHED and ours.run_id != theirs.run_id
            assert same_weights(store.load_weights(ours.run_id), store.load_weights(theirs.run_id))
            assert [row["epoch"] for row in store.metrics(ours.run_id)] == [1, 2, 3, 4]


def test_a_sweep_without_keep_state_keeps_none(tmp_path):
    from batchlab.sweep import run_sweep

    with RunStore(tmp_path / "runs.db") as store:
        sources = run_sweep([MOMENTUM, MOMENTUM.replace(seed=2)], store, packing="packed", progress=False).runs
        assert not any(store.has_final_state(source.run_id) for source in sources)


def test_a_ray_worker_ships_the_final_state_it_was_asked_to_keep(tmp_path, capsys):
    """The worker's side of ``keep_state`` on Ray: a packed unit returns each run's final state, and
    the driver records it with the run, so a later ``continue_from`` goes on from it."""
    from batchlab.sweep.ray_executor import record_result, train_unit
    from batchlab.training.packed import PACKED

    configs = (MOMENTUM, MOMENTUM.replace(seed=2))
    outputs = train_unit(configs, PACKED, {}, True, None, {}, True)
    assert all(state is not None and state["epoch"] == 2 for _, _, state in outputs)
    with RunStore(tmp_path / "runs.db") as store:
        recorded = [record_result(store, result, weights, state=state) for result, weights, state in outputs]
        assert all(store.has_final_state(result.run_id) for result in recorded)
        continued = train(MOMENTUM.replace(epochs=3, continue_from=recorded[0].run_id), store=store, progress=False)
        assert f"continuing run {recorded[0].run_id} from epoch 3" in capsys.readouterr().err
        whole = train(MOMENTUM.replace(epochs=3), store=store, progress=False)
        assert same_weights(store.load_weights(continued.run_id), store.load_weights(whole.run_id))


def test_sweep_keep_state_on_the_command_line_lets_train_continue_a_run(tmp_path, capsys):
    from conftest import write_user_files

    from batchlab.cli import main

    files = write_user_files(tmp_path)
    common = [*files, "--batch-size", "8", "--lr", "0.05", "--momentum", "0.9", "--device", "cpu",
              "--store", str(tmp_path / "runs.db"), "--no-progress"]
    assert main(["sweep", *common, "--seed", "0", "1", "--epochs", "2", "--packing", "packed", "--keep-state"]) == 0
    with RunStore(tmp_path / "runs.db") as store:
        sources = store.runs()
        assert len(sources) == 2 and all(store.has_final_state(run.run_id) for run in sources)
        source = next(run for run in sources if run.config["seed"] == 0)
    capsys.readouterr()
    assert main(["train", *common, "--seed", "0", "--epochs", "3", "--continue-from", source.run_id]) == 0
    assert f"continuing run {source.run_id} from epoch 3" in capsys.readouterr().err
