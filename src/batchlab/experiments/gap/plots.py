"""Figures of the generalization-gap experiment and of ``batchlab landscape``.

* :func:`plot_parametric` — Keskar et al.'s Figure 3: cross-entropy (log axis, left) and accuracy
  (right) of the network (1 − α)x_A + αx_B, training solid, test dashed, one panel per pair;
* :func:`plot_contour` — Li et al.'s 2-D filter-normalized contour with the minimum marked;
* :func:`plot_sharpness` — measured φ of SB and LB minima beside Keskar's, log axis.

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot, no global backend),
so it works headless; :func:`batchlab.files.save_figure` writes them atomically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from batchlab.experiments.gap.tables import FULL, PAPER_SHARPNESS, NetworkNumbers, measured, sharpness_keys
from batchlab.geometry.landscape import ContourGrid, ParametricLine

FONT = 10
LOSS_COLOUR = "tab:blue"
ACCURACY_COLOUR = "tab:red"


@dataclass(frozen=True)
class LinePanel:
    """One panel of the parametric figure: a line and what its ends are called."""

    title: str
    line: ParametricLine
    label_a: str = "x_A"
    label_b: str = "x_B"


def plot_parametric(panels: Sequence[LinePanel]) -> Figure:
    """Keskar's Figure 3 for each panel: f((1 − α)x_A + αx_B) against α."""
    count = max(len(panels), 1)
    figure = Figure(figsize=(6.2 * count, 4.6), dpi=110, layout="constrained")
    axes = figure.subplots(1, count, squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        line = panel.line
        alphas = np.array(line.alphas)
        for column, style, label in (("train_loss", "-", "train loss"), ("test_loss", "--", "test loss")):
            ax.plot(alphas, _positive(line.column(column)), style, color=LOSS_COLOUR, marker=".", label=label)
        ax.set_yscale("log")
        ax.set_xlabel("α   (network = (1 − α)·A + α·B)", fontsize=FONT)
        ax.set_ylabel(line.loss.replace("_", "-"), color=LOSS_COLOUR, fontsize=FONT)
        ax.tick_params(axis="y", labelcolor=LOSS_COLOUR, labelsize=FONT - 1)
        twin = ax.twinx()
        # accuracy in %, a user's metric (line.metric, e.g. mae) as it is
        accuracy = line.metric == "acc"
        name, scale = ("accuracy", 100) if accuracy else (line.metric, 1)
        for column, style, label in (("train_acc", "-", f"train {name}"), ("test_acc", "--", f"test {name}")):
            twin.plot(alphas, scale * np.array(line.column(column)), style, color=ACCURACY_COLOUR, label=label)
        twin.set_ylabel("accuracy (%)" if accuracy else name, color=ACCURACY_COLOUR, fontsize=FONT)
        if accuracy:
            twin.set_ylim(0, 100)
        twin.tick_params(axis="y", labelcolor=ACCURACY_COLOUR, labelsize=FONT - 1)
        for alpha, name in ((0.0, panel.label_a), (1.0, panel.label_b)):
            ax.axvline(alpha, color="0.6", linewidth=0.8, linestyle=":")
            ax.annotate(name, (alpha, 0.98), xycoords=("data", "axes fraction"), ha="center", va="top",
                        fontsize=FONT - 1, bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "0.7"})
        clamped = [p.clamped_variances for p in line.points if p.clamped_variances]
        notes = [f"batch-norm statistics: {line.bn}" if line.has_batch_norm else "no batch norm",
                 f"{line.train_examples} train / {line.test_examples} test examples"]
        title = f"{panel.title}\n{' · '.join(notes)}"
        if clamped:
            title += f"\nat {len(clamped)} of {len(line.points)} α, up to {max(clamped)} variances < 0 set to 0"
        ax.set_title(title, fontsize=FONT - 1)
        handles = ax.get_legend_handles_labels()
        twin_handles = twin.get_legend_handles_labels()
        ax.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], fontsize=FONT - 2, loc="center left")
    return figure


def plot_contour(grid: ContourGrid, title: str) -> Figure:
    """Contour lines of the training loss over (a, b), the minimum (centre) marked with a star."""
    figure = Figure(figsize=(5.6, 4.8), dpi=110, layout="constrained")
    ax = figure.add_subplot()
    a, b = np.array(grid.a), np.array(grid.b)
    loss = np.array(grid.loss, dtype=float)
    finite = loss[np.isfinite(loss)]
    if finite.size and finite.max() > finite.min():
        low = max(finite.min(), 1e-8)
        # Geometric levels: the loss grows by orders of magnitude away from a minimum.
        levels = np.unique(np.geomspace(low, finite.max(), 16))
        filled = ax.contourf(a, b, np.clip(loss, low, None), levels=levels, cmap="viridis", alpha=0.35)
        lines = ax.contour(a, b, np.clip(loss, low, None), levels=levels, cmap="viridis", linewidths=0.9)
        ax.clabel(lines, levels[::3], fontsize=FONT - 3, fmt="%.3g")
        colorbar = figure.colorbar(filled, ax=ax)
        colorbar.set_label("training cross-entropy", fontsize=FONT)
    ax.plot([0.0], [0.0], "*", markersize=16, color="gold", markeredgecolor="black", zorder=5,
            label=f"minimum (loss {grid.center_loss:.4g})")
    ax.set_xlabel("a (filter-normalized direction d₁)", fontsize=FONT)
    ax.set_ylabel("b (filter-normalized direction d₂)", fontsize=FONT)
    ax.set_title(f"{title}\n{grid.examples} training examples, seed {grid.seed}", fontsize=FONT)
    ax.legend(fontsize=FONT - 2, loc="upper right")
    ax.set_aspect("equal")
    return figure


def plot_sharpness(networks: Sequence[NetworkNumbers]) -> Figure:
    """Bars of φ (log axis): ours SB and LB (mean, seeds as dots) beside the paper's SB and LB."""
    groups = [(net, key) for net in networks for key in sharpness_keys([net])]
    figure = Figure(figsize=(max(5.0, 1.9 * len(groups) + 1.5), 4.2), dpi=110, layout="constrained")
    ax = figure.add_subplot()
    width = 0.2
    bars = (("ours SB", "tab:blue", None), ("ours LB", "tab:red", None),
            ("paper SB", "lightsteelblue", 0), ("paper LB", "lightsalmon", 1))
    for g, (net, (space, eps)) in enumerate(groups):
        paper = PAPER_SHARPNESS.get((net.paper, space, eps))
        for i, (label, colour, paper_index) in enumerate(bars):
            x = g + (i - 1.5) * width
            if paper_index is None:
                values = (net.sb if label.endswith("SB") else net.lb).sharpness.get((space, eps), ())
                values = [v for v in measured(values) if v > 0]
                if not values:
                    continue
                ax.bar(x, float(np.mean(values)), width, color=colour, label=label if g == 0 else None)
                ax.plot([x] * len(values), values, "o", color="black", markersize=3)
            elif paper is not None:
                ax.bar(x, paper[paper_index], width, color=colour, label=label if g == 0 else None,
                       hatch="//", edgecolor="0.4")
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{net.paper} {'full' if space == FULL else space}\nε = {eps:g}"
                        for net, (space, eps) in groups], fontsize=FONT - 1)
    ax.set_ylabel("sharpness φ (log)", fontsize=FONT)
    # Two lines: one group of bars makes a narrow figure, and a one-line title would be cut off.
    ax.set_title("Keskar sharpness of SB and LB minima:\nmeasured (dots: seeds) and the paper's", fontsize=FONT)
    ax.legend(fontsize=FONT - 2, ncols=2)
    return figure


def _positive(values: Sequence[float]) -> np.ndarray:
    """Values for a log axis: non-positive and non-finite ones become gaps (NaN)."""
    array = np.array(values, dtype=float)
    array[~np.isfinite(array) | (array <= 0)] = math.nan
    return array
