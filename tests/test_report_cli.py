"""`batchlab report STORE -o FILE` end to end on a small store the test fills, and its bad input."""

import json
import math
import re

import pytest
import torch
from torch import nn

from batchlab.analysis.noise import measure_noise
from batchlab.cli import main
from batchlab.config import RunConfig, run_id
from batchlab.report.context import NOISE_KIND, TOY_KEY, TOY_KIND
from batchlab.store import RunStore
from batchlab.timing import TimingPoint

HOSTILE = "<script>alert(1)</script>"


pytestmark = pytest.mark.usefixtures("one_thread")


def fill_store(path):
    """Runs at three batch sizes × two seeds (one with a hostile config value), timing rows, a noise
    record and a toy record: one of each kind of data the report reads."""
    with RunStore(path) as store:
        for batch, accuracy in ((8, 0.95), (64, 0.9), ("full", 0.3)):
            for seed in (0, 1):
                config = RunConfig(model="mlp", hidden=(8,), batch_size=batch, momentum=0.9, seed=seed, epochs=2,
                                   lr=0.05, device="cpu")
                identity = run_id(config, "cpu")
                data = config.to_dict() | {"device": "cpu", "note": HOSTILE}
                store.start_run(identity, data, {"device_name": HOSTILE, "device": "cpu"})
                resolved = 3600 if batch == "full" else batch
                store.finish_run(identity, "finished", {
                    "batch_size": resolved, "train_acc": accuracy + 0.01 * seed, "val_acc": accuracy - 0.02,
                    "test_acc": accuracy - 0.03, "updates": 2 * math.ceil(3600 / resolved)})
        for batch, seconds in ((1, 2e-4), (100, 1e-3), (1000, 8e-3)):
            point = TimingPoint(path="resident", device="cpu", device_name="test cpu", model="mlp",
                                dataset="mnist-5k", optimizer="momentum", batch_size=batch, n_examples=60000,
                                updates_per_epoch=-(-60000 // batch), per_update_s=[seconds] * 5,
                                updates_per_repeat=3, warmup_updates=1, per_epoch_s=seconds * -(-60000 // batch),
                                extrapolated=True, synthetic_data=True)
            store.add_timing(point.to_store_row({"device": "cpu", "device_name": "test cpu"}))
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
        x, y = torch.randn(40, 1, 2, 2), torch.randint(0, 3, (40,))
        noise = measure_noise(model, x, y, [4, 20], n_batches=4, scan_batches=2, scan_points=7,
                              point={"which": "end", "description": HOSTILE, "created": 1.0})
        store.put_record(NOISE_KIND, "test:end", noise.to_dict())
        store.put_record(TOY_KIND, TOY_KEY, {"arguments": {"surfaces": ["ball"], "sweep": [0.0, 0.9]},
                                             "report": {"surfaces": []}})


@pytest.mark.slow
def test_report_renders_every_section_the_store_has_data_for(tmp_path, capsys):
    store_path = tmp_path / "runs.db"
    fill_store(store_path)
    out = tmp_path / "site" / "report.html"
    summary = tmp_path / "site" / "numbers.json"
    assert main(["report", str(store_path), "-o", str(out), "--summary-json", str(summary)]) == 0
    printed = capsys.readouterr().out
    assert "sections summary, timing, accuracy, noise, momentum" in printed  # the answer leads

    page = out.read_text(encoding="utf-8")
    for section in ("timing", "accuracy", "noise", "momentum"):
        assert f'<section id="{section}">' in page
    # The summary comes first: before the contents, the facts and every other section.
    lead = page.index('<section id="summary" class="lead">')
    assert lead < page.index("<nav>") < page.index('<dl class="facts">') < page.index("<section id=\"timing\">")
    assert page.count("<section") == 5
    assert "http://" not in page and "https://" not in page and 'src="//' not in page
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the hostile description, shown as text
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    figure_ids = re.findall(r'<figure id="fig-([^"]+)"', page)
    for figure_id in figure_ids:
        assert (out.parent / "figures" / f"{figure_id}.png").stat().st_size > 0
        assert (out.parent / "figures" / f"{figure_id}.svg").read_text().lstrip().startswith("<?xml")
    assert "toy-ball" in figure_ids and "noise-scan" in figure_ids

    data = json.loads(summary.read_text())
    assert data["schema"] == "batchlab-lecture-summary/1"
    verdicts = {row["aspect"]: row["verdict"] for row in data["summary_table"]["rows"]}
    # The full batch ends at training accuracy 0.3, near chance, at equal epochs: the lecture's "optimization
    # fails", which agrees with it, with "step-limited" as the reason.
    assert verdicts["Optimization (training accuracy) — equal epochs (2)"] == "agrees"
    training = next(r for r in data["summary_table"]["rows"] if r["aspect"].startswith("Optimization"))
    assert "step-limited" in training["finding"]
    assert verdicts["Speed of one update, no parallelism (CPU)"] == "agrees"
    assert set(data["noise"]) == {"end"}


def test_report_of_an_empty_store_still_writes_a_page(tmp_path):
    store_path = tmp_path / "empty.db"
    RunStore(store_path).close()
    out = tmp_path / "report.html"
    assert main(["report", str(store_path), "-o", str(out)]) == 0
    assert "<h1>" in out.read_text()


@pytest.mark.parametrize("make", ["missing", "not a store"])
def test_bad_store_is_a_one_line_error(tmp_path, capsys, make):
    store_path = tmp_path / "runs.db"
    if make == "not a store":
        store_path.write_text("hello")
    assert main(["report", str(store_path), "-o", str(tmp_path / "r.html")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("batchlab: error: ") and error.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_report_shows_hessian_sharpness_and_landscape_records(tmp_path):
    store_path = tmp_path / "runs.db"
    with RunStore(store_path) as store:
        store.put_record("hessian", "abc:hessian", {"run_id": "abc", "config": {}, "top_eigenvalues": [3.5],
                                                    "smallest_eigenvalue": -0.25, "classification": "saddle"})
        store.put_record("sharpness", "abc:eps", {"run_id": "abc", "epsilon": 1e-3, "sharpness": 0.0421,
                                                  "iterations": 10, "environment": {"device": "cpu"}})
        store.put_record("landscape", "abc:line", {"run_id": "abc", "points": [0.1, 0.2], "kind": "line"})
    out = tmp_path / "report.html"
    assert main(["report", str(store_path), "-o", str(out)]) == 0
    page = out.read_text()
    assert '<section id="records">' in page
    for text in ("hessian records (1)", "smallest_eigenvalue", "saddle", "sharpness records (1)", "0.0421",
                 "landscape records (1)"):
        assert text in page
