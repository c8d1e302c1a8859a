"""Every ``--format json`` output is strict JSON (RFC 8259): NaN and ±inf are printed as null.

Each command that has ``--format json`` runs here on tiny data, its stdout parsed by a parser
that refuses NaN and Infinity. The training run behind them diverges on purpose, so its losses
are NaN where they are stored: the case that printed ``NaN`` before. The experiments
(``gap``, ``largebatch``, ``advise``) share one tail, checked directly with NaN and infinities
in the record, and once each end to end on tiny settings (slow).
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest

import batchlab
from batchlab.cli import main
from batchlab.commands._experiment import finish, finish_experiment
from batchlab.experiments.shape import Experiment

pytestmark = pytest.mark.usefixtures("one_thread")

COMMANDS = Path(batchlab.__file__).parent / "commands"
TINY = dict(dataset="mnist-5k", model="mlp", hidden=(8,), epochs=1, batch_size=250, lr=0.1, device="cpu")


def strict_loads(text: str):
    """``json.loads`` that raises on NaN, Infinity and -Infinity (Python's own parser accepts them)."""

    def reject(constant: str):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=reject)


def json_output(capsys, argv: list[str]):
    capsys.readouterr()
    assert main(argv) == 0
    return strict_loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with two finished runs and one that diverged (its losses are NaN)."""
    path = tmp_path_factory.mktemp("json") / "runs.db"
    finished = [batchlab.train(batchlab.RunConfig(**TINY, seed=seed), store=path, progress=False) for seed in (0, 1)]
    diverged = batchlab.train(batchlab.RunConfig(**{**TINY, "lr": 1e30, "momentum": 0.9, "batch_size": 100}),
                              store=path, progress=False)
    assert diverged.status == "diverged" and math.isnan(diverged.summary["train_loss"])
    return path, [r.run_id for r in finished], diverged


def test_strict_loads_refuses_what_python_writes_for_nan():
    with pytest.raises(ValueError, match="NaN"):
        strict_loads(json.dumps({"loss": float("nan")}))
    with pytest.raises(ValueError, match="Infinity"):
        strict_loads(json.dumps([float("-inf")]))


def test_train_of_a_diverged_run_prints_null_for_nan(store, capsys):
    path, _, diverged = store
    flags = ["--hidden", "8", "--epochs", "1", "--batch-size", "100", "--lr", "1e30",
             "--momentum", "0.9", "--device", "cpu", "--store", str(path), "--no-progress"]
    payload = json_output(capsys, ["train", *flags, "--format", "json"])
    assert payload["run_id"] == diverged.run_id and payload["status"] == "diverged"
    assert payload["summary"]["train_loss"] is None


def test_runs_list_and_show(store, capsys):
    path, _, diverged = store
    listed = json_output(capsys, ["runs", "--store", str(path), "--format", "json", "--per-epoch"])
    assert len(listed) == 3
    shown = json_output(capsys, ["runs", "--store", str(path), "show", diverged.run_id, "--format", "json"])
    assert shown["run_id"] == diverged.run_id and shown["per_epoch"][0]["train_loss"] is None


def test_hessian_sharpness_and_landscape(store, capsys, tmp_path):
    path, (a, b), _ = store
    hessian = json_output(capsys, ["hessian", a, "--store", str(path), "--examples", "100", "--k", "1",
                                   "--device", "cpu", "--format", "json"])
    assert hessian["run_id"] == a
    sharpness = json_output(capsys, ["sharpness", a, "--store", str(path), "--examples", "100", "--epsilon", "1e-3",
                                     "--full-space-only", "--iterations", "2", "--device", "cpu", "--format", "json"])
    assert [row["run_id"] for row in sharpness] == [a]
    landscape = json_output(capsys, ["landscape", a, b, "--store", str(path), "--alphas", "0", "1", "3",
                                     "--examples", "100", "--test-examples", "100", "--out", str(tmp_path),
                                     "--device", "cpu", "--format", "json"])
    assert landscape["run_a"] == a and landscape["files"]


@pytest.mark.slow
def test_toy_timing_and_data_list(capsys, tmp_path):
    toy = json_output(capsys, ["toy", "--surface", "saddle", "--steps", "50", "--out", str(tmp_path / "toy"),
                               "--format", "json"])
    assert toy["files"]
    timing = json_output(capsys, ["timing", "--batch-size", "2", "--n-examples", "16", "--budget-s", "0.01",
                                  "--warmup", "1", "--hidden", "8", "--device", "cpu", "--paths", "resident",
                                  "--no-store", "--out", str(tmp_path / "timing"), "--format", "json"])
    assert [p["batch_size"] for p in timing["points"]] == [2] and timing["files"]
    rows = json_output(capsys, ["data", "list", "--format", "json"])
    assert any(row["name"] == "mnist-5k" for row in rows)


def test_the_experiment_tail_writes_and_prints_strict_json(tmp_path, capsys):
    record = {"plan": {"scale": "quick"}, "loss": float("nan"), "sharpness": [1.0, float("inf"), float("-inf")],
              "environment": {}, "seconds": 1.0, "created": "2026-01-01T00:00:00+00:00", "load_average": [None, None]}
    args = type("Args", (), {"out": tmp_path, "format": "json", "store": "runs.db"})()
    experiment = Experiment(kind="test", title="test", json_name="test.json",
                            text=lambda r: f"scale {r['plan']['scale']}")
    assert finish_experiment(args, experiment, record) == 0
    printed = strict_loads(capsys.readouterr().out)
    assert printed["loss"] is None and printed["sharpness"] == [1.0, None, None]
    assert printed["files"] == [str(tmp_path / "test.json")]
    assert strict_loads((tmp_path / "test.json").read_text())["loss"] is None

    args.format = "table"
    assert finish_experiment(args, experiment, record) == 0
    assert capsys.readouterr().out.splitlines() == ["scale quick", f"store runs.db; wrote {tmp_path / 'test.json'}"]


def test_finish_prints_a_list_as_it_is(capsys):
    assert finish("json", [{"x": float("nan")}], lambda: "unused") == 0
    assert strict_loads(capsys.readouterr().out) == [{"x": None}]


def test_no_command_prints_json_of_its_own():
    """Every command prints JSON through the one strict encoder (commands/_experiment.py), not json.dumps."""
    offenders = []
    for path in sorted(COMMANDS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "dumps"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "json"):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


# ------------------------------------------------------------------ the experiments, end to end


@pytest.mark.slow
def test_advise_json(tmp_path, capsys):
    record = json_output(capsys, ["advise", "--hidden", "8", "--train-subset", "256", "--device", "cpu", "--seeds", "1",
                                  "--lr-points", "1", "--min-updates", "8", "--budget-epochs", "1",
                                  "--batch-size", "32", "128", "--target", "val_acc=0.3",
                                  "--store", str(tmp_path / "r.db"), "--out", str(tmp_path / "out"), "--format", "json"])
    assert record["plan"]["batch_sizes"] == [32, 128] and record["files"]


@pytest.mark.slow
def test_gap_json(tmp_path, capsys, monkeypatch):
    from batchlab.experiments.gap import experiment
    from batchlab.experiments.gap.experiment import NetworkPlan

    tiny = NetworkPlan("f1", "F1", "mlp", "mnist-5k", (8,), sb=50, lb_fraction=0.2, sb_epochs=1, lb_epochs=1,
                       stop_patience=3, sharpness_examples=50, landscape_examples=50, landscape_test_examples=50,
                       train_subset=1000)
    monkeypatch.setattr(experiment, "_quick_networks", lambda: {"f1": tiny})
    record = json_output(capsys, ["gap", "--networks", "f1", "--seeds", "1", "--store", str(tmp_path / "r.db"),
                                  "--out", str(tmp_path / "out"), "--device", "cpu", "--format", "json"])
    assert [n["plan"]["paper"] for n in record["networks"]] == ["F1"] and record["files"]


@pytest.mark.slow
def test_largebatch_json(tmp_path, capsys, monkeypatch):
    from batchlab.experiments.largebatch import experiment
    from batchlab.experiments.largebatch.experiment import Setting

    tiny = Setting(dataset="mnist-5k", train_subset=500, model="mlp", hidden=(8,), small_batch=50, large_batch=250,
                   epochs=2, lr=0.05, momentum=0.9, warmup_epochs=1.0, lars_trust=0.01, lamb_lr=0.005,
                   swap_target=0.5, swap_workers=2, swap_epochs=1, sharpness_examples=50)
    monkeypatch.setattr(experiment, "_quick_setting", lambda data_dir=None: tiny)
    record = json_output(capsys, ["largebatch", "--seeds", "1", "--methods", "sqrt", "--store", str(tmp_path / "r.db"),
                                  "--out", str(tmp_path / "out"), "--device", "cpu", "--format", "json"])
    assert [r["method"] for r in record["runs"]] == ["sb", "lb", "lb-train-acc", "sqrt"] and record["files"]
