"""Which gap record the report shows where: a store with a record of the paper's networks and one of
a user's own model (``batchlab gap --model-file``) shows the paper's networks in the generalization
section and the summary table, and the user's model in a section of its own, titled by it — never a
user model's numbers as the paper's networks'. The records are written as the experiment writes
them, without training: the paper's from the store in tests/data, the user's made from it."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from batchlab.report import build_report
from batchlab.report.context import GAP_KIND, ReportContext
from batchlab.report.registry import summary_row_builders
from batchlab.store import RunStore

OLD_STORE = Path(__file__).parent / "data" / "store-before-shape"
USER_MODEL, USER_DATA = "user:net.make_model", "user:blobs.load_data"


def own_model_record(paper_record: dict, created: str, model: str = USER_MODEL, fingerprint: str = "0badcafe") -> dict:
    """``paper_record`` as ``batchlab gap --model-file`` writes it for a user's model: the plan's
    ``task``, the network named by the model, and other numbers (SB tests at 91.1 %)."""
    record = copy.deepcopy(paper_record)
    record["created"] = created
    record["plan"]["task"] = {"model": model, "model_fingerprint": fingerprint, "data": USER_DATA,
                              "data_fingerprint": "5eed5eed", "loss": "cross_entropy", "metric": "acc",
                              "origin": {"model_file": "/somewhere/net.py:make_model"}}
    for network in record["networks"]:
        numbers = network["numbers"]
        numbers.update(paper=model, model=model, dataset=USER_DATA)
        numbers["sb"]["test_acc"] = [0.911]
        network["plan"].update(paper=model, model=model, dataset=USER_DATA)
    for network in record["plan"]["networks"]:
        network.update(paper=model, model=model, dataset=USER_DATA)
    return record


@pytest.fixture
def store_path(tmp_path):
    """A copy of the store in tests/data (one gap record of the paper's F1 = mlp on mnist-5k), with
    the user's model's record added, newer than the paper's."""
    shutil.copy(OLD_STORE / "runs.db", tmp_path / "runs.db")
    with RunStore(tmp_path / "runs.db") as store:
        (paper,) = store.records(GAP_KIND)
        store.put_record(GAP_KIND, "quick|model=user", own_model_record(paper, "2027-01-01T00:00:00+00:00"))
    return tmp_path / "runs.db"


def sharp_minima_rows(ctx: ReportContext) -> list:
    return [row for row in ctx.summary.rows if row.protocol and "Generalization" in row.aspect
            or "sharpness" in row.quantity]


def test_the_papers_networks_lead_and_the_users_model_has_its_own_section(store_path):
    with RunStore(store_path) as store:
        report, ctx = build_report(store)
    sections = {section.id: section for section in report.sections}
    assert "gap-paper" not in sections  # no lecture record: the paper's networks are in "gap"
    generalization, own = sections["gap"], sections["gap-own"]
    assert [s.id for s in report.sections].index("gap") + 1 == [s.id for s in report.sections].index("gap-own")

    accuracy = generalization.tables[0]
    assert [row[:2] for row in accuracy.rows] == [["F1", "mlp / mnist-5k"]]
    assert not any(USER_MODEL in str(cell) for table in generalization.tables for row in table.rows for cell in row)
    assert own.title == ("Keskar et al.'s experiment on your model user:net.make_model·0badcafe on "
                         "user:blobs.load_data·5eed5eed (batchlab gap --model-file)")
    assert [row[1] for row in own.tables[0].rows] == [f"{USER_MODEL} / {USER_DATA}"]
    assert f"{USER_MODEL} on {USER_DATA}" in own.intro and f"{USER_MODEL} = " not in own.intro
    figure_ids = [figure.id for section in report.sections for figure in section.figures]
    assert len(figure_ids) == len(set(figure_ids))

    # The summary's flat-vs-sharp rows are the paper's network's: its note, its SB test accuracy.
    rows = sharp_minima_rows(ctx)
    assert rows and all("mlp on mnist-5k" in row.note and USER_MODEL not in row.note for row in rows)
    test_row = next(row for row in rows if row.quantity == "test accuracy")
    assert test_row.small.value == pytest.approx(0.467)


def test_a_store_with_only_a_users_model_has_no_summary_rows_from_it(tmp_path, store_path):
    with RunStore(store_path) as store:
        paper, own = sorted(store.records(GAP_KIND), key=lambda r: r["created"])
        only = RunStore(tmp_path / "only.db")
    with only:
        only.put_record(GAP_KIND, "quick|model=user", own)
        ctx = ReportContext(only, summary_row_builders())
        assert ctx.gap_records == [] and ctx.gap is None and ctx.own_gap_records == [own]
        assert sharp_minima_rows(ctx) == []
        from batchlab.experiments.gap.report import gap_own_section, gap_section

        assert gap_section(ctx) is None and USER_MODEL in gap_own_section(ctx).title


def test_the_newest_record_of_each_own_model_is_kept_and_the_newest_model_shown(store_path):
    from batchlab.experiments.gap.report import gap_own_section

    with RunStore(store_path) as store:
        paper, own = sorted(store.records(GAP_KIND), key=lambda r: r["created"])
        store.put_record(GAP_KIND, "quick|model=user|older", own | {"created": "2026-06-01T00:00:00+00:00"})
        other = own_model_record(paper, "2027-02-01T00:00:00+00:00", model="user:cnn.make_cnn", fingerprint="c0ffee00")
        store.put_record(GAP_KIND, "quick|model=cnn", other)
        ctx = ReportContext(store)
        assert [r["created"] for r in ctx.own_gap_records] == [own["created"], other["created"]]
        assert ctx.gap_records == [paper]
        section = gap_own_section(ctx)
    assert "user:cnn.make_cnn·c0ffee00" in section.title
    assert any(f"{USER_MODEL}·0badcafe on {USER_DATA}·5eed5eed ({own['created']})" in note for note in section.notes)
