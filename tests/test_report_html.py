"""The HTML report: self-contained, escaped, sections in order, and other modules can add sections."""

import base64
import re

import pytest

from batchlab.report import registry
from batchlab.report.build import build_report, coerce_section
from batchlab.report.document import Disclosure, FigureItem, Report, ReportSection, TableItem
from batchlab.report.html import render_html
from batchlab.store import RunStore

PNG_1x1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def no_external_resources(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    assert 'src="//' not in page and "src='//" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    for source in re.findall(r'src="([^"]*)"', page):
        assert source.startswith("data:image/png;base64,")


def test_every_text_is_escaped_and_images_are_embedded():
    report = Report(title=HOSTILE, subtitle=HOSTILE, facts=[(HOSTILE, HOSTILE)])
    report.add_section(ReportSection(
        "s1", HOSTILE, intro=HOSTILE,
        figures=[FigureItem("fig-1", HOSTILE, HOSTILE, PNG_1x1, "<svg/>")],
        tables=[TableItem(HOSTILE, [HOSTILE], [[HOSTILE], [0.123456], [None]], caption=HOSTILE)],
        notes=[HOSTILE]))
    page = render_html(report)
    no_external_resources(page)
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert base64.b64encode(PNG_1x1).decode() in page
    # Downloads work from the page alone: data URIs, no links to side files.
    svg = base64.b64encode(b"<svg/>").decode()
    assert f'href="data:image/svg+xml;base64,{svg}" download="fig-1.svg"' in page
    assert f'href="data:image/png;base64,{base64.b64encode(PNG_1x1).decode()}" download="fig-1.png"' in page
    assert 'href="figures/' not in page
    assert ">0.1235<" in page and ">—<" in page


def test_figure_ids_must_be_safe_file_names():
    report = Report("t", sections=[ReportSection("ok", "t", figures=[FigureItem("../evil", "t", "c", PNG_1x1)])])
    with pytest.raises(ValueError, match="invalid"):
        render_html(report)


def test_sections_keep_their_order_and_can_be_inserted_or_replaced():
    report = Report("t")
    for section_id in ("a", "c"):
        report.add_section(ReportSection(section_id, section_id))
    report.add_section(ReportSection("b", "b"), after="a")
    report.add_section(ReportSection("start", "start"), before="a")
    report.add_section(ReportSection("c", "replaced"))
    report.add_section(ReportSection("end", "end"), after="missing")
    assert [s.id for s in report.sections] == ["start", "a", "b", "c", "end"]
    assert report.section("c").title == "replaced"


def test_another_module_contributes_a_section_from_plain_data(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_BUILDERS", dict(registry._BUILDERS))

    def extra_section(ctx):
        return {"title": "Generalization gap", "intro": HOSTILE,
                "tables": [{"title": "Table 2", "columns": ["net", "SB"], "rows": [["F1", 98.0]]}]}

    registry.register_section_builder("extra", extra_section, order=registry.ORDER_GENERALIZATION)
    with RunStore(tmp_path / "runs.db") as store:
        report, _ = build_report(store)
    assert [s.id for s in report.sections] == ["extra"]
    page = render_html(report)
    assert "Table 2" in page and "&lt;script&gt;" in page
    no_external_resources(page)


def test_registered_builders_are_ordered_and_empty_sections_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_BUILDERS", dict(registry._BUILDERS))
    registry.register_section_builder("late", lambda ctx: ReportSection("late", "Late"), order=99)
    registry.register_section_builder("early", lambda ctx: ReportSection("early", "Early"), order=1)
    with RunStore(tmp_path / "runs.db") as store:
        report, _ = build_report(store)
    # An empty store: only the two sections that need no data.
    assert [s.id for s in report.sections] == ["early", "late"]


def test_coerce_section_rejects_other_types():
    assert coerce_section(None, "x") is None
    section = ReportSection("x", "X")
    assert coerce_section(section, "x") is section
    with pytest.raises(TypeError):
        coerce_section(42, "x")



@pytest.mark.parametrize("budget, accuracies, expected", [
    ("epochs", (0.95, 0.20), "both fall as B grows, as in the lecture"),
    ("epochs", (0.80, 0.90), "neither falls as B grows, unlike the lecture"),
    ("updates", (0.80, 0.90), "at an equal number of updates the larger batch is not worse"),
])
def test_accuracy_caption_states_the_measured_numbers_and_compares_with_the_lecture(budget, accuracies, expected):
    from batchlab.analysis.accuracy import AccuracyCurve, AccuracyPanel, AccuracyPoint
    from batchlab.report.sections import accuracy_caption

    def point(batch, accuracy, full=False):
        return AccuracyPoint(batch, full, [0, 1], 0, None, {"train_acc": accuracy, "val_acc": accuracy - 0.01},
                             {"train_acc": 0.0, "val_acc": 0.0})

    curve = AccuracyCurve({}, "momentum, λ = 0.9", [point(8, accuracies[0]), point(3600, accuracies[1], full=True)])
    caption = accuracy_caption(AccuracyPanel("mnist-5k", "mlp", None, budget, 5, [curve]))
    assert expected in caption
    assert f"{accuracies[0]:.3f} at B = 8" in caption and "B = 3,600 (full batch)" in caption


def test_the_lead_section_comes_before_the_contents_facts_and_other_sections():
    report = Report("t", facts=[("Device", "cpu")])
    for section_id in ("timing", "summary", "momentum"):
        report.add_section(ReportSection(section_id, section_id))
    page = render_html(report)
    order = [page.index(marker) for marker in ('<section id="summary" class="lead">', "<nav>", '<dl class="facts">',
                                               '<section id="timing">', '<section id="momentum">')]
    assert order == sorted(order)
    assert page.count('<section id="summary"') == 1 and '<li><a href="#summary">' in page


def test_a_disclosure_cell_shows_its_short_text_and_hides_the_details():
    table = TableItem("t", ["what was measured", "verdict"], [[Disclosure("short <b>", "the details"), "agrees"],
                                                              [Disclosure("alone"), "within noise"]])
    page = render_html(Report("t", sections=[ReportSection("s", "s", tables=[table])]))
    assert ('<td data-label="what was measured"><details><summary>short &lt;b&gt;</summary><p>the details</p>'
            "</details></td>") in page
    assert '<td data-label="what was measured">alone</td>' in page
    assert '<td class="noise" data-label="verdict">within noise</td>' in page
    assert str(Disclosure("a", "b")) == "a; b" and str(Disclosure("a")) == "a"


def test_the_summary_counts_its_verdicts_in_correct_grammar():
    from types import SimpleNamespace

    from batchlab.analysis.summary import SummaryRow, SummaryTable
    from batchlab.report.sections import summary_section

    def row(verdict, finding=""):
        return SummaryRow("aspect", "better", "worse", "accuracy", "", None, None, "small higher", verdict=verdict,
                          finding=finding)

    table = SummaryTable([row("agrees", "a; b; c"), row("agrees"), row("agrees"), row("within noise"),
                          row("not measured")])
    section = summary_section(SimpleNamespace(summary=table))
    assert section.intro.startswith("Of the 4 rows measured here, 3 agree and 1 is within noise.")
    cells = [r[5] for r in section.tables[0].rows]
    assert cells[0] == Disclosure("a", "b; c") and cells[1] == "—"
