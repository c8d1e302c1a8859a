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
