"""``batchlab gap`` on a user's own model and data (``--model-file``/``--data-file``, ``task=``):
trained and measured as the paper's networks are, refused in one line where it cannot be judged,
with an estimate of its time before training."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import replace

import pytest

from batchlab.cli import main
from batchlab.errors import ConfigError
from batchlab.experiments import gap as gap_package
from batchlab.experiments.gap import experiment, plan_gap, run_gap
from batchlab.experiments.gap.experiment import NetworkPlan, record_key, with_overrides
from batchlab.store import RunStore
from batchlab.store.identity import ORIGIN_KEY, model_digest
from batchlab.task.files import task_from_files
from batchlab.timing import estimate
from conftest import REGRESSION_MODEL_FILE, USER_DATA_FILE, USER_MODEL_FILE
from conftest import README, checked_task_identity, strict_json, write_readme_files, write_user_files

pytestmark = pytest.mark.usefixtures("one_thread")


REGRESSION_DATA_FILE = USER_DATA_FILE.replace(
    "y = torch.randint(0, 3, (96,), generator=generator)", "y = torch.randn(96, 1, generator=generator)"
).replace("x = centres[y] + ", "x = ")


def tiny_networks() -> dict[str, NetworkPlan]:
    """The quick scale's F1 protocol (which a user's model takes) shrunk to seconds."""
    return {"f1": NetworkPlan("f1", "F1", "keskar-f1", "mnist-5k", (8,), sb=16, lb_fraction=0.1, sb_epochs=3,
                              lb_epochs=3, stop_patience=3, sharpness_examples=24, landscape_examples=24,
                              landscape_test_examples=24, curvature_examples=24, trace_samples=2),
            "c1": NetworkPlan("c1", "C1", "keskar-c1", "mnist-5k", None, sb=16, lb_fraction=0.1, sb_epochs=1,
                              lb_epochs=1, stop_patience=3, sharpness_examples=24, landscape_examples=24,
                              landscape_test_examples=24)}


@pytest.fixture(scope="module")
def own_gap_run(tmp_path_factory):
    """One seed of the user's blobs classifier (48 training examples) with SB = 4 and LB = 16,
    twice: a table with the estimate forced on, then JSON with every run from the store. A loose
    at-a-minimum rule (99 %) lets these short runs count as minima, so every measurement runs."""
    folder = tmp_path_factory.mktemp("gap-own")
    flags = write_user_files(folder)
    patch = pytest.MonkeyPatch()
    patch.setattr(experiment, "_quick_networks", tiny_networks)
    patch.setattr(estimate, "ESTIMATE_NOTE_S", 0.0)  # every estimate is printed
    plan = gap_package.plan_gap
    patch.setattr(gap_package, "plan_gap", lambda *a, **k: replace(plan(*a, **k), minimum_fraction=0.99))
    try:
        argv = ["gap", *flags, "--seeds", "1", "--small-batch", "4", "--large-batch", "16", "--store",
                str(folder / "runs.db"), "--device", "cpu", "--no-progress"]
        first = _run(argv + ["--out", str(folder / "out")])
        again = _run(argv + ["--out", str(folder / "again"), "--format", "json"])
    finally:
        patch.undo()
    return folder, flags, first, again


def _run(argv):
    """(exit code, stdout, stderr) of ``batchlab argv``."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_the_users_model_trains_in_both_regimes_and_the_record_names_its_files(own_gap_run):
    folder, flags, (code, _, err), _ = own_gap_run
    assert code == 0, err
    record = strict_json((folder / "out" / "gap.json").read_text())
    task = checked_task_identity(record["plan"]["task"], flags)
    (network,) = record["networks"]
    assert network["plan"]["model"] == task.model_id and network["n_train"] == 48 and network["n_test"] == 24
    runs = network["runs"]
    assert [(r["regime"], r["batch_size"]) for r in runs] == [("SB", 4), ("LB", 16)]
    # Both regimes measured at their minima with the task's model rebuilt from its files.
    assert all(r["minimum"]["initial"]["reproduced"] for r in runs)
    assert all(r["minimum"]["at_minimum"] and r["sharpness"] and r["curvature"] for r in runs)
    assert network["parametric"] is not None
    # The paper's numbers are about its networks: none beside the user's.
    assert record["tables"]["accuracy"]["rows"][0][5] == "—"
    with RunStore(folder / "runs.db") as store:
        stored = store.runs()
        assert {r.config["model"] for r in stored} == {task.model_id}
        assert all(r.environment[ORIGIN_KEY]["data_file"].endswith("blobs.py:load_data") for r in stored)


@pytest.mark.slow
def test_the_estimate_comes_before_training_and_a_second_pass_reuses_every_run(own_gap_run):
    _, _, (_, _, err), (code, out, again_err) = own_gap_run
    lines = err.splitlines()
    said = [i for i, line in enumerate(lines) if line.startswith("[gap] estimated time: up to about ")]
    trained = [i for i, line in enumerate(lines) if "SB seed 0 (B = 4" in line]
    assert len(said) == 1 and trained and said[0] < trained[0]
    assert "to train the 2 runs not in the store" in lines[said[0]]
    assert code == 0
    document = strict_json(out)
    assert all(r["from_store"] for r in document["networks"][0]["runs"])
    assert "estimated time" not in again_err  # nothing left to train


@pytest.mark.slow
def test_hessian_and_sharpness_rebuild_a_stored_run_of_the_users_model(own_gap_run):
    folder, _, _, _ = own_gap_run
    record = strict_json((folder / "out" / "gap.json").read_text())
    run_id = record["networks"][0]["runs"][0]["run_id"]
    store = str(folder / "runs.db")
    assert _run(["hessian", run_id, "--store", store, "--device", "cpu"])[0] == 0
    code, out, _ = _run(["sharpness", run_id, "--store", store, "--device", "cpu", "--examples", "24"])
    assert code == 0 and "sharpness" in out.lower()


def test_run_gap_prints_an_estimate_from_a_real_pilot_before_the_first_run(tmp_path, monkeypatch):
    """A pilot read through an injected clock that says every reading is 1,000 s later: the
    estimate is long, so it is printed, once, before anything trains."""
    monkeypatch.setattr(experiment, "_quick_networks", tiny_networks)
    flags = write_user_files(tmp_path)
    task = task_from_files(flags[1], flags[3])
    plan = with_overrides(plan_gap("quick", seeds=1, task=task, small_batch=4, large_batch=16, device="cpu"),
                          sb_epochs=1, lb_epochs=1)
    ticks = iter(range(0, 10 ** 9, 1000))
    events: list[str] = []
    with RunStore(tmp_path / "runs.db") as store:
        run_gap(plan, store, log=events.append, notice=lambda line: events.append("NOTICE " + line),
                clock=lambda: float(next(ticks)))
    notices = [i for i, line in enumerate(events) if line.startswith("NOTICE estimated time: up to about ")]
    assert len(notices) == 1 and notices[0] < next(i for i, line in enumerate(events) if "SB seed 0" in line)
    # A quiet clock: a short run says nothing.
    quiet: list[str] = []
    with RunStore(tmp_path / "other.db") as store:
        run_gap(plan, store, log=lambda _: None, notice=quiet.append, clock=lambda: 0.0)
    assert quiet == []


def test_the_plan_takes_the_scales_protocol_and_the_tasks_identity(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "_quick_networks", tiny_networks)
    flags = write_user_files(tmp_path)
    task = task_from_files(flags[1], flags[3])
    plan = plan_gap("quick", task=task, small_batch=4)
    (net,) = plan.networks
    assert (net.model, net.dataset, net.hidden, net.target_train_acc) == (task.model_id, task.dataset_id, None, None)
    assert (net.sb, net.lb_size, net.lb_fraction, net.sb_epochs) == (4, None, 0.1, 3)  # LB = 10 % of 48 = 5
    assert plan.run_config(net, "SB", 4, 0).model == task.model_id
    assert plan.to_dict()["task"]["origin"]["data_file"].endswith("blobs.py:load_data")
    json.dumps(plan.to_dict())  # the task by its identity, never its tensors
    registry = plan_gap("quick")
    assert registry.to_dict()["task"] is None
    assert record_key(plan).startswith("quick|networks=own|") and model_digest(task.model_fingerprint) in record_key(plan)
    assert record_key(registry) == "quick|networks=f1,c1|seeds=3|subspace=0"  # unchanged for the paper's networks


@pytest.mark.parametrize("model, data, extra, text", [
    (REGRESSION_MODEL_FILE, REGRESSION_DATA_FILE, [],
     "gap compares accuracies and the sharpness of the cross-entropy; the model net.make_model has loss mse and "
     "metric mse; allowed: a classification model (loss cross_entropy, metric accuracy)"),
    (USER_MODEL_FILE, USER_DATA_FILE, [],
     "user:blobs.load_data has 48 training examples, so LB = 10% = 5 is not larger than SB = 16; allowed: a dataset "
     "with more than 160 training examples or --small-batch and --large-batch with SB < LB"),
    (USER_MODEL_FILE, USER_DATA_FILE, ["--small-batch", "8", "--large-batch", "64"],
     "LB = 64 with SB = 8 on 48 training examples; allowed: SB < LB ≤ 48 (--small-batch, --large-batch)"),
    (USER_MODEL_FILE, USER_DATA_FILE, ["--small-batch", "0"], "small batch 0 is invalid; allowed: an integer ≥ 1"),
])
def test_a_task_gap_cannot_judge_is_refused_before_anything_trains(tmp_path, one_error_line, model, data, extra,
                                                                  text):
    flags = write_user_files(tmp_path, model, data)
    code = main(["gap", *flags, *extra, "--store", str(tmp_path / "runs.db"), "--out", str(tmp_path / "out")])
    assert code == 2 and text in one_error_line()
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs.db").exists()


def test_batch_sizes_without_the_files_are_refused(tmp_path, one_error_line):
    code = main(["gap", "--small-batch", "8", "--store", str(tmp_path / "runs.db")])
    assert code == 2 and "--small-batch and --large-batch apply to your own model" in one_error_line()
    with pytest.raises(ConfigError, match="networks f1 choose the paper's networks, which the task replaces"):
        flags = write_user_files(tmp_path)
        plan_gap("quick", task=task_from_files(flags[1], flags[3]), networks=["f1"])


@pytest.mark.slow
def test_the_readmes_gap_command_runs_as_written(tmp_path, monkeypatch):
    """The README's ``batchlab gap --model-file …`` line, on the README's CNN and images files."""
    monkeypatch.chdir(tmp_path)
    write_readme_files(tmp_path)
    (line,) = re.findall(r"`(batchlab gap --model-file [^`]+)`", README.read_text(encoding="utf-8"))
    code, _, err = _run(shlex.split(line)[1:] + ["--out", "gap", "--no-progress"])
    assert code == 0, err
    record = strict_json((tmp_path / "gap" / "gap.json").read_text())
    assert record["plan"]["task"]["model"] == "user:cnn.make_cnn"
    assert [r["batch_size"] for r in record["networks"][0]["runs"]] == [4, 24, 4, 24]


@pytest.mark.slow
def test_the_reports_section_names_the_users_model_not_the_papers_networks(own_gap_run):
    from types import SimpleNamespace

    from batchlab.experiments.gap.report import gap_own_section

    folder, _, _, _ = own_gap_run
    record = strict_json((folder / "out" / "gap.json").read_text()) | {"created": "2026-01-01T00:00:00"}
    section = gap_own_section(SimpleNamespace(own_gap_records=[record]))
    task = record["plan"]["task"]
    assert section.title == (f"Keskar et al.'s experiment on your model user:net.make_model·{task['model_fingerprint']} "
                             f"on user:blobs.load_data·{task['data_fingerprint']} (batchlab gap --model-file)")
    assert "user:net.make_model" in section.intro


@pytest.mark.parametrize("experiment_name", ["gap", "largebatch"])
def test_streamed_data_is_refused_in_one_line_before_anything_trains(tmp_path, experiment_name):
    """The measurements take the training split as tensors: data kept off the device is refused."""
    import torch
    from torch import nn

    import batchlab
    from batchlab.experiments.largebatch import plan_largebatch, run_largebatch

    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 4, generator=generator), torch.randint(0, 3, (96,), generator=generator)
    task = batchlab.Task(lambda: nn.Linear(4, 3), (x[:48], y[:48], x[48:72], y[48:72], x[72:], y[72:]),
                         name="streamed", keep_on_device=False)
    with RunStore(tmp_path / "runs.db") as store:
        with pytest.raises(ConfigError, match=f"{experiment_name} measures gradient norms and sharpness on the "
                                              "training split as tensors, but the data data is streamed"):
            if experiment_name == "gap":
                run_gap(plan_gap("quick", task=task, small_batch=4, large_batch=16, device="cpu"), store)
            else:
                run_largebatch(plan_largebatch("quick", task=task, small_batch=4, large_batch=16, device="cpu"),
                               store)
        assert store.runs() == []
