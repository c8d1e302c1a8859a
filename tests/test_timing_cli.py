"""``batchlab timing`` end to end: table, JSON, figure files, store rows, and bad input."""

import json

import pytest
import torch

from batchlab.cli import main

FAST = ["--batch-size", "2", "full", "--n-examples", "16", "--budget-s", "0.01", "--warmup", "1",
        "--hidden", "8", "--device", "cpu"]


@pytest.mark.slow
def test_timing_writes_table_figures_json_and_store_rows(tmp_path, capsys):
    store, out = tmp_path / "runs.db", tmp_path / "timing"
    code = main(["timing", *FAST, "--store", str(store), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "time/update median [q25–q75]" in printed and "resident" in printed and "dataloader" in printed
    assert "4 timing rows added" in printed
    assert (out / "timing.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (out / "timing.svg").read_text()
    saved = json.loads((out / "timing.json").read_text())
    assert {(p["path"], p["batch_size"]) for p in saved["points"]} == {
        (path, b) for path in ("dataloader", "resident") for b in (2, 16)
    }

    from batchlab.store import RunStore

    with RunStore(store) as opened:
        rows = opened.timings()
    assert len(rows) == 4
    assert {r["data_path"] for r in rows} == {"dataloader", "resident"}
    assert all(r["repeats"] == 5 and r["model"] == "mlp" and r["n_examples"] == 16 for r in rows)


@pytest.mark.slow
def test_timing_json_format_and_no_store(tmp_path, capsys):
    store = tmp_path / "runs.db"
    code = main(["timing", *FAST, "--paths", "resident", "--format", "json", "--no-store",
                 "--store", str(store), "--out", str(tmp_path / "t")])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["batch_size"] for p in data["points"]] == [2, 16]
    assert all(len(p["per_update_s"]) == 5 for p in data["points"])
    assert not store.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch-size", "0"], "batch size 0 is too small"),
        (["--batch-size", "8", "x"], "batch size 'x' is not an integer"),
        (["--paths", "gpu"], "unknown timing path 'gpu'; allowed: dataloader, resident, cuda-graph"),
        (["--paths", "cuda-graph", "--device", "cpu"], "cuda-graph needs a CUDA device"),
        (["--repeats", "2"], "repeats 2 is too few"),
        (["--budget-s", "-1"], "budget -1.0 s is invalid"),
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    code = main(["timing", "--n-examples", "16", "--no-store", "--out", str(tmp_path / "t"), *argv])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("batchlab: error: ") and message in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "t").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only machine's message")
def test_cuda_graph_on_a_cpu_only_machine(tmp_path, capsys):
    assert main(["timing", "--paths", "cuda-graph", "--no-store", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "batchlab: error: cuda-graph needs a CUDA device; allowed on this machine: dataloader, resident"
    )


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["timing", "--help"])
    assert "Example: batchlab timing" in capsys.readouterr().out


USER_FAST = ["--batch-size", "4", "full", "--budget-s", "0.01", "--warmup", "1", "--device", "cpu"]


def test_timing_times_a_user_model_given_as_files(tmp_path, capsys, user_model_flags):
    store, out = tmp_path / "runs.db", tmp_path / "timing"
    assert main(["timing", *user_model_flags, *USER_FAST, "--store", str(store), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    timed = next(line for line in printed.splitlines() if line.startswith("timed: "))
    assert timed.startswith("timed: user:net.make_model·") and " on user:blobs.load_data·" in timed
    assert timed.endswith(", loss cross_entropy") and "4 timing rows added" in printed

    from batchlab.store import RunStore

    with RunStore(store) as opened:
        rows = opened.timings()
    assert {(r["data_path"], r["batch_size"]) for r in rows} == {
        (path, b) for path in ("dataloader", "resident") for b in (4, 48)}  # N = the file's 48 training examples
    model_fingerprint = rows[0]["extra"]["model_fingerprint"]
    data_fingerprint = rows[0]["extra"]["data_fingerprint"]
    assert f"user:net.make_model·{model_fingerprint} on user:blobs.load_data·{data_fingerprint}" in timed
    for row in rows:
        assert row["model"] == "user:net.make_model" and row["extra"]["dataset"] == "user:blobs.load_data"
        assert (row["extra"]["model_fingerprint"], row["extra"]["data_fingerprint"]) == (model_fingerprint,
                                                                                      data_fingerprint)
        assert row["n_examples"] == 48 and row["synthetic_data"] is False
    saved = json.loads((out / "timing.json").read_text())
    assert saved["settings"]["model"] == "user:net.make_model" and "hidden" in saved["settings"]
    assert all(p["network"] == "user:net.make_model" and p["loss"] == "cross_entropy" for p in saved["points"])


def test_timing_of_a_user_model_as_json(tmp_path, capsys, user_model_flags):
    code = main(["timing", *user_model_flags, *USER_FAST, "--paths", "resident", "--n-examples", "60",
                 "--format", "json", "--no-store", "--out", str(tmp_path / "t")])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["settings"]["dataset"] == "user:blobs.load_data" and data["settings"]["n_examples"] == 60
    assert [p["batch_size"] for p in data["points"]] == [4, 60]
    assert all(p["synthetic_data"] and p["data_fingerprint"] for p in data["points"])  # 48 examples made up to 60
    assert any("repeated in order up to N = 60" in note for note in data["notes"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "cnn"], "batchlab: error: --model cnn chooses the registry's model or data, which --model-file "
                             "and --data-file replace; allowed: the files without it, or it without the files"),
        (["--dataset", "mnist", "--hidden", "16", "8"], "batchlab: error: --dataset mnist, --hidden 16 8 choose the "
                                                         "registry's model or data"),
        (["--data-dir", "somewhere"], "--data-dir somewhere chooses"),
    ],
)
def test_registry_options_beside_files_are_refused_in_one_line(tmp_path, one_error_line, user_model_flags, argv,
                                                               message):
    out, store = tmp_path / "t", tmp_path / "runs.db"
    assert main(["timing", *user_model_flags, *argv, "--store", str(store), "--out", str(out)]) == 2
    assert message in one_error_line()
    assert not out.exists() and not store.exists()


def test_bad_model_or_data_files_are_one_line_errors(tmp_path, one_error_line, user_model_flags):
    model_file, data_file = user_model_flags[1], user_model_flags[3]
    for argv, message in [
        (["--model-file", model_file], "go together"),
        (["--model-file", f"{tmp_path}/absent.py:make_model", "--data-file", data_file], "absent.py does not exist"),
        (["--model-file", model_file.replace("make_model", "build"), "--data-file", data_file],
         "has no function build; allowed: one of"),
    ]:
        assert main(["timing", *argv, "--no-store", "--out", str(tmp_path / "t")]) == 2
        assert message in one_error_line()
    assert not (tmp_path / "t").exists()
