"""``batchlab hessian`` and ``batchlab sharpness`` on a small run trained on the embedded data."""

from __future__ import annotations

import json

import pytest

import batchlab
from batchlab.cli import main
from batchlab.geometry import select_examples, top_eigenvalues
from batchlab.store import RunStore
from batchlab.training.restore import restore_run

SMALL = dict(dataset="mnist-5k", model="mlp", hidden=(8,), epochs=1, batch_size=256, lr=0.1, device="cpu")
EXAMPLES = "300"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    store_path = tmp_path_factory.mktemp("geometry") / "runs.db"
    kept = batchlab.train(batchlab.RunConfig(**SMALL), store=store_path, progress=False)
    unkept = batchlab.train(batchlab.RunConfig(**SMALL, seed=1), store=store_path, progress=False, keep_weights=False)
    return store_path, kept.run_id, unkept.run_id


@pytest.mark.slow
def test_hessian_prints_stores_and_matches_the_library(trained, capsys):
    store_path, run_id, _ = trained
    code = main(["hessian", run_id, "--store", str(store_path), "--k", "2", "--trace", "--trace-samples", "5",
                 "--examples", EXAMPLES, "--tol", "1e-6", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    for label in ("top eigenvalues", "most negative eigenvalue", "trace (Hutchinson)", "gradient norm", "point"):
        assert label in out
    with RunStore(store_path, create=False) as store:
        items = store.record_items("hessian")
        restored = restore_run(store, run_id, device="cpu")
    assert len(items) == 1
    key, value = items[0]
    assert key.startswith(run_id) and "examples=300" in key and "k=2" in key
    assert value["run_id"] == run_id and value["examples"] == 300
    assert len(value["top_eigenvalues"]) == 2
    assert value["top_eigenvalues"][0] >= value["top_eigenvalues"][1] >= value["smallest_eigenvalue"]
    assert value["trace_samples"] == 5
    assert value["classification"]["kind"] in batchlab.geometry.KINDS
    assert value["environment"]["device"] == "cpu"
    x, y = select_examples(restored.splits.train.x, restored.splits.train.y, 300, 0)
    direct = top_eigenvalues(restored.model, x, y, k=2, tol=1e-6)
    assert value["top_eigenvalues"] == pytest.approx(list(direct.values), rel=1e-4)


@pytest.mark.slow
def test_hessian_json_output(trained, capsys):
    store_path, run_id, _ = trained
    assert main(["hessian", run_id, "--store", str(store_path), "--examples", "100", "--format", "json", "--device", "cpu"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["examples"] == 100 and payload["trace"] is None
    assert payload["key"].startswith(run_id)


@pytest.mark.slow
def test_sharpness_table_and_records(trained, capsys):
    store_path, run_id, _ = trained
    code = main(["sharpness", run_id, "--store", str(store_path), "--epsilon", "1e-3", "5e-4",
                 "--subspace-dim", "20", "--examples", EXAMPLES, "--iterations", "3", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    assert "full" in out and "random" in out
    with RunStore(store_path, create=False) as store:
        rows = store.records("sharpness")
    assert len(rows) == 4
    n_params = 784 * 8 + 8 + 8 * 10 + 10
    assert sorted((r["full_space"], r["p"], r["epsilon"]) for r in rows) == [
        (False, 20, 5e-4), (False, 20, 1e-3), (True, n_params, 5e-4), (True, n_params, 1e-3)
    ]
    for row in rows:
        assert row["value"] >= 0 and row["iterations"] == 3 and row["examples"] == 300
        assert row["value"] == pytest.approx(100 * (row["max_loss"] - row["loss"]) / (1 + row["loss"]))
        assert row["corner_value"] is None and row["search_rule"] == "lbfgsb-tol0-origin"
    # The measures at the point, the same in every row: λ_max beside the optimizer's bound
    # (SMALL: momentum 0, lr 0.1 → 2/η = 20), the trace with its standard error, adaptive sharpness.
    assert len({(r["lambda_max"], r["trace"], r["adaptive_sharpness"]) for r in rows}) == 1
    row = rows[0]
    assert row["stability_bound"] == pytest.approx(20.0) and row["stability_rule"] == "2/η (gradient descent)"
    assert row["lambda_max"] > 0 and row["lambda_max_residual"] <= 1e-3 * row["lambda_max"]
    assert row["trace_samples"] == 100 and row["trace_stderr"] > 0
    assert row["adaptive_sharpness"] >= 0 and row["adaptive_rho"] == 0.01 and row["adaptive_eta"] == 0
    for label in ("λ_max", "stability bound of the run's optimizer: 20 = 2/η", "Hessian trace", "adaptive sharpness"):
        assert label in out


@pytest.mark.slow
def test_sharpness_full_space_only_json(trained, capsys):
    store_path, run_id, _ = trained
    code = main(["sharpness", run_id, "--store", str(store_path), "--epsilon", "2e-3", "--full-space-only",
                 "--examples", "100", "--iterations", "2", "--format", "json", "--device", "cpu", "--corner-start",
                 "--trace-samples", "0", "--adaptive-rho", "0.02", "--adaptive-eta", "0.1"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["full_space"] for row in rows] == [True]
    assert rows[0]["epsilon"] == 2e-3
    assert rows[0]["corner_start"] and rows[0]["corner_value"] >= rows[0]["value"]
    assert rows[0]["trace"] is None and (rows[0]["adaptive_rho"], rows[0]["adaptive_eta"]) == (0.02, 0.1)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sharpness", "{run}", "--epsilon", "0"], "epsilon 0.0 is invalid"),
        (["sharpness", "{run}", "--epsilon", "1e-3", "-0.001"], "epsilon -0.001 is invalid"),
        (["sharpness", "{run}", "--subspace-dim", "100000"], "subspace dimension 100000 is invalid"),
        (["sharpness", "{run}", "--subspace-dim", "5", "--full-space-only"], "not allowed with argument"),
        (["sharpness", "{run}", "--trace-samples", "1"], "trace samples 1 is invalid"),
        (["sharpness", "{run}", "--adaptive-rho", "0"], "ρ 0.0 is invalid"),
        (["hessian", "{run}", "--examples", "999999"], "examples 999999 is invalid"),
        (["hessian", "{run}", "--k", "0"], "k=0"),
        (["hessian", "{run}", "--tol", "0"], "tolerance"),
        (["hessian", "no-such-run"], "unknown run id 'no-such-run'"),
        (["sharpness", "no-such-run"], "unknown run id 'no-such-run'"),
        (["hessian", "{unkept}"], "has no saved weights"),
        (["sharpness", "{unkept}"], "has no saved weights"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(trained, one_error_line, argv, message):
    store_path, run_id, unkept = trained
    argv = [a.format(run=run_id, unkept=unkept) for a in argv] + ["--store", str(store_path), "--device", "cpu"]
    assert main(argv) == 2
    assert message in one_error_line()


@pytest.mark.parametrize("command", ["hessian", "sharpness"])
def test_missing_store_is_one_line(tmp_path, one_error_line, command):
    assert main([command, "abc", "--store", str(tmp_path / "missing.db")]) == 2
    one_error_line()
    assert not (tmp_path / "missing.db").exists()


@pytest.mark.parametrize("command", ["hessian", "sharpness"])
def test_help_has_an_example(capsys, command):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert "Example: batchlab " + command in capsys.readouterr().out


@pytest.mark.slow
def test_one_epoch_is_no_minimum_and_both_commands_say_so_on_one_stderr_line(trained, capsys):
    # One epoch of B = 256 leaves the gradient large: the second-order test says "not critical",
    # and afterwards sharpness also cites that stored result.
    store_path, run_id, _ = trained
    assert main(["hessian", run_id, "--store", str(store_path), "--examples", EXAMPLES, "--device", "cpu"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: this point may not be a minimum: ")
    assert "not critical" in err[0]
    assert main(["sharpness", run_id, "--store", str(store_path), "--epsilon", "1e-3", "--full-space-only",
                 "--examples", EXAMPLES, "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "stored hessian: the second-order test says not critical" in err[0]
    assert "iters, evals: L-BFGS-B iterations and f evaluations of the paper's search from y = 0" in captured.out
