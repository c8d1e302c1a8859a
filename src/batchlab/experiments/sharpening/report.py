"""The experiment as a figure, a table, text and a section of the report, all from the stored
``sharpening`` record (so the report is rebuilt from the store alone; ``batchlab sharpening``
writes its figure with the same function)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

from batchlab.experiments.gap.tables import Table
from batchlab.experiments.sharpening.experiment import END_SHARE, RECORD_KIND
from batchlab.experiments.sharpening.plots import plot_sharpening
from batchlab.experiments.shape import latest_record, load_text
from batchlab.report.document import ReportSection, TableItem
from batchlab.report.figures import figure_item

if TYPE_CHECKING:
    from batchlab.report.context import ReportContext

SECTION_ID = RECORD_KIND
SECTION_TITLE = "Sharpness during training: progressive sharpening and the edge of stability"
FIGURE_ID = "sharpening"


def figure_caption(record: Mapping[str, Any]) -> str:
    probe = record["probe"]
    return (f"λ_max of the training loss (log scale) every {record['plan']['every']} updates, on "
            f"{probe['examples']:,} fixed training examples, one line per batch size B (marker and width) and "
            "learning rate η (colour); the dashed line of each colour is that η's stability bound 2(1 + λ)/η: "
            "momentum gradient descent cannot stay where λ_max is above it (Cohen et al. 2021). Below: the loss "
            "on the same examples. Faded lines diverged or failed to train.")


def sharpening_figures(record: Mapping[str, Any]) -> list[tuple[str, str, str, Figure]]:
    """``(id, title, caption, figure)`` of the experiment's figure."""
    return [(FIGURE_ID, "λ_max against the update, with the stability bounds", figure_caption(record),
             plot_sharpening(record["runs"], record["plan"]["momentum"]))]


def _number(value: float | None, digits: str = ".3g") -> str:
    return "—" if value is None else format(value, digits)


def runs_table(record: Mapping[str, Any]) -> Table:
    """One row per run: B, η, η/B, the bound, λ_max at the start, its peak (and where), at the
    end, the peak's share of the bound, the final training accuracy and the status."""
    rows = []
    for run in record["runs"]:
        s = run["summary"]
        final = run.get("final")
        rows.append((str(run["batch_size"]), f"{run['lr']:g}", f"{run['lr_over_b']:.2g}", _number(run["bound"]),
                     _number(s["start"]), f"{_number(s['peak'])} @ {s['peak_update']}" if s["peak"] else "—",
                     _number(s["end"]), "—" if s["peak_over_bound"] is None else f"{s['peak_over_bound']:.0%}",
                     "—" if not final else f"{final[1]:.1%}", run["status"]))
    return Table("λ_max per run",
                 ("B", "η", "η/B", "bound 2(1+λ)/η", "λ_max start", "peak @ update", "λ_max end", "peak / bound",
                  "train acc.", "status"),
                 tuple(rows),
                 f"λ_max end: the median over the last {END_SHARE:.0%} of a run's points. Peak / bound: how close the "
                 f"run came to the edge of stability ({record['edge_fraction']:.0%} or more counts as reached). "
                 f"Train acc.: over all {record['n_train']:,} training examples after the last update.")


def sharpening_text(record: Mapping[str, Any]) -> str:
    """What ``batchlab sharpening`` prints: the setting, the table, the findings, the seconds."""
    return "\n\n".join([record["setting"], runs_table(record).render(), "\n".join(record["findings"]),
                        f"took {record['seconds']:.0f} s{load_text(record.get('load_average'))}"])


def sharpening_section(ctx: ReportContext) -> ReportSection | None:
    """The latest ``sharpening`` record as a section; None when the store has none."""
    record = latest_record(ctx.store, RECORD_KIND)
    if record is None:
        return None
    table = runs_table(record)
    return ReportSection(
        SECTION_ID, SECTION_TITLE,
        intro=("How sharp the loss is where training goes, measured while it goes: the largest Hessian eigenvalue "
               "λ_max every few updates, for a small and a large batch at several learning rates, against the "
               "bound above which momentum gradient descent is unstable. Cohen et al. (2021) found full-batch "
               "training sharpening until it reaches that bound and then hovering there; Jastrzębski et al. (2018) "
               f"that the larger η/B, the flatter the region SGD ends in. Setting: {record['setting']}.\n\n"
               + "\n\n".join(record["findings"])),
        figures=[figure_item(figure, figure_id, title, caption)
                 for figure_id, title, caption, figure in sharpening_figures(record)],
        tables=[TableItem(table.title, list(table.columns), [list(r) for r in table.rows], table.caption)],
        notes=[f"{record['probe']['rule']}; {sum(r['products'] for r in record['runs']):,} Hessian-vector products in "
               f"all. Made by `batchlab sharpening` in {record['seconds']:.0f} s{load_text(record.get('load_average'))}."],
        data={"ordering": record["ordering"], "created": record["created"]},
    )
