"""The lecture report's own sections, each built from what a run store holds.

Every builder takes a :class:`~batchlab.report.context.ReportContext` and returns a
:class:`~batchlab.report.document.ReportSection`, or None when the store has no data for it. Each
figure gets a caption that states what it shows with the measured numbers and how they compare
with the lecture's figure (Hung-yi Lee, "Batch and Momentum", Machine Learning 2021/2022, NTU).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from batchlab.analysis.accuracy import AccuracyCurve, AccuracyPanel, left_out_counts, left_out_note
from batchlab.analysis.noise import NoiseReport
from batchlab.analysis.summary import NOT_MEASURED, Measured, protocol_panels, protocol_text, seconds_text
from batchlab.report.context import ReportContext
from batchlab.report.document import Disclosure, ReportSection, TableItem
from batchlab.report.figures import figure_item
from batchlab.report.plots import accuracy_left_out_note, plot_accuracy_panel, plot_direction_scan, plot_gradient_noise

# The full loss counts as "nearly flat" along d when its slope is at most this share of the
# steepest batch loss's slope.
FLAT_SHARE = 0.1


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _mean_std(point: Any, metric: str) -> str:
    mean, std = point.mean(metric), point.std(metric)
    if mean is None:
        return "—"
    return f"{mean:.3f} ± {std:.3f}" if point.n_seeds > 1 else f"{mean:.3f}"


# ----------------------------------------------------------------------------- timing


def timing_section(ctx: ReportContext) -> ReportSection | None:
    from batchlab.timing import TimingTable, plot_timing

    points = ctx.timing_points
    if not points:
        return None
    section = ReportSection(
        "timing", "Parallelism: time per update and time per epoch",
        intro="The lecture times one update of a small network on MNIST (60,000 images) on a Tesla V100: "
              "up to about B = 1000 the update takes nearly the same time, so the epoch gets much shorter "
              "as B grows. The same measurement on this machine, per data path: 'dataloader' is the usual "
              "PyTorch DataLoader loop, 'resident' keeps the data on the device and gathers batches by index "
              "(what batchlab's trainer does), 'cuda-graph' replays the whole step as one CUDA graph (GPU "
              "only). The lecture's numbers are drawn dashed for comparison; they were read off its slides.",
    )
    for model in sorted({p.model for p in points}):
        chosen = [p for p in points if p.model == model]
        figure = plot_timing(TimingTable(points=chosen), lecture_reference=True)
        section.figures.append(figure_item(figure, f"timing-{slug(model)}", f"Time per update and per epoch — {model}",
                                           timing_caption(chosen)))
    section.tables.append(TableItem(
        "Measured times",
        ["model", "path", "device", "B", "N", "time / update (median)", "quartiles", "time / epoch", "epoch",
         "data"],
        [[p.model, p.path, p.device_name or p.device, p.batch_size, p.n_examples, seconds_text(p.per_update_median_s),
          f"{seconds_text(p.per_update_q25_s)} – {seconds_text(p.per_update_q75_s)}", seconds_text(p.per_epoch_s),
          "extrapolated" if p.extrapolated else "measured", "synthetic" if p.synthetic_data else "real"]
         for p in points],
        caption="Median over repeats after warm-up; an extrapolated epoch is the time per update times the "
                "updates in an epoch. Synthetic data: random tensors of the dataset's shape, used when N is "
                "larger than the dataset (timing does not depend on pixel values).",
    ))
    timing_record = (ctx.lecture or {}).get("timing") or {}
    # The timing table's footnotes start with the marker its text table uses (*, †); this page has
    # its own table, so the markers go.
    section.notes.extend(str(note).lstrip("*†‡§ ") for note in timing_record.get("notes", []))
    section.notes.append("Times depend on everything else the machine runs meanwhile; `batchlab lecture --retime` "
                         "measures them again (on a quiet machine, for numbers to compare).")
    return section


def _series(points: Sequence[Any], device_type: str) -> list[Any]:
    on_device = [p for p in points if str(p.device).split(":")[0] == device_type]
    paths = {p.path for p in on_device}
    if not paths:
        return []
    path = "resident" if "resident" in paths else sorted(paths)[0]
    return sorted((p for p in on_device if p.path == path), key=lambda p: p.batch_size)


def timing_caption(points: Sequence[Any]) -> str:
    from batchlab.timing.lecture import LECTURE_N_EXAMPLES, LECTURE_V100_TIMES, lecture_epoch_times

    # The lecture's Tesla V100 numbers (read off its slides): (time per update, time per epoch).
    update_b1, epoch_b1 = LECTURE_V100_TIMES[1]
    update_b1000, epoch_b1000 = LECTURE_V100_TIMES[1000]
    sentences = []
    for device_type in ("cuda", "cpu"):
        series = _series(points, device_type)
        if len(series) < 2:
            continue
        first, last = series[0], series[-1]
        name = first.device_name or first.device
        ratio = last.per_update_median_s / first.per_update_median_s
        sentences.append(
            f"On {name} ({first.path} path) one update takes {seconds_text(first.per_update_median_s)} at "
            f"B = {first.batch_size:,} and {seconds_text(last.per_update_median_s)} at B = {last.batch_size:,} "
            f"({ratio:.3g}×), so one epoch of {last.n_examples:,} examples takes "
            f"{seconds_text(first.per_epoch_s)} at B = {first.batch_size:,} and {seconds_text(last.per_epoch_s)} "
            f"at B = {last.batch_size:,}.")
        shorter = last.per_epoch_s < first.per_epoch_s
        lecture_epochs = (f"an epoch of the lecture's N = {LECTURE_N_EXAMPLES:,} examples falls from {epoch_b1:g} s "
                          f"at B = 1 to {epoch_b1000:g} s at B = 1000")
        if last.n_examples != LECTURE_N_EXAMPLES:
            scaled = lecture_epoch_times(last.n_examples)
            if 1 in scaled and 1000 in scaled:
                lecture_epochs += (f" ({seconds_text(scaled[1])} and {seconds_text(scaled[1000])} for the "
                                   f"{last.n_examples:,} examples timed here, from its update times)")
        sentences.append(
            f"As in the lecture, where {lecture_epochs}, the larger batch finishes an epoch sooner." if shorter else
            f"Unlike the lecture, where {lecture_epochs}, the larger batch does not finish an epoch sooner here.")
        near_1000 = [p for p in series if p.batch_size <= 1000]
        if len(near_1000) >= 2:
            growth = near_1000[-1].per_update_median_s / near_1000[0].per_update_median_s
            lecture_growth = update_b1000 / update_b1
            sentences.append(
                f"From B = {near_1000[0].batch_size:,} to B = {near_1000[-1].batch_size:,} the update time grows "
                f"{growth:.3g}× here; on the lecture's V100 it grows {lecture_growth:.3g}× from B = 1 to B = 1000"
                + (" — this device hides much more of a larger batch in parallel work." if growth < lecture_growth
                   else " — this device has less parallelism to hide a larger batch in."
                   if device_type == "cpu" else "."))
    if any(p.synthetic_data for p in points):
        sentences.append("Random examples of the dataset's shape stand in where N exceeds the dataset.")
    return " ".join(sentences) or "Too few batch sizes were timed to compare."


# ----------------------------------------------------------------------------- accuracy


def accuracy_section(ctx: ReportContext) -> ReportSection | None:
    panels = [p for p in ctx.accuracy_panels if len(p.batch_sizes) >= 2]
    if not panels:
        return None
    section = ReportSection(
        "accuracy", "Noisy gradients help optimization: accuracy vs batch size",
        intro="The lecture shows, on MNIST and CIFAR-10 with the same network, that the larger the batch the "
              "worse both the training and the validation accuracy. Training accuracy falling too rules out "
              "overfitting and model bias: it is an optimization problem. Below, the same curves from runs in "
              "this store: final accuracies after a fixed budget, mean ± standard deviation over seeds, one "
              "axes per optimizer and momentum λ.",
    )
    protocols = protocol_panels([p for p in ctx.tuned_panels if len(p.batch_sizes) >= 2],
                                (ctx.lecture or {}).get("primary", {}).get("dataset"))
    if protocols:
        section.tables.append(protocols_table(protocols))
    for panel in panels:
        figure = plot_accuracy_panel(panel)
        figure_id = slug(f"accuracy-{panel.dataset}-{panel.model}-{panel.budget_kind}-{panel.budget}")
        section.figures.append(figure_item(figure, figure_id, f"Accuracy vs batch size — {panel.title}",
                                           accuracy_caption(panel)))
        section.tables.append(accuracy_table(panel))
    if any(p.budget_kind == "epochs" for p in panels):
        section.notes.append(
            "At a fixed number of epochs a larger batch also makes fewer updates (N/B per epoch), so part of "
            "its deficit is simply fewer steps (Hoffer et al. 2017). A panel with a fixed update budget, when "
            "present, compares the batch sizes at the same number of updates.")
    return section


def protocols_table(panels: Sequence[AccuracyPanel]) -> TableItem:
    """The three protocols side by side, each batch size at its best η (chosen on validation accuracy)."""
    rows = []
    for panel in panels:
        for curve in panel.curves:
            for point in curve.points:
                grid = ", ".join(f"{v:g}" for v in point.lr_grid or [])
                rows.append([protocol_text(panel), curve.label,
                             f"full ({point.batch_size:,})" if point.full_batch else point.batch_size,
                             "—" if point.lr is None else f"{point.lr:g}", grid or "—",
                             point.lr_reason or "—",
                             None if point.updates is None else round(point.updates), point.n_seeds,
                             _mean_std(point, "train_acc"), _mean_std(point, "val_acc"), _mean_std(point, "test_acc")])
    return TableItem("The protocols side by side, each batch size at its best η",
                     ["protocol", "curve", "B", "best η", "η tried", "η search ended", "updates", "seeds", "train acc",
                      "val acc", "test acc"], rows,
                     caption="Equal epochs is the lecture's figure; equal updates gives every batch size the same "
                             "number of steps; given enough updates trains until the training loss stops improving "
                             "(Keskar et al. 2017's rule) with an update cap. For each protocol and batch size the η "
                             "with the best mean validation accuracy over seeds is shown, with its test accuracy; a "
                             "best η on an edge of the grid extended the grid on that side, and 'η search ended' says "
                             "why it stopped: interior (a worse η on each side), bounded by divergence (the next η "
                             "failed), or the cap of added values reached (a better η may lie beyond). An η with a "
                             "failed run is never chosen.")


def accuracy_table(panel: AccuracyPanel) -> TableItem:
    rows = []
    for curve in panel.curves:
        for point in curve.points:
            rows.append([curve.label, f"full ({point.batch_size:,})" if point.full_batch else point.batch_size,
                         None if point.updates is None else round(point.updates), point.n_seeds,
                         _mean_std(point, "train_acc"), _mean_std(point, "val_acc"), _mean_std(point, "test_acc"),
                         left_out_note(left_out_counts([point])) or "—"])
    note = accuracy_left_out_note(panel)
    return TableItem(f"Final accuracies — {panel.title}",
                     ["curve", "B", "updates", "seeds", "train acc", "val acc", "test acc", "failed runs"], rows,
                     caption="Mean ± sample standard deviation over the seeds whose runs finished; runs that "
                             "diverged or failed to train are left out of the means and the figure and counted"
                             + (f" ({note})." if note else "."))


def accuracy_caption(panel: AccuracyPanel) -> str:
    sentences = [sentence for curve in panel.curves if (sentence := _curve_sentence(curve, panel.budget_kind))]
    if not sentences:
        return "Too few finished runs to compare batch sizes."
    if panel.budget_kind == "updates":
        sentences.append("Here every batch size made the same number of updates; the lecture's figures compare "
                         "equal numbers of epochs, where a larger batch makes fewer updates.")
    return " ".join(sentences)


def _curve_sentence(curve: AccuracyCurve, budget_kind: str) -> str:
    points = [p for p in curve.points if p.mean("train_acc") is not None and p.mean("val_acc") is not None]
    if len(points) < 2:
        return ""
    first, last = points[0], points[-1]
    size = lambda p: f"B = {p.batch_size:,}" + (" (full batch)" if p.full_batch else "")  # noqa: E731
    train_falls = last.mean("train_acc") < first.mean("train_acc")
    val_falls = last.mean("val_acc") < first.mean("val_acc")
    text = (f"With {curve.label}, training accuracy goes from {first.mean('train_acc'):.3f} at {size(first)} to "
            f"{last.mean('train_acc'):.3f} at {size(last)} and validation accuracy from "
            f"{first.mean('val_acc'):.3f} to {last.mean('val_acc'):.3f}")
    if budget_kind == "updates":
        if train_falls and val_falls:
            return text + ": both fall as B grows even at an equal number of updates."
        if not train_falls and not val_falls:
            return text + ": at an equal number of updates the larger batch is not worse."
        which = "training" if train_falls else "validation"
        return text + f": at an equal number of updates only {which} accuracy falls as B grows."
    if train_falls and val_falls:
        return text + ": both fall as B grows, as in the lecture's MNIST and CIFAR-10 figures."
    if not train_falls and not val_falls:
        return text + ": neither falls as B grows, unlike the lecture's figures."
    which = "training" if train_falls else "validation"
    return text + f": only {which} accuracy falls as B grows; in the lecture's figures both do."


# ----------------------------------------------------------------------------- noise


def noise_section(ctx: ReportContext) -> ReportSection | None:
    reports = ctx.noise_reports
    if not reports:
        return None
    section = ReportSection(
        "noise", "Why noise helps: every batch has its own loss",
        intro="Each batch i defines its own loss L^i, the mean loss of its examples. Where the full-batch loss "
              "L is flat (a critical point, where full-batch gradient descent stops), the batch losses "
              "generally are not, so mini-batch training keeps moving. Measured below at a point θ of a real "
              "network on real data: the full gradient G = ∇L over all training examples, the gradients "
              "g_i = ∇L^i of batches drawn exactly as training draws them, their spread E‖g_B − G‖² (the "
              "gradient noise), and McCandlish et al.'s simple noise scale B_simple = tr Σ / |G|² (Σ: the "
              "covariance of per-example gradients). All losses in eval mode at fixed θ.",
    )
    critical = ctx.noise_at_critical_point
    if critical is not None:
        if critical.scan is not None:
            section.figures.append(figure_item(plot_direction_scan(critical), "noise-scan",
                                               "The lecture's L¹ / L² picture, from real data", scan_caption(critical)))
        section.figures.append(figure_item(plot_gradient_noise(critical), "noise-gradients",
                                           "Mini-batch gradients vs the full-batch gradient",
                                           gradients_caption(critical)))
    for which, report in reports.items():
        section.tables.append(noise_table(which, report))
    section.tables.append(noise_scale_table(reports))
    return section


def _describe(report: NoiseReport) -> str:
    return str(report.point.get("description") or "the measured point")


def scan_caption(report: NoiseReport) -> str:
    scan = report.scan
    slopes = [abs(s) for s in scan.batch_slopes]
    full = abs(scan.full_slope)
    text = (f"At {_describe(report)} (full-batch loss {report.full_loss:.3g}, ‖∇L‖ = {report.full_grad_norm:.3g}) "
            f"the losses are drawn along d, the normalized gradient of batch 1 (B = {scan.batch_size}). The "
            f"full-batch loss L has slope {scan.full_slope:+.3g} at α = 0, the batch losses slopes of magnitude "
            f"{min(slopes):.3g} to {max(slopes):.3g}")
    if full <= FLAT_SHARE * max(slopes):
        return text + (f" — up to {max(slopes) / max(full, 1e-300):.3g}× steeper. Where L is nearly flat the batch "
                       "losses still have a gradient: the lecture's picture of L¹ and L², measured.")
    return text + (". L is not flat here, so this point is no critical point: train the full-batch run longer to "
                   "see the lecture's picture.")


def gradients_caption(report: NoiseReport) -> str:
    first, last = report.batch_sizes[0], report.batch_sizes[-1]
    ratio_first = first.median_grad_norm / report.full_grad_norm if report.full_grad_norm > 0 else float("inf")
    ratio_last = last.median_grad_norm / report.full_grad_norm if report.full_grad_norm > 0 else float("inf")
    text = (f"At {_describe(report)} the full gradient has norm {report.full_grad_norm:.3g}; a single batch's "
            f"gradient is {ratio_first:.3g}× as long at B = {first.batch_size} (median of {first.n_batches}) and "
            f"{ratio_last:.3g}× at B = {last.batch_size}. The noise E‖g_B − G‖² falls from {first.noise:.3g} to "
            f"{last.noise:.3g}")
    if first.predicted_noise is not None and last.predicted_noise is not None:
        text += (f"; sampling theory predicts {first.predicted_noise:.3g} and {last.predicted_noise:.3g} from the "
                 "per-example gradients (dashed).")
    else:
        text += "."
    return text + " Small batches: noisy gradients; large batches: stable ones — the lecture's 'gradient' row."


def noise_table(which: str, report: NoiseReport) -> TableItem:
    rows = [["full batch", report.n_train, 1, report.full_grad_norm, 1.0, 0.0, None, report.full_loss,
             report.full_loss]]
    for entry in report.batch_sizes:
        ratio = entry.median_grad_norm / report.full_grad_norm if report.full_grad_norm > 0 else None
        rows.append([f"B = {entry.batch_size}", entry.batch_size, entry.n_batches, entry.median_grad_norm, ratio,
                     entry.noise, entry.predicted_noise, min(entry.losses), max(entry.losses)])
    return TableItem(
        f"Gradients at {_describe(report)} ({which})",
        ["batch", "examples", "batches", "median ‖g‖", "× ‖G‖", "E‖g − G‖²", "predicted c_B·tr Σ", "min L^i",
         "max L^i"],
        rows,
        caption=f"{report.n_parameters:,} parameters, {report.n_train:,} training examples. c_B = (N − B)/(B(N − 1)) "
                "for batches drawn without replacement.",
    )


def noise_scale_table(reports: dict[str, NoiseReport]) -> TableItem:
    rows = []
    for which, report in reports.items():
        scale = report.scale
        if scale is None:
            continue
        two = scale.two_batch_b_simple
        rows.append([_describe(report), scale.exact_grad_sq, scale.exact_trace, scale.exact_b_simple,
                     f"b = {scale.small_batch}, B = {scale.large_batch}", scale.two_batch_grad_sq,
                     scale.two_batch_trace,
                     two if two is not None else "unreliable: |G|² estimate ≤ 0"])
    return TableItem(
        "Simple noise scale B_simple = tr Σ / |G|² (McCandlish et al. 2018)",
        ["point", "|G|²", "tr Σ (per-example)", "B_simple", "two-batch estimate from", "|G|² est.", "tr Σ est.",
         "B_simple est."],
        rows,
        caption="Left: |G|² from the full gradient and tr Σ from per-example gradients. Right: McCandlish et al.'s "
                "cheap estimate from mean squared batch-gradient norms at two batch sizes (with the "
                "without-replacement factor c_B in place of 1/B). The estimate needs a gradient signal that is not "
                "buried in noise at both sizes; near a minimum |G|² is tiny and the estimate can fail. B_simple is "
                "the batch size beyond which, by McCandlish et al.'s model, a larger batch stops paying off in "
                "fewer steps.",
    )


# ----------------------------------------------------------------------------- summary


def summary_section(ctx: ReportContext) -> ReportSection | None:
    """The lecture's small-vs-large table with this machine's numbers: the report's answer, which it
    leads with. Each "what was measured" cell shows the finding's first clause; the rest (reasons,
    intervals, seeds needed) is behind a disclosure."""
    table = ctx.summary
    if all(row.verdict == NOT_MEASURED for row in table.rows):
        return None
    rows = []
    for row in table.rows:
        rows.append([row.aspect, row.lecture_small, row.lecture_large, _measured_cell(row.small, row.unit),
                     _measured_cell(row.large, row.unit), finding_cell(row.finding), row.verdict])
    measured = sum(row.verdict != NOT_MEASURED for row in table.rows)
    return ReportSection(
        "summary", "The answer: the lecture's summary table, measured here",
        intro=f"Of the {measured} rows measured here, {table.counts_sentence()}. Each row holds the lecture's "
              "verdict, this machine's numbers for a small and a large batch, and whether they agree — decided "
              "from the numbers alone, under the protocol the row's runs followed (equal epochs, equal updates, "
              "given enough updates (until the training loss stops improving, with an update cap), or trained to "
              "an equal training accuracy). Open a row's \"what was measured\" for its reasons and intervals; "
              "the sections below show every measurement.",
        tables=[TableItem("Small batch vs large batch", ["aspect", "lecture: small B", "lecture: large B",
                                                         "measured: small B", "measured: large B", "what was measured",
                                                         "verdict"], rows,
                          caption="Within noise: for accuracy and sharpness, the 95 % paired t interval of small − "
                                  "large over seeds contains 0; for gradient noise and timing, the two sides' "
                                  "intervals overlap. Step-limited: the large batch's training loss was still "
                                  "falling. Context: a protocol about which the lecture claims nothing. Machine busy: "
                                  "the load average exceeded the number of cores while timing.")],
        notes=list(dict.fromkeys(row.note for row in table.rows if row.note and row.verdict != NOT_MEASURED)),
        data=table.to_dict(),
    )


def finding_cell(finding: str) -> Disclosure | str:
    """A summary row's finding as a cell: its first clause shown, the rest (the clauses after the
    first "; ") behind a disclosure; "—" when there is none."""
    if not finding:
        return "—"
    short, _, details = finding.partition("; ")
    return Disclosure(short, details)


def _measured_cell(measured: Measured | None, unit: str) -> str:
    if measured is None:
        return "—"
    value = seconds_text(measured.value) if unit == "s" else f"{measured.value:.4g}"
    size = f" (B = {measured.batch_size:,})" if measured.batch_size is not None else ""
    return value + size


# ----------------------------------------------------------------------------- momentum (toy)


def momentum_section(ctx: ReportContext) -> ReportSection | None:
    record = ctx.toy
    if not record:
        return None
    from batchlab.toy import lecture_toy_experiments
    from batchlab.toy.plots import study_figure

    # The toy runs are deterministic and take about a second: redraw them from the stored arguments.
    report = lecture_toy_experiments(**record.get("arguments", {}))
    section = ReportSection(
        "momentum", "Momentum: the rolling ball",
        intro="The lecture's momentum: m₀ = 0, m ← λm − ηg, θ ← θ + m (λ = 0 is plain gradient descent). Like a "
              "ball rolling down the error surface it can roll through a saddle and over a small hill into a "
              "better minimum. Below, gradient descent and momentum on small surfaces with known critical "
              "points, and a sweep over λ showing where momentum helps and where it does not.",
    )
    for study in report.studies:
        section.figures.append(figure_item(study_figure(study), f"toy-{slug(study.surface.name)}",
                                           study.surface.title, toy_caption(study)))
    section.tables.append(TableItem(
        "The lecture's momentum claims, checked on these runs",
        ["surface", "claim", "result", "evidence"],
        [[f.surface, f.claim, "holds" if f.holds else "does not hold", f.evidence] for f in report.findings],
    ))
    return section


def toy_caption(study: Any) -> str:
    """Where gradient descent and each momentum run of the drawn scenario ended, and how many of the
    lecture's claims on this surface held."""
    ends = []
    for trajectory in study.shown_trajectories().values():
        record = study.run(study.shown_scenario, trajectory.momentum)
        method = "gradient descent (λ = 0)" if record.momentum == 0 else f"momentum λ = {record.momentum:g}"
        ends.append(f"{method} ends in the {record.ended_at} (loss {record.loss:.3g}) after {record.steps} steps")
    held = sum(f.holds for f in study.findings)
    text = "; ".join(ends)
    return (f"{text[:1].upper()}{text[1:]}. {held} of {len(study.findings)} claims checked on this surface hold "
            "(table below). Left: the path on the surface; middle: loss above the global minimum per step; "
            "right: the sweep over λ.")


# ----------------------------------------------------------------------------- other stored records

# Analysis records written by `batchlab hessian`, `batchlab sharpness` and `batchlab landscape` (and
# by the gap experiment's measurements): what each kind measures, for the section's captions.
ANALYSIS_RECORD_KINDS = {
    "hessian": "Hessian spectra (Lanczos): top and smallest eigenvalues of the loss at a run's final weights",
    "sharpness": "Sharpness (Keskar et al. 2017, Metric 2.1): the largest relative loss increase in an ε-box",
    "landscape": "Loss landscapes: the loss along lines or planes through a run's weights",
}
# Fields that are not results (where and how a record was made), left out of the tables.
_RECORD_CONTEXT_FIELDS = {"config", "environment", "run_id", "created"}
_MAX_RECORD_COLUMNS = 8


def records_section(ctx: ReportContext) -> ReportSection | None:
    """Every Hessian, sharpness and landscape record in the store, one table per kind: the run it
    belongs to and each scalar result field (numbers, flags and short words) of the record. Records
    of the runs the generalization sections already show are left out."""
    shown = {run_id for record in ctx.shown_gap_records for network in record["networks"] for r in network["runs"]
             for run_id in (r["run_id"], (r.get("minimum") or {}).get("measured_run_id")) if run_id}
    tables = []
    for kind, description in ANALYSIS_RECORD_KINDS.items():
        items = [(key, value) for key, value in ctx.store.record_items(kind)
                 if not shown.intersection(str(value.get(field)) for field in ("run_id", "run_a", "run_b"))]
        if not items:
            continue
        scalars = [{k: v for k, v in value.items() if k not in _RECORD_CONTEXT_FIELDS and _scalar(v)}
                   for _, value in items]
        columns = list(dict.fromkeys(k for fields in scalars for k in fields))[:_MAX_RECORD_COLUMNS]
        rows = [[value.get("run_id", key), *(_record_cell(fields.get(c)) for c in columns)]
                for (key, value), fields in zip(items, scalars)]
        tables.append(TableItem(f"{kind} records ({len(items)})", ["run", *columns], rows, caption=description + "."))
    if not tables:
        return None
    return ReportSection(
        "records", "Other measurements in the store",
        intro="Hessian spectra, sharpness values and loss landscapes stored by batchlab's analysis commands, "
              "one row per record with its scalar results; the commands' own output has the full detail.",
        tables=tables,
    )


def _scalar(value: Any) -> bool:
    return isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= 40)


def _record_cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else value
