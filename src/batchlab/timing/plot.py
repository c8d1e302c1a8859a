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
    lecture_epoch_label,
    lecture_epoch_times,
)
from batchlab.timing.table import TimingPoint, TimingTable  # noqa: E402

PATH_COLORS = {"dataloader": "#d62728", "resident": "#1f77b4", "cuda-graph": "#2ca02c"}
DEVICE_STYLES = {"cuda": ("-", "o"), "cpu": ("-.", "s")}
LECTURE_COLOR = "#7f7f7f"


def plot_timing(table: TimingTable, lecture_reference: bool = True) -> Figure:
    """Two panels: left, median time per update with its interquartile range as error bars;
    right, time per epoch (filled markers: measured epochs; open markers: extrapolated from the
    time per update). ``lecture_reference`` adds the lecture's V100 series, dashed and grey."""
    figure = Figure(figsize=(11, 4.6), layout="constrained")
    per_update, per_epoch = figure.subplots(1, 2)
    several_data = len({p.data_label for p in table.points}) > 1
    for points in table.series().values():
        path, device = points[0].path, points[0].device
        line_style, marker = DEVICE_STYLES.get(device.split(":")[0], ("--", "^"))
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
        per_epoch.legend(fontsize=7, loc="lower left")

    n_text = ", ".join(f"{n:,}" for n in n_values) if n_values else "?"
    per_update.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="time per update (s)",
                   title="Time per update (median, bars: quartiles)")
    per_epoch.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="time per epoch (s)",
                  title=f"Time per epoch (N = {n_text})")
    for axis in (per_update, per_epoch):
        axis.grid(True, which="both", alpha=0.3)
    per_update.legend(fontsize=8, loc="upper left")
    footer = ["open markers: epoch time extrapolated from the time per update"] if any(
        p.extrapolated for p in table.points) else []
    if any(p.synthetic_data for p in table.points):
        footer.append("random data of the dataset's shape (timing does not depend on pixel values)")
    if footer:
        # supxlabel keeps the note inside the constrained layout, below both axes labels.
        figure.supxlabel("; ".join(footer), fontsize=7, color="#555555")
    return figure


def curve_label(point: TimingPoint, with_data: bool = False) -> str:
    """A line's label: its network, (``with_data``) the data, its path and the device it ran on,
    e.g. ``784-512-512-10 mlp, resident path, AMD EPYC (2 cores)``."""
    network = f"{point.network_label} on {point.data_label}" if with_data else point.network_label
    return f"{network}, {point.path} path, {point.device_name or point.device}"
