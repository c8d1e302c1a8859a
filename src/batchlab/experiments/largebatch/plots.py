"""The experiment's figure: test accuracy per method with error bars, training accuracy beside it.

Built on a :class:`matplotlib.figure.Figure` directly (no pyplot), so it works headless;
:func:`batchlab.files.save_figure` writes it atomically.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from batchlab.experiments.largebatch.tables import CLOSES, NARROWS, MethodNumbers, Verdict

FONT = 10
VERDICT_COLOURS = {CLOSES: "tab:green", NARROWS: "tab:orange"}
OTHER_COLOUR = "tab:gray"
BASELINE_COLOURS = {"sb": "tab:blue", "lb": "tab:red", "lb-train-acc": "tab:purple"}


def plot_methods(methods: Sequence[MethodNumbers], found: Sequence[Verdict]) -> Figure:
    """One bar per method: mean test accuracy (%) with ±1 std error bars and each seed as a dot,
    coloured by verdict; dashed lines at the means of SB, plain LB and LB at SB's training
    accuracy; hollow markers for training accuracy."""
    verdict = {v.key: v.verdict for v in found}
    figure = Figure(figsize=(max(8.0, 0.85 * len(methods) + 4.5), 4.8), dpi=110, layout="constrained")
    ax = figure.add_subplot()
    lows = []
    for i, method in enumerate(methods):
        tests = 100 * np.array(method.test_acc, dtype=float)
        if tests.size == 0:
            ax.annotate("no result", (i, 0.5), xycoords=("data", "axes fraction"), ha="center", rotation=90,
                        fontsize=FONT - 2)
            continue
        colour = BASELINE_COLOURS.get(method.key, VERDICT_COLOURS.get(verdict.get(method.key), OTHER_COLOUR))
        std = tests.std(ddof=1) if tests.size > 1 else 0.0
        ax.bar(i, tests.mean(), 0.6, color=colour, alpha=0.75, yerr=std, capsize=4, ecolor="black")
        ax.plot([i] * tests.size, tests, "o", color="black", markersize=3)
        trains = 100 * np.array(method.train_acc, dtype=float)
        ax.plot([i + 0.22] * trains.size, trains, "^", markerfacecolor="none", markeredgecolor="0.3", markersize=5)
        lows.append(tests.min())
        lows.append(trains.min())
    for method in methods:
        if method.key in BASELINE_COLOURS and method.test_acc:
            ax.axhline(100 * float(np.mean(method.test_acc)), color=BASELINE_COLOURS[method.key], linestyle="--",
                       linewidth=0.9, label=f"{method.label}: mean test accuracy")
    ax.plot([], [], "^", markerfacecolor="none", markeredgecolor="0.3", label="training accuracy (seeds)")
    handles, labels = ax.get_legend_handles_labels()
    for name, colour in (*VERDICT_COLOURS.items(), ("not here / unresolved / no verdict", OTHER_COLOUR)):
        handles.append(Patch(facecolor=colour, alpha=0.75))
        labels.append(name)
    if lows:
        ax.set_ylim(max(0.0, min(lows) - 3.0), 101.0)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels([m.label for m in methods], rotation=35, ha="right", fontsize=FONT - 1)
    ax.set_ylabel("test accuracy (%)", fontsize=FONT)
    ax.set_title("Test accuracy per method (bars: mean ± std over seeds, dots: seeds)", fontsize=FONT)
    ax.legend(handles, labels, fontsize=FONT - 2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return figure
