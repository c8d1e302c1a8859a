"""``batchlab largebatch`` end to end, shrunk to a tiny network on a small training subset."""

from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import tiny_largebatch_setting
import torch

from batchlab.cli import main
from batchlab.config import RunConfig
from batchlab.experiments.largebatch import experiment
from batchlab.experiments.largebatch.experiment import Setting
from batchlab.store import RunStore

CONTRACT_FIELDS = {"lr_scaling", "base_batch", "warmup_epochs", "ghost_batch", "recipe", "trust_coefficient",
                   "target_train_acc", "init_from"}
needs_methods = pytest.mark.skipif(
    not CONTRACT_FIELDS <= {f.name for f in dataclasses.fields(RunConfig)},
    reason="the large-batch RunConfig fields are not in this build",
)


def tiny_setting(data_dir=None) -> Setting:
    """Every row in a few seconds (conftest.tiny_largebatch_setting)."""
    return tiny_largebatch_setting()


@pytest.fixture(scope="module")
def largebatch_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("largebatch")
    patch = pytest.MonkeyPatch()
    patch.setattr(experiment, "_quick_setting", tiny_setting)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        argv = ["largebatch", "--seeds", "2", "--store", str(folder / "runs.db"), "--out", str(folder / "out"),
                "--device", "cpu"]
        code = main(argv)
        again = main(argv + ["--format", "json"])
    finally:
        patch.undo()
        torch.set_num_threads(threads)
    return folder, code, again


@pytest.mark.slow
@needs_methods
def test_every_method_trains_is_measured_and_judged(largebatch_run):
    folder, code, _ = largebatch_run
    assert code == 0
    record = json.loads((folder / "out" / "largebatch.json").read_text())
    rows = [row[0] for row in record["table"]["rows"]]
    assert len(rows) == 11 and rows[0] == "small batch (SB)"
    assert {r["method"] for r in record["runs"]} == set(record["plan"]["labels"])
    finished = [r for r in record["runs"] if r["status"] == "finished"]
    assert all(0 <= r["test_acc"] <= 1 and r["sharpness"] is not None for r in finished)
    longer = [r for r in record["runs"] if r["method"] == "longer"]
    sb = [r for r in record["runs"] if r["method"] == "sb"]
    assert [r["updates"] for r in longer] == [r["updates"] for r in sb] == [60, 60]
    swap = [r for r in record["runs"] if r["method"] == "swap"]
    assert all(len(r["run_ids"]) == 4 and r["run_ids"][-1].startswith("swap-") for r in swap)
    assert {v["verdict"] for v in record["verdicts"]} <= {
        "baseline", "a gap", "no gap beyond noise", "not at equal training accuracy", "closes the gap",
        "narrows it", "not here", "unresolved", "no gap to close", "one seed: no interval", "no result"}
    # Two seeds each: every difference behind a verdict is a paired interval.
    judged = [v for v in record["verdicts"] if v["vs_sb"] is not None]
    assert judged and all(v["vs_sb"]["method"] == "paired t" and v["vs_sb"]["n"] <= 2 for v in judged)
    # LB trained on to SB's training accuracy of the same seed, at most SB's 60 updates.
    equal_train = [r for r in record["runs"] if r["method"] == "lb-train-acc"]
    for run, small in zip(equal_train, sb):
        assert run["extra"]["target_train_acc"] <= small["train_acc"] and run["updates"] <= 60
        assert run["extra"]["reached_target_at"] is None or run["train_acc"] >= run["extra"]["target_train_acc"]
    assert {v["key"]: v["gap"] for v in record["verdicts"]}["longer"] == "generalization gap"
    # SB's η was chosen on validation (the grid extended by at most one value a side) and every row used it.
    search = record["lr_search"]
    assert search["best"] == record["plan"]["setting"]["lr"] and 3 <= len(search["tried"]) <= 5
    assert search["kind"] in ("interior", "bounded by divergence", "cap reached")
    assert f"η = {search['best']:g}, SB's best validation accuracy" in record["table"]["caption"]
    for suffix in ("png", "svg"):
        assert (folder / "out" / f"largebatch-methods.{suffix}").stat().st_size > 0
    with RunStore(folder / "runs.db") as store:
        assert len(store.records("swap")) == 2 and len(store.records("largebatch")) == 1
        assert all(store.has_weights(r["run_ids"][-1]) for r in swap)


@pytest.mark.slow
@needs_methods
def test_a_second_pass_reuses_every_run(largebatch_run, capsys):
    folder, _, again = largebatch_run
    assert again == 0
    record = json.loads((folder / "out" / "largebatch.json").read_text())
    assert all(r["from_store"] for r in record["runs"])


@pytest.mark.parametrize("argv, text", [
    (["--scale", "huge"], "invalid choice"),
    (["--seeds", "0"], "seeds 0 is invalid"),
    (["--methods", "magic"], "unknown method 'magic'"),
])
def test_bad_input_exits_2_with_one_line_and_stores_nothing(tmp_path, capsys, argv, text):
    store = tmp_path / "runs.db"
    code = main(["largebatch", "--store", str(store), "--out", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and text in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    if store.exists():
        with RunStore(store) as opened:
            assert opened.runs() == [] and opened.records("largebatch") == []
