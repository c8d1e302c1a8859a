"""The lecture's two timing panels, from measurements: time per update and time per epoch against
batch size (log axes), one line per network, data path and device, with the lecture's V100 numbers
as a dashed reference.

Every line's label names its network (:func:`curve_label`), and the reference line says it is the
lecture's own network, so no reader takes the lecture's line for the network timed here.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state, Agg rendering),
so they can be embedded in a report or saved from any thread.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from batchlab.timing.lecture import (  # noqa: E402
    LECTURE_LABEL,
    LECTURE_V100_TIMES,
    lecture_epoch_basis,
    lecture_epoch_label,
    lecture_epoch_times,
)
from batchlab.timing.table import TimingPoint, TimingTable  # noqa: E402

PATH_COLORS = {"dataloader": "#d62728", "resident": "#1f77b4", "cuda-graph": "#2ca02c"}
DEVICE_STYLES = {"cuda": ("-", "o"), "cpu": ("-.", "s")}
# Markers of the networks when a figure holds more than one.
WORKLOAD_MARKERS = ("s", "o", "^", "D", "v", "P")
LECTURE_COLOR = "#7f7f7f"
NOTE_COLOR = "#555555"
# Height one legend entry adds below the panels.
LEGEND_ROW_INCHES = 0.2


def plot_timing(table: TimingTable, lecture_reference: bool = True) -> Figure:
    """Two panels: left, median time per update with its interquartile range as error bars;
    right, time per epoch (filled markers: measured epochs; open markers: extrapolated from the
    time per update). ``lecture_reference`` adds the lecture's V100 series, dashed and grey. One
    legend below both panels names every line (labels that name a network are long; inside a
    panel they would cover the data)."""
    lines = table.series()
    entries = len(lines) + (1 if lecture_reference else 0)
    figure = Figure(figsize=(11, 4.6 + LEGEND_ROW_INCHES * entries), layout="constrained")
    per_update, per_epoch = figure.subplots(1, 2)
    several_data = len({p.data_label for p in table.points}) > 1
    workloads = table.workloads()
    for points in lines.values():
        path, device = points[0].path, points[0].device
        line_style, marker = DEVICE_STYLES.get(device.split(":")[0], ("--", "^"))
        if len(workloads) > 1:  # colours say the path, line styles the device, markers the network
            workload = (points[0].network_label, points[0].data_label, points[0].loss)
            marker = WORKLOAD_MARKERS[workloads.index(workload) % len(WORKLOAD_MARKERS)]
        color = PATH_COLORS.get(path, None)
        sizes = [p.batch_size for p in points]
        medians = [p.per_update_median_s for p in points]
        spread = [
            [m - p.per_update_q25_s for p, m in zip(points, medians)],
            [p.per_update_q75_s - m for p, m in zip(points, medians)],
        ]
        label = curve_label(points[0], with_data=several_data)
        per_update.errorbar(sizes, medians, yerr=spread, linestyle=line_style, marker=marker, color=color,
                            capsize=3, label=label)
        per_epoch.plot(sizes, [p.per_epoch_s for p in points], linestyle=line_style, color=color, label=label)
        for point in points:
            per_epoch.plot(
                [point.batch_size], [point.per_epoch_s], marker=marker, color=color, linestyle="none",
                markerfacecolor="white" if point.extrapolated else color,
            )
    n_values = sorted({p.n_examples for p in table.points})
    if lecture_reference:
        sizes = sorted(LECTURE_V100_TIMES)
        per_update.plot(sizes, [LECTURE_V100_TIMES[b][0] for b in sizes], "--x", color=LECTURE_COLOR, label=LECTURE_LABEL)
        # Epochs of the N timed here when one N was timed, else the lecture's own N (labelled so).
        reference_n = n_values[0] if len(n_values) == 1 else None
        epochs = lecture_epoch_times(reference_n)
        per_epoch.plot(sorted(epochs), [epochs[b] for b in sorted(epochs)], "--x", color=LECTURE_COLOR,
                       label=lecture_epoch_label(reference_n))

    n_text = ", ".join(f"{n:,}" for n in n_values) if n_values else "?"
    per_update.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="time per update (s)",
                   title="Time per update (median, bars: quartiles)")
    per_epoch.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="time per epoch (s)",
                  title=f"Time per epoch (N = {n_text})")
    for axis in (per_update, per_epoch):
        axis.grid(True, which="both", alpha=0.3)
    footer = ["open markers: epoch time extrapolated from the time per update"] if any(
        p.extrapolated for p in table.points) else []
    if any(p.synthetic_data and p.data_fingerprint is None for p in table.points):
        footer.append("random data of the dataset's shape (timing does not depend on pixel values)")
    if any(p.synthetic_data and p.data_fingerprint is not None for p in table.points):
        footer.append("the user's examples repeated up to N")
    if lecture_reference:
        footer.append(f"lecture's epochs: {lecture_epoch_basis(reference_n)}")
    notes = "; ".join(footer) or None
    if entries:
        # Outside the panels, in the constrained layout; the notes head the legend, so the two
        # never overlap.
        handles, labels = per_update.get_legend_handles_labels()
        legend = figure.legend(handles, labels, loc="outside lower center", fontsize=8, frameon=False, title=notes,
                               title_fontsize=7)
        legend.get_title().set_color(NOTE_COLOR)
    elif notes:
        figure.supxlabel(notes, fontsize=7, color=NOTE_COLOR)
    return figure


def curve_label(point: TimingPoint, with_data: bool = False) -> str:
    """A line's label: its network, (``with_data``) the data, its path and the device it ran on,
    e.g. ``784-512-512-10 mlp, resident path, AMD EPYC (2 cores)``."""
    network = f"{point.network_label} on {point.data_label}" if with_data else point.network_label
    return f"{network}, {point.path} path, {point.device_name or point.device}"
