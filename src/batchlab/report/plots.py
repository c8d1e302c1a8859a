"""Figures of the lecture report drawn from measured numbers (matplotlib, Agg, no pyplot state).

* :func:`plot_accuracy_panel` — the lecture's "accuracy vs batch size" figure: one axes per curve
  (optimizer and λ), training and validation (and test) accuracy against B on a log axis, mean
  over seeds with ± one standard deviation as error bars. Failed runs (diverged, failed to train)
  are never plotted: each batch size names those it left out, and the figure counts them all
  ("2 runs left out: 1 diverged, 1 failed to train").
* :func:`plot_direction_scan` — the lecture's L¹ / L² picture from real data: the full-batch loss
  and several mini-batch losses along one direction.
* :func:`plot_gradient_noise` — mini-batch gradient norms against the full-batch gradient norm, and
  the gradient noise ``E‖g_B − G‖²`` against B with the finite-population prediction.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from batchlab.analysis.accuracy import AccuracyPanel, left_out_counts, left_out_note  # noqa: E402
from batchlab.analysis.noise import NoiseReport  # noqa: E402

_METRIC_STYLE = {
    "train_acc": ("training", "-", "o", "#1f77b4"),
    "val_acc": ("validation", "--", "s", "#d62728"),
    "test_acc": ("test", ":", "^", "#2ca02c"),
}
_BATCH_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]


# Two panels side by side fill the report's 1180-pixel column at about 590 pixels each; a third
# or fourth would shrink tick labels and legends below reading size.
MAX_PANEL_COLUMNS = 2


def batch_tick_label(batch_size: int, full: bool) -> str:
    return f"full\n({batch_size:,})" if full else f"{batch_size:,}"


def plot_accuracy_panel(panel: AccuracyPanel,
                        metrics: tuple[str, ...] = ("train_acc", "val_acc", "test_acc")) -> Figure:
    """One axes per curve of ``panel``: accuracy against batch size (log axis), error bars ± 1 std."""
    count = max(len(panel.curves), 1)
    # A wide grid (λ × η) wraps into rows so each panel stays readable in the report.
    columns = min(count, MAX_PANEL_COLUMNS)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(max(5.2 * columns, 7.0), 4.3 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(panel.curves):]:
        ax.set_visible(False)
    for ax, curve in zip(axes, panel.curves):
        ticks: dict[int, str] = {}
        for metric in metrics:
            points = [p for p in curve.points if p.mean(metric) is not None]
            if not points:
                continue
            name, style, marker, colour = _METRIC_STYLE[metric]
            ax.errorbar([p.batch_size for p in points], [p.mean(metric) for p in points],
                        yerr=[p.std(metric) or 0.0 for p in points], linestyle=style, marker=marker,
                        color=colour, capsize=3, label=f"{name} accuracy")
            ticks.update({p.batch_size: batch_tick_label(p.batch_size, p.full_batch) for p in points})
        for point in curve.points:
            if point.n_diverged:
                ax.annotate(left_out_note(left_out_counts([point])).replace(" left out: ", " left out:\n"),
                            (point.batch_size, 0.02),
                            xycoords=("data", "axes fraction"), ha="center", fontsize=8, color="#b31d28")
                # A batch size where every seed diverged has no accuracy but stays on the axis, so
                # its note sits inside the axes (outside, it would collapse the layout).
                ticks.setdefault(point.batch_size, batch_tick_label(point.batch_size, point.full_batch))
        ax.set_xscale("log")
        if ticks:
            ax.set_xticks(sorted(ticks), [ticks[b] for b in sorted(ticks)])
            ax.minorticks_off()
        if len(ticks) == 1:
            mark_single_batch_size(ax, next(iter(ticks)))
        seeds = sorted({p.n_seeds for p in curve.points if p.n_seeds}) or [0]
        seed_text = "/".join(str(s) for s in seeds)
        if len(ticks) > 1:
            # Every batch size on the axis, diverged ones too, with room for their notes at the ends.
            ax.set_xlim(min(ticks) / 1.4, max(ticks) * 1.4)
        plural = "s" if seeds != [1] else ""
        ax.set(xlabel="batch size B", ylabel="accuracy", title=f"{curve.label}\n(mean ± std over {seed_text} seed{plural})")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a curve whose every run failed has nothing to name
            ax.legend(fontsize=8, loc="best")
    note = accuracy_left_out_note(panel)
    figure.suptitle(f"Accuracy vs batch size — {panel.title}" + (f"\n{note} of the means" if note else ""),
                    fontsize=11)
    return figure


def accuracy_left_out_note(panel: AccuracyPanel) -> str:
    """The failed runs the accuracy figure of ``panel`` leaves out, counted by status ("2 runs left
    out: 1 diverged, 1 failed to train"); empty when every run finished."""
    return left_out_note(left_out_counts(p for curve in panel.curves for p in curve.points))


def mark_single_batch_size(ax, batch_size: int) -> None:
    """A panel with one batch size has no trend to show: say so in the axes, and keep the x axis
    a narrow band (B/1.5 … 1.5·B) around the point instead of matplotlib's decades either side."""
    ax.set_xlim(batch_size / 1.5, batch_size * 1.5)
    ax.text(0.5, 0.5, "one batch size only:\nno trend over B to read", transform=ax.transAxes,
            ha="center", va="center", fontsize=9, color="#57606a",
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "#d0d7de", "alpha": 0.9})


def plot_direction_scan(report: NoiseReport) -> Figure:
    """Full-batch loss L(θ + αd) (thick, black) and mini-batch losses L^i(θ + αd) along
    d = g_1/‖g_1‖, with each curve's slope at α = 0 in the legend."""
    scan = report.scan
    figure = Figure(figsize=(7.6, 4.6), layout="constrained")
    ax = figure.add_subplot()
    if scan is None:
        ax.text(0.5, 0.5, "no direction scan measured", ha="center", va="center", transform=ax.transAxes)
        return figure
    for index, (losses, slope) in enumerate(zip(scan.batch_losses, scan.batch_slopes), start=1):
        ax.plot(scan.alphas, losses, color=_BATCH_COLOURS[(index - 1) % len(_BATCH_COLOURS)], linewidth=1.4,
                label=f"$L^{{{index}}}$: batch {index} of B = {scan.batch_size} (slope at 0: {slope:+.3g})")
    ax.plot(scan.alphas, scan.full_loss, color="black", linewidth=3,
            label=f"L: all {report.n_train:,} examples (slope at 0: {scan.full_slope:+.3g})")
    ax.axvline(0.0, color="#888888", linewidth=0.8, linestyle=":")
    ax.set(xlabel="α (distance along d = g¹/‖g¹‖)", ylabel="cross-entropy loss",
           title="Each batch has its own loss $L^i$: where $L$ is flat, the $L^i$ are not")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return figure


def plot_gradient_noise(report: NoiseReport) -> Figure:
    """Left: every measured ‖g_i‖ per batch size and the full-batch ‖G‖ (log axis). Right: the
    noise E‖g_B − G‖² (± 2 standard errors, on the log scale) against B with the prediction c_B · tr Σ."""
    figure = Figure(figsize=(11, 4.3), layout="constrained")
    norms_ax, noise_ax = figure.subplots(1, 2)
    sizes = [b.batch_size for b in report.batch_sizes]
    for position, entry in enumerate(report.batch_sizes):
        spread = [position + (k / max(entry.n_batches - 1, 1) - 0.5) * 0.5 for k in range(entry.n_batches)]
        colour = _BATCH_COLOURS[position % len(_BATCH_COLOURS)]
        norms_ax.scatter(spread, entry.grad_norms, s=12, alpha=0.7, color=colour)
    norms_ax.axhline(report.full_grad_norm, color="black", linewidth=2,
                     label=f"full batch ‖∇L‖ = {report.full_grad_norm:.3g}")
    norms_ax.set_xticks(range(len(sizes)), [f"B = {b:,}" for b in sizes])
    norms_ax.set_yscale("log")
    norms_ax.set(ylabel="gradient norm",
                 title="$\\|\\nabla L^i\\|$ of single mini-batches vs $\\|\\nabla L\\|$ of the full batch")
    norms_ax.grid(True, axis="y", alpha=0.3)
    norms_ax.legend(fontsize=8)

    # ±2 standard errors on the log scale (mean · exp(±2 se/mean)): the mean is positive and
    # heavy-tailed, and mean − 2 se can fall below zero, off a log axis.
    factors = [math.exp(2 * b.noise_se / b.noise) if b.noise > 0 else 1.0 for b in report.batch_sizes]
    means = [b.noise for b in report.batch_sizes]
    noise_ax.errorbar(sizes, means, yerr=[[m - m / f for m, f in zip(means, factors)],
                                          [m * f - m for m, f in zip(means, factors)]],
                      marker="o", capsize=3, linestyle="-", color="#1f77b4", label="measured mean ‖g_B − G‖²")
    predicted = [b.predicted_noise for b in report.batch_sizes]
    if all(p is not None for p in predicted):
        noise_ax.plot(sizes, predicted, linestyle="--", color="#7f7f7f",
                      label="c_B · tr Σ,  c_B = (N − B)/(B(N − 1))")
    noise_ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="E‖g_B − G‖²",
                 title="Gradient noise shrinks like 1/B")
    noise_ax.grid(True, which="both", alpha=0.3)
    noise_ax.legend(fontsize=8)
    figure.suptitle(_point_title(report), fontsize=10)
    return figure


def _point_title(report: NoiseReport) -> str:
    what = report.point.get("description") or "the measured point"
    return f"At {what}: full-batch loss {report.full_loss:.3g}, ‖∇L‖ = {report.full_grad_norm:.3g}"


__all__ = ["accuracy_left_out_note", "batch_tick_label", "plot_accuracy_panel", "plot_direction_scan", "plot_gradient_noise"]
