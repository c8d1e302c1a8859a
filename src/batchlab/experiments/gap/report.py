"""The generalization-gap experiment's stored result as figures, captions and text.

Everything here starts from the experiment's stored result (a ``gap`` record, the dictionary of
:meth:`batchlab.experiments.gap.experiment.GapResult.to_dict`), so the report's generalization section
(:func:`gap_section`, registered in :mod:`batchlab.experiments.gap`) is rebuilt from the store alone, without training
or measuring again. ``batchlab gap`` writes its figures with the same functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

from batchlab.analysis.summary import sharp_minima_rows
from batchlab.experiments.gap.experiment import NetworkPlan
from batchlab.experiments.shape import load_text
from batchlab.experiments.gap.plots import LinePanel, plot_parametric, plot_sharpness
from batchlab.experiments.gap.tables import (
    Finding,
    NetworkNumbers,
    accuracy_table,
    findings_paragraph,
    measured,
    minima_table,
    network_findings,
    paired_table,
    Table,
    sharpness_keys,
    sharpness_table,
)
from batchlab.geometry.landscape import ParametricLine
from batchlab.geometry.minimum import MINIMUM_GRADIENT_FRACTION
from batchlab.report.document import ReportSection, TableItem
from batchlab.report.figures import figure_item
from batchlab.store.identity import with_digest
from batchlab.store.status import FINISHED

if TYPE_CHECKING:
    from batchlab.report.context import ReportContext

SECTION_ID = "gap"
SECTION_TITLE = "Generalization: small vs large batch and sharp minima (Keskar et al. 2017)"
# How far beyond each end of the line the loss rise is read for the captions.
OUTWARD_STEP = 0.5


def network_numbers(record: Mapping[str, Any]) -> list[NetworkNumbers]:
    """Each network's numbers (measured and the paper's) as stored in the record."""
    return [NetworkNumbers.from_dict(n["numbers"]) for n in record["networks"]]


def _panels(record: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], LinePanel]]:
    panels = []
    for network in record["networks"]:
        parametric = network.get("parametric")
        if not parametric:
            continue
        numbers = network["numbers"]
        title = (f"{numbers['paper']}: {numbers['model']} on {numbers['dataset']}, "
                 f"SB = {numbers['sb']['batch_size']} → LB = {numbers['lb']['batch_size']}")
        line = ParametricLine.from_dict(parametric["line"])
        panels.append((network, LinePanel(title, line, "SB (α = 0)", "LB (α = 1)")))
    return panels


def outward_rise(line: ParametricLine, step: float = OUTWARD_STEP) -> tuple[float, float]:
    """Training-loss rise when stepping ``step`` beyond each end of the line, away from the other
    minimum: f(−step) − f(0) on the SB side and f(1 + step) − f(1) on the LB side (grid points
    nearest to those α). A steeper rise on the LB side is Keskar's Figure 3 picture."""
    sb_side = line.at(-step).train_loss - line.at(0.0).train_loss
    lb_side = line.at(1.0 + step).train_loss - line.at(1.0).train_loss
    return sb_side, lb_side


def parametric_caption(record: Mapping[str, Any]) -> str:
    sentences = ["The network (1 − α)·x_SB + α·x_LB between the first seed's small-batch minimum (α = 0) and "
                 "large-batch minimum (α = 1), training loss solid, test loss dashed, accuracies on the right axis."]
    for network, panel in _panels(record):
        line = panel.line
        sb, lb = line.at(0.0), line.at(1.0)
        rise_sb, rise_lb = outward_rise(line)
        steeper = "LB" if rise_lb > rise_sb else "SB"
        clamped = [p.clamped_variances for p in line.points if p.clamped_variances]
        text = (f"{network['numbers']['paper']}: training loss {sb.train_loss:.3g} at SB and {lb.train_loss:.3g} at LB, "
                f"test accuracy {100 * sb.test_acc:.2f} % and {100 * lb.test_acc:.2f} %; stepping {OUTWARD_STEP:g} "
                f"beyond each end raises the training loss by {_signed(rise_sb)} on the SB side and "
                f"{_signed(rise_lb)} on the LB side, so the {steeper} side is steeper")
        if clamped:
            text += (f" (at {len(clamped)} of {len(line.points)} α, up to {max(clamped)} interpolated batch-norm "
                     "variances fell below 0 and were set to 0, which is part of the rise)")
        norms = network["parametric"].get("weight_norms") or {}
        if norms.get("SB") and norms.get("LB"):
            text += (f"; the weight norms are ‖x_SB‖ = {norms['SB']:.4g} and ‖x_LB‖ = {norms['LB']:.4g}, and the "
                     "line is drawn in these raw weights")
        sentences.append(text + ".")
    sentences.append("In Keskar et al.'s Figure 3 the loss rises far more steeply beyond the LB end: the LB minimum "
                     "sits in a sharp valley, the SB minimum in a wide one.")
    if any(panel.line.has_batch_norm for _, panel in _panels(record)):
        sentences.append("A caution the picture cannot settle: with batch norm the network does not change when the "
                         "weights before a batch-norm layer are rescaled, so a minimum with larger weights looks flatter along any line without computing "
                         "anything different (Dinh et al. 2017, \"Sharp Minima Can Generalize for Deep Nets\").")
    return " ".join(sentences)


def _signed(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:+.3g}"


def sharpness_caption(numbers: list[NetworkNumbers]) -> str:
    parts = []
    for net in numbers:
        for space, eps in sharpness_keys([net]):
            sb_values = measured(net.sb.sharpness.get((space, eps), ()))
            lb_values = measured(net.lb.sharpness.get((space, eps), ()))
            if sb_values and lb_values:
                sb, lb = sum(sb_values) / len(sb_values), sum(lb_values) / len(lb_values)
                parts.append(f"{net.paper} {space} ε = {eps:g}: SB {sb:.3g}, LB {lb:.3g}")
    found = "; ".join(parts) if parts else "no sharpness measured (no point at a minimum)"
    return (f"Keskar's sharpness φ of each minimum (bars: mean over seeds, dots: seeds), beside the paper's "
            f"Tables 3 and 4 (hatched), at the points that pass the at-a-minimum rule. Measured: {found}. The "
            "paper finds LB minima sharper by one to three orders of magnitude.")


def gap_figures(record: Mapping[str, Any]) -> list[tuple[str, str, str, Figure]]:
    """``(id, title, caption, figure)`` for the experiment's figures: the parametric line(s) and
    the sharpness bars (when anything was measured)."""
    figures = []
    panels = [panel for _, panel in _panels(record)]
    if panels:
        figures.append(("gap-parametric", "Loss between an SB and an LB minimum (Keskar et al.'s Figure 3)",
                        parametric_caption(record), plot_parametric(panels)))
    numbers = network_numbers(record)
    if any(measured(values) for net in numbers for regime in (net.sb, net.lb) for values in regime.sharpness.values()):
        figures.append(("gap-sharpness", "Sharpness of SB and LB minima, measured and the paper's",
                        sharpness_caption(numbers), plot_sharpness(numbers)))
    return figures


def section_intro(record: Mapping[str, Any]) -> str:
    plan = record["plan"]
    # A user's model is its own name (no paper's name beside it).
    setup = ", ".join(
        (f"{n['paper']} = " if n["paper"] != n["model"] else "") + f"{n['model']} on {n['dataset']}"
        for n in plan["networks"]
    )
    seeds = f"{plan['seeds']} seed{'s' if plan['seeds'] != 1 else ''}"
    intro = (
        "The lecture's second claim: even at equal training accuracy, small batches test better. Keskar et al. "
        "(ICLR 2017) trained each network with Adam in two regimes, small batch SB = 256 and large batch LB = 10 % "
        "of the training set, until the training loss stopped improving, and found LB minima both worse on the "
        "test set and much sharper. "
    )
    intro += (f"The same comparison, trained here (scale '{plan['scale']}', {seeds}; {setup}) with one optimizer and "
              "one set of hyperparameters for both regimes, SB and LB of a seed from the same initial weights: "
              + "; ".join(_training_text(n) for n in plan["networks"]) + ". Sharpness and the curvature measures are "
              "taken only at points that pass the at-a-minimum rule:")
    return intro + "\n\n" + findings_paragraph(*current_findings(record))


def current_findings(record: Mapping[str, Any]) -> tuple[list[NetworkNumbers], list[Finding]]:
    """The record's numbers and their findings under today's verdict rules (:mod:`batchlab.experiments.gap.tables`),
    not the ones stored when it was written: a rule made stricter later applies to old records too."""
    numbers = network_numbers(record)
    return numbers, [finding for net in numbers for finding in network_findings(net)]


def _training_text(network: Mapping[str, Any]) -> str:
    """:meth:`NetworkPlan.training_text` of a stored plan, with SB and LB named."""
    fields = {k: v for k, v in network.items() if k in NetworkPlan.__dataclass_fields__}
    fields["hidden"] = tuple(fields["hidden"]) if fields.get("hidden") else None
    if "lr" not in network and "sb_lr" in network:  # a record made when SB and LB had a rate each
        fields["lr"] = network["sb_lr"]
    plan = NetworkPlan(**fields)
    lb = plan.lb_size if plan.lb_size is not None else f"{plan.lb_fraction:.0%} of the training set"
    text = f"SB = {plan.sb} and LB = {lb}: {plan.training_text()}"
    if network.get("lb_lr", plan.lr) != plan.lr:
        text += f" (LB at η = {network['lb_lr']:g}: this record predates one η for both)"
    return text


def section_notes(record: Mapping[str, Any]) -> list[str]:
    plan = record["plan"]
    notes = [f"Departure from the paper at this scale: {reason}." for reason in plan.get("reasons", [])]
    notes += [n["note"] + "." for n in plan["networks"] if n.get("note")]
    for network in record["networks"]:
        runs = network["runs"]
        unfinished = [r for r in runs if r["status"] != FINISHED]
        if unfinished:
            notes.append(f"{network['plan']['paper']}: {len(unfinished)} run(s) did not finish "
                         f"({', '.join(r['status'] for r in unfinished)}) and are left out of the tables.")
        target = network["plan"].get("target_train_acc")
        capped = [r for r in runs if r["status"] == FINISHED and not r["stopped_early_at"]
                  and not r.get("reached_target_at")]
        if capped:
            before = (f"before reaching the training-accuracy target {target:.0%}" if target is not None
                      else "before the training loss stopped improving")
            notes.append(f"{network['plan']['paper']}: {len(capped)} of {len(runs)} runs ended at their epoch cap "
                         f"{before}.")
    notes.append(timing_note(record))
    return notes


def timing_note(record: Mapping[str, Any]) -> str:
    """How long the pass that wrote the gap experiment's ``record`` took (see :func:`pass_note`)."""
    return pass_note(record, [r for n in record["networks"] for r in n["runs"]], "runs")


def pass_note(record: Mapping[str, Any], runs: list[Mapping[str, Any]], noun: str) -> str:
    """How long the pass that wrote an experiment's ``record`` took, on what, under which load; a
    pass that found every one of its ``runs`` (``noun``: what they are called) in the store says so
    instead of passing off its seconds as the experiment's. The large-batch comparison uses it too."""
    reused = sum(bool(r["from_store"]) for r in runs)
    load = record.get("load_average") or [None, None]
    busy = "" if load[0] is None else f", 1-minute load average {load[0]:.1f} at the start and {load[1]:.1f} at the end"
    where = f"{record['environment'].get('device_name', 'this machine')}{busy}"
    if reused == len(runs):
        return (f"All {len(runs)} {noun} were read back from the store (trained by an earlier pass); this pass took "
                f"{record['seconds']:.0f} s on {where}.")
    return (f"This pass trained {len(runs) - reused} of {len(runs)} {noun} and took {record['seconds']:.0f} s on "
            f"{where}; runs and measurements already in the store are reused, not repeated.")


# ------------------------------------------------------------------------------ report sections


# Which record each section shows (the report's context keeps a user's model apart):
# * "gap": the lecture's record, else batchlab gap's on the paper's networks — the record whose
#   flat-vs-sharp rows the summary table shows (gap_summary_rows);
# * "gap-paper": batchlab gap's on the paper's networks, when the lecture's is in "gap";
# * "gap-own": batchlab gap --model-file's newest, titled by the user's model; never in the summary
#   table, whose rows speak for the lecture's networks.


def gap_section(ctx: ReportContext) -> ReportSection | None:
    """Keskar et al.'s comparison from the store's first record of the lecture's or the paper's
    networks (:attr:`ReportContext.gap`: the lecture's when there is one); None when there is none."""
    return _gap_section(ctx.gap_records[0], SECTION_ID, SECTION_TITLE) if ctx.gap_records else None


def gap_paper_section(ctx: ReportContext) -> ReportSection | None:
    """``batchlab gap``'s record of the paper's networks, when the store also holds the lecture's
    (which :func:`gap_section` shows)."""
    if len(ctx.gap_records) < 2:
        return None
    return _gap_section(ctx.gap_records[1], f"{SECTION_ID}-paper",
                        "Keskar et al.'s experiment with the paper's networks and Adam (batchlab gap)")


def gap_own_section(ctx: ReportContext) -> ReportSection | None:
    """The newest ``batchlab gap --model-file`` record (:attr:`ReportContext.own_gap_records`),
    titled by the user's model, with a note naming the other models the store holds a record of;
    None when there is none."""
    if not ctx.own_gap_records:
        return None
    *others, record = ctx.own_gap_records
    section = _gap_section(record, f"{SECTION_ID}-own", own_model_title(record["plan"]["task"]))
    if others:
        names = "; ".join(f"{_task_name(other['plan']['task'])} ({other['created']})" for other in others)
        section.notes.append(f"The store also holds this comparison for {names}; `batchlab gap` with that model's "
                             "--model-file and --data-file prints it from the store without training again.")
    return section


def own_model_title(task: Mapping[str, Any]) -> str:
    """The title of the section of a user's model (a record's ``plan["task"]``)."""
    return f"Keskar et al.'s experiment on your model {_task_name(task)} (batchlab gap --model-file)"


def _task_name(task: Mapping[str, Any]) -> str:
    """``model on data``, each with its short fingerprint when it has one."""
    return (f"{with_digest(task['model'], task.get('model_fingerprint'))} on "
            f"{with_digest(task['data'], task.get('data_fingerprint'))}")


def _gap_section(record: dict, section_id: str, title: str) -> ReportSection:
    numbers = network_numbers(record)
    fraction = record["plan"].get("minimum_fraction", MINIMUM_GRADIENT_FRACTION)
    tables = [TableItem(table.title, list(table.columns), [list(r) for r in table.rows], table.caption)
              for table in (accuracy_table(numbers), sharpness_table(numbers, fraction),
                            minima_table(numbers, fraction), paired_table(numbers))]
    # Figure ids are unique in a report: the second gap section prefixes its own.
    prefix = "" if section_id == SECTION_ID else f"{section_id}-"
    figures = [figure_item(figure, prefix + figure_id, title_, caption)
               for figure_id, title_, caption, figure in gap_figures(record)]
    return ReportSection(
        section_id,
        title,
        intro=section_intro(record),
        figures=figures,
        tables=tables,
        notes=section_notes(record),
        data={"findings": [f.to_dict() for f in current_findings(record)[1]], "created": record["created"]},
    )


def gap_summary_rows(ctx: ReportContext) -> list[Any]:
    """The summary table's flat-vs-sharp rows from the first network of the report's first record
    of the lecture's or the paper's networks (:attr:`ReportContext.gap`; none without one). A
    record of a user's own model never gives them: the summary answers for the lecture's networks,
    and that record has its section (:func:`gap_own_section`)."""
    record = ctx.gap
    if not record or not record.get("networks"):
        return []
    network = record["networks"][0]
    target = network["plan"].get("target_train_acc")
    missed = sum(1 for r in network["runs"] if r["status"] == FINISHED and target is not None
                 and not r.get("reached_target_at"))
    return sharp_minima_rows(NetworkNumbers.from_dict(network["numbers"]), target, missed)


def gap_text(record: Mapping[str, Any]) -> str:
    """What ``batchlab gap`` prints: the paper's Tables 2 and 3 (and 4) beside ours, the paragraph on
    where we agree, and the seconds per stage and network with the machine's load."""
    tables = record["tables"]
    stages = "; ".join(
        f"{n['plan']['paper']}: " + ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in n["seconds"].items())
        for n in record["networks"]
    )
    rendered = [Table.from_dict(tables[name]).render() for name in ("accuracy", "sharpness", "minima", "paired")
                if name in tables]
    return "\n\n".join([*rendered, record["paragraph"],
                         f"took {record['seconds']:.0f} s ({stages}){load_text(record.get('load_average'))}"])
