"""``batchlab largebatch`` on a user's own model and data (``--model-file``/``--data-file``, ``task=``)."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
import torch

from batchlab.cli import main
from batchlab.errors import ConfigError
from batchlab.experiments.largebatch import experiment, plan_largebatch, run_largebatch
from batchlab.experiments.largebatch.experiment import Setting, record_key
from batchlab.store import RunStore
from batchlab.task.files import task_from_files
from conftest import REGRESSION_MODEL_FILE, USER_DATA_FILE, USER_MODEL_FILE
from conftest import checked_task_identity, strict_json, tiny_largebatch_setting, write_user_files

NO_TEST_DATA_FILE = """
import torch

def load_data():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(72, 4, generator=generator)
    y = torch.randint(0, 3, (72,), generator=generator)
    return x[:48], y[:48], x[48:], y[48:]
"""


def tiny_setting(data_dir=None) -> Setting:
    """The quick scale shrunk to the 48 training examples of the three blobs: SB = 4, LB = 16."""
    return tiny_largebatch_setting(small_batch=4, large_batch=16, sharpness_examples=24)


@pytest.fixture(scope="module")
def own_model_run(tmp_path_factory):
    """The quick scale's comparison on the blobs with SB = 4 and LB = 16 (its own 32 and 1024 do
    not fit 48 training examples), twice: a table, then JSON with every run from the store."""
    folder = tmp_path_factory.mktemp("largebatch-own")
    flags = write_user_files(folder)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        argv = ["largebatch", *flags, "--scale", "quick", "--small-batch", "4", "--large-batch", "16",
                "--store", str(folder / "runs.db"), "--out", str(folder / "out"), "--device", "cpu"]
        code = main(argv)
        again = main(argv + ["--format", "json", "--out", str(folder / "again")])
    finally:
        torch.set_num_threads(threads)
    return folder, flags, code, again


@pytest.mark.slow
def test_every_row_trains_the_users_model_and_the_record_names_it(own_model_run):
    folder, flags, code, _ = own_model_run
    assert code == 0
    record = strict_json((folder / "out" / "largebatch.json").read_text())
    identity = record["plan"]["task"]
    task = checked_task_identity(identity, flags)
    assert re.fullmatch(r"[0-9a-f]{8}", identity["model_fingerprint"])
    # The table's header names the model and data with their fingerprints.
    assert record["table"]["caption"].startswith(
        f"{task.model_id}·{identity['model_fingerprint']} on {task.dataset_id}·{identity['data_fingerprint']}, "
        "SB = 4 vs LB = 16, 6 epochs")
    assert len(record["table"]["rows"]) == 11 and record["n_train"] == 48 and record["n_test"] == 24
    with RunStore(folder / "runs.db") as store:
        runs = store.runs()
        assert runs and {r.config["model"] for r in runs} == {task.model_id}
        assert {r.config["dataset"] for r in runs} == {task.dataset_id}
        assert len(store.records("largebatch")) == 1
    finished = [r for r in record["runs"] if r["status"] == "finished"]
    assert len(finished) >= 18 and all(r["sharpness"] is not None for r in finished)
    # SWAP's phase 3 rebuilt the user's model from the task to average the workers' weights.
    assert any(r["method"] == "swap" and r["run_ids"][-1].startswith("swap-") for r in finished)


@pytest.mark.slow
def test_a_second_pass_reuses_every_run_and_prints_strict_json(own_model_run):
    folder, _, _, again = own_model_run
    assert again == 0
    record = strict_json((folder / "again" / "largebatch.json").read_text())
    assert all(r["from_store"] for r in record["runs"])


@pytest.mark.slow
def test_json_output_of_the_command_is_strict(tmp_path, capsys, monkeypatch):
    """One seed, no method beside the baselines: stdout is one strict JSON document."""
    monkeypatch.setattr(experiment, "_quick_setting", tiny_setting)
    flags = write_user_files(tmp_path)
    code = main(["largebatch", *flags, "--seeds", "1", "--methods", "sqrt", "--store", str(tmp_path / "runs.db"),
                 "--out", str(tmp_path / "out"), "--device", "cpu", "--format", "json"])
    assert code == 0
    document = strict_json(capsys.readouterr().out)
    assert document["plan"]["task"]["model"] == "user:net.make_model"
    assert [row[0] for row in document["table"]["rows"]][-1] == "LB + √ scaling"


@pytest.mark.parametrize("given, missing", [("--model-file", "--data-file"), ("--data-file", "--model-file")])
def test_one_file_without_the_other_is_refused_in_one_line(tmp_path, one_error_line, given, missing):
    code = main(["largebatch", given, "x.py:f", "--store", str(tmp_path / "runs.db")])
    assert code == 2 and f"{given} needs {missing}" in one_error_line()
    assert not (tmp_path / "runs.db").exists()


def test_a_model_flag_beside_the_files_is_refused_in_one_line(tmp_path, one_error_line):
    """largebatch has no --model (the scale names the network): one line, nothing stored."""
    flags = write_user_files(tmp_path)
    code = main(["largebatch", *flags, "--model", "cnn", "--store", str(tmp_path / "runs.db")])
    assert code == 2 and "largebatch: unrecognized argument --model" in one_error_line()
    assert not (tmp_path / "runs.db").exists()


@pytest.mark.parametrize("model, data, text", [
    (REGRESSION_MODEL_FILE, USER_DATA_FILE,
     "largebatch compares accuracies and the sharpness of the cross-entropy; the model net.make_model has loss mse "
     "and metric mse; allowed: a classification model (loss cross_entropy, metric accuracy)"),
    (USER_MODEL_FILE, NO_TEST_DATA_FILE, "has no test split; allowed: data with a test split"),
    (USER_MODEL_FILE, USER_DATA_FILE, "batch sizes SB = 32, LB = 1024 on 48 training examples; allowed: SB < LB "
                                      "≤ the training-set size (--small-batch, --large-batch)"),
])
def test_a_task_the_comparison_cannot_judge_is_refused_before_anything_trains(tmp_path, one_error_line, model, data,
                                                                             text):
    """The regression model's targets must fit it: floats of one column."""
    if model is REGRESSION_MODEL_FILE:
        data = data.replace("y = torch.randint(0, 3, (96,), generator=generator)",
                            "y = torch.randn(96, 1, generator=generator)").replace("x = centres[y] + ", "x = ")
    flags = write_user_files(tmp_path, model, data)
    code = main(["largebatch", *flags, "--store", str(tmp_path / "runs.db"), "--out", str(tmp_path / "out")])
    assert code == 2 and text in one_error_line()
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs.db").exists()


def test_small_and_large_batch_replace_the_scales(tmp_path, one_error_line):
    plan = plan_largebatch("quick", small_batch=8, large_batch=64)
    assert (plan.setting.small_batch, plan.setting.large_batch, plan.setting.epochs) == (8, 64, 6)
    # Other batch sizes are another comparison: its record is kept beside the scale's.
    assert record_key(plan) == record_key(plan_largebatch("quick")) + "|sb=8|lb=64"
    scales_own = plan_largebatch("quick", small_batch=32, large_batch=1024)
    assert record_key(scales_own) == record_key(plan_largebatch("quick"))
    with pytest.raises(ConfigError, match="small batch 0 is invalid; allowed: an integer ≥ 1"):
        plan_largebatch("quick", small_batch=0)
    flags = write_user_files(tmp_path)
    code = main(["largebatch", *flags, "--small-batch", "16", "--large-batch", "16", "--store",
                 str(tmp_path / "runs.db"), "--out", str(tmp_path / "out")])
    assert code == 2 and "batch sizes SB = 16, LB = 16 on 48 training examples" in one_error_line()


def test_the_plan_keeps_the_scale_and_takes_the_tasks_identity(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "_quick_setting", tiny_setting)
    flags = write_user_files(tmp_path)
    task = task_from_files(flags[1], flags[3])
    plan = plan_largebatch("quick", task=task)
    registry = plan_largebatch("quick")
    s = plan.setting
    assert (s.model, s.dataset, s.hidden, s.train_subset) == (task.model_id, task.dataset_id, None, None)
    assert (s.small_batch, s.large_batch, s.epochs, s.lr_grid) == (4, 16, 3, (0.025, 0.05, 0.1))
    assert plan.base_config(0).model == task.model_id
    assert registry.to_dict()["task"] is None and plan.to_dict()["task"]["loss"] == "cross_entropy"
    # A comparison on the user's files is kept beside the registry's, not in its place.
    assert record_key(plan) != record_key(registry) and s.model_fingerprint in record_key(plan)
    json.dumps(plan.to_dict())  # the task is recorded by its identity, never its tensors


def test_a_regression_task_is_refused_by_the_python_plan_too():
    from batchlab import Task

    x, y = torch.randn(16, 4), torch.randn(16, 1)
    task = Task(lambda: torch.nn.Linear(4, 1), (x, y, x, y, x, y), name="line", loss="mse")
    with pytest.raises(ConfigError, match="allowed: a classification model"):
        plan_largebatch("quick", task=task)


def test_run_largebatch_prints_an_estimate_from_a_real_pilot_before_the_first_run(tmp_path, monkeypatch):
    """A pilot read through an injected clock that says every reading is 1,000 s later: the
    estimate is long, so it is printed, once, before SB's η search trains anything; a rerun with
    every run stored says nothing."""
    monkeypatch.setattr(experiment, "_quick_setting", lambda data_dir=None: replace(tiny_setting(data_dir), epochs=2,
                                                                                    lr_grid=(0.05, 0.1),
                                                                                    lr_extension_cap=0))
    flags = write_user_files(tmp_path)
    plan = plan_largebatch("quick", seeds=1, methods=[], task=task_from_files(flags[1], flags[3]), device="cpu")
    events: list[str] = []

    def run() -> None:
        ticks = iter(range(0, 10 ** 9, 1000))
        with RunStore(tmp_path / "runs.db") as store:
            run_largebatch(plan, store, log=events.append, notice=lambda line: events.append("NOTICE " + line),
                           clock=lambda: float(next(ticks)))

    run()
    notices = [i for i, line in enumerate(events) if line.startswith("NOTICE estimated time: up to about ")]
    assert len(notices) == 1 and notices[0] == 0 and events[1].startswith("SB at η")
    # 2 runs of the η search, then SB, LB and LB to SB's training accuracy.
    assert "to train the 5 runs not in the store" in events[0]
    events.clear()
    run()
    assert not any(line.startswith("NOTICE") for line in events)
