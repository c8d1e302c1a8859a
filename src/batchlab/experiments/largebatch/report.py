"""The large-batch experiment as a figure and as a section of the lecture report.

Everything starts from the stored result (a ``largebatch`` record, the dictionary of
:meth:`batchlab.experiments.largebatch.experiment.LargeBatchResult.to_dict`), so the report is rebuilt from
the store alone; ``batchlab largebatch`` writes its figure with the same function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

from batchlab.experiments.gap.report import pass_note
from batchlab.experiments.largebatch.plots import plot_methods
from batchlab.experiments.largebatch.experiment import RECORD_KIND
from batchlab.experiments.gap.tables import Table
from batchlab.experiments.shape import latest_record, load_text
from batchlab.report.document import ReportSection, TableItem
from batchlab.report.figures import figure_item
from batchlab.experiments.largebatch.tables import (
    LB_KEY,
    LB_TRAIN_KEY,
    NO_INTERVAL,
    SB_KEY,
    MethodNumbers,
    Verdict,
    interval_text,
)
from batchlab.store.status import FINISHED

if TYPE_CHECKING:
    from batchlab.report.context import ReportContext
    from batchlab.store import RunStore

SECTION_ID = RECORD_KIND
SECTION_TITLE = "Having both: large batches without the gap (Goyal, LARS, LAMB, Akiba, ghost BN, SWAP, train longer)"
FIGURE_ID = "largebatch-methods"


def latest_largebatch_record(store: RunStore) -> dict[str, Any] | None:
    """The most recently written ``largebatch`` record of ``store`` (by ``created``), or None."""
    return latest_record(store, RECORD_KIND)


def _numbers(record: Mapping[str, Any]) -> list[MethodNumbers]:
    return [MethodNumbers.from_dict(n) for n in record["numbers"]]


def _verdicts(record: Mapping[str, Any]) -> list[Verdict]:
    return [Verdict.from_dict(v) for v in record["verdicts"]]


def figure_caption(record: Mapping[str, Any]) -> str:
    numbers = {n.key: n for n in _numbers(record)}
    found = {v.key: v for v in _verdicts(record)}
    sb = numbers.get(SB_KEY)
    head = ("Test accuracy of every method, bars the mean over seeds with ±1 std, dots the seeds, hollow triangles "
            "the training accuracy; green closes the gap the method claims to close, orange narrows it, grey does "
            "not (here), is unresolved or has no verdict.")
    for key, gap in ((LB_KEY, "the equal-epochs gap"), (LB_TRAIN_KEY, "the generalization gap")):
        lb, verdict = numbers.get(key), found.get(key)
        if sb and lb and sb.test_acc and lb.test_acc:
            if verdict is not None and verdict.gap_size is not None:
                apart = f"SB − LB = {interval_text(verdict.gap_size)}"
            else:
                apart = "no interval (one seed)" if verdict is not None and verdict.verdict == NO_INTERVAL else (
                    f"{100 * (sum(sb.test_acc) / len(sb.test_acc) - sum(lb.test_acc) / len(lb.test_acc)):.2f} "
                    "points apart")
            head += f" SB (B = {sb.batch_size}) and {lb.label} (B = {lb.batch_size}): {apart}, {gap}."
    return head


def largebatch_figures(record: Mapping[str, Any]) -> list[tuple[str, str, str, Figure]]:
    """``(id, title, caption, figure)`` of the experiment's figure."""
    return [(FIGURE_ID, "Test accuracy per large-batch method", figure_caption(record),
             plot_methods(_numbers(record), _verdicts(record)))]


def section_intro(record: Mapping[str, Any]) -> str:
    plan = record["plan"]
    return (
        "The lecture ends its batch-size part with \"can we have both?\": papers that train with huge batches, "
        "fast, and still generalize. Here every method trains the same network on the same data with the same "
        "epoch budget (\"train longer\": as many updates as SB), next to the small-batch baseline and plain large "
        "batch at equal epochs (the equal-epochs gap, mostly an optimization gap) and plain large batch trained on to "
        "the small batch's training accuracy (the generalization gap, Keskar et al.'s protocol); each method is judged "
        f"against the gap it claims to close (scale '{plan['scale']}', "
        f"{plan['seeds']} seed{'s' if plan['seeds'] != 1 else ''}; "
        f"{record['table']['caption'].split('. Two gaps')[0].split('. Verdict')[0]}):\n\n{record['paragraph']}"
    )


def section_notes(record: Mapping[str, Any]) -> list[str]:
    plan = record["plan"]
    notes = []
    if plan["setting"].get("note"):
        notes.append(plan["setting"]["note"] + ".")
    notes.append("The papers' claims are in their own settings (ImageNet, BERT, batches of 8k–32k on hundreds of "
                 "accelerators); the rows here test the same ideas on a small network, where a method can fail "
                 "for reasons the papers did not face (a few dozen large-batch updates in all).")
    unfinished = [r for r in record["runs"] if r["status"] != FINISHED]
    if unfinished:
        notes.append(f"{len(unfinished)} run(s) did not finish ("
                     + ", ".join(f"{r['method']} seed {r['seed']}: {r['status']}" for r in unfinished)
                     + ") and are left out of the means.")
    if any(r["method"] == "akiba" for r in record["runs"]):
        notes.append("Akiba's recipe evaluates with batch norm without moving averages (each evaluated batch's own "
                     "statistics), and its minimum is restored and its sharpness measured the same way; the other "
                     "rows use the running statistics.")
    swap = [r for r in record["runs"] if r["method"] == "swap" and r.get("extra")]
    if swap:
        notes.append("SWAP's time counts its W phase-2 copies one after another; on W workers at once, as in the "
                     "paper, it would be " + ", ".join(f"{r['extra']['parallel_seconds']:.1f} s" for r in swap)
                     + " per seed.")
    notes.append(timing_note(record))
    return notes


def timing_note(record: Mapping[str, Any]) -> str:
    """How long the pass that wrote the comparison's ``record`` took (:func:`batchlab.experiments.gap.report.pass_note`)."""
    return pass_note(record, record["runs"], "(method, seed) rows")


def largebatch_text(record: Mapping[str, Any]) -> str:
    """What ``batchlab largebatch`` prints: the table, the verdicts in words, the seconds and the load."""
    return "\n\n".join([Table.from_dict(record["table"]).render(), record["paragraph"],
                         f"took {record['seconds']:.0f} s{load_text(record.get('load_average'))}"])


def largebatch_section(ctx: ReportContext) -> ReportSection | None:
    """The large-batch methods side by side, from the latest ``largebatch`` record; None when the
    store has none."""
    record = latest_largebatch_record(ctx.store)
    if record is None:
        return None
    table = record["table"]
    return ReportSection(
        SECTION_ID,
        SECTION_TITLE,
        intro=section_intro(record),
        figures=[figure_item(figure, figure_id, title, caption)
                 for figure_id, title, caption, figure in largebatch_figures(record)],
        tables=[TableItem(table["title"], list(table["columns"]), [list(r) for r in table["rows"]], table["caption"])],
        notes=section_notes(record),
        data={"verdicts": record["verdicts"], "created": record["created"]},
    )
