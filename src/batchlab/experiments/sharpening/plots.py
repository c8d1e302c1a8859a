"""The experiment's figure: λ_max against the update, one line per (B, η), each η's stability
bound 2(1 + λ)/η as a dashed line of the same colour; below it, the loss on the same examples.

Built on a :class:`matplotlib.figure.Figure` directly (no pyplot), so it works headless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

FONT = 10
# One colour per learning rate, one marker and line width per batch size (smallest first).
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
MARKERS = ("o", "s", "^", "D", "v")
WIDTHS = (1.0, 2.0, 2.8, 3.4, 3.8)


def plot_sharpening(runs: Sequence[Mapping[str, Any]], momentum: float) -> Figure:
    """λ_max (log scale) and the probe loss against the update for every run of a ``sharpening``
    record; a run that diverged or failed to train is drawn faded, up to where it stopped."""
    lrs = sorted({run["lr"] for run in runs})
    sizes = sorted({run["batch_size"] for run in runs})
    colour = {lr: COLOURS[i % len(COLOURS)] for i, lr in enumerate(lrs)}
    figure = Figure(figsize=(8.6, 6.4), dpi=110, layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1.3))
    for run in runs:
        points = [p for p in run["points"] if p[1] is not None]
        k = sizes.index(run["batch_size"])
        failed = run["status"] != "finished"
        label = f"B = {run['batch_size']}, η = {run['lr']:g}" + ("" if not failed else f" ({run['status']})")
        style = dict(color=colour[run["lr"]], marker=MARKERS[k % len(MARKERS)], markersize=3.5,
                     linewidth=WIDTHS[k % len(WIDTHS)], alpha=0.35 if failed else 0.9)
        top.plot([p[0] for p in points], [p[1] for p in points], label=label, **style)
        bottom.plot([p[0] for p in run["points"]], [p[3] for p in run["points"]], **style)
    for lr in lrs:
        bound = next(run["bound"] for run in runs if run["lr"] == lr)
        if bound is not None:
            top.axhline(bound, color=colour[lr], linestyle="--", linewidth=1.1,
                        label=f"2(1 + λ)/η = {bound:.3g} (η = {lr:g})")
    top.set_yscale("log")
    top.set_ylabel("λ_max of the training loss", fontsize=FONT)
    top.set_title(f"Sharpness during training (λ = {momentum:g}); dashed: the stability bound of each η",
                  fontsize=FONT)
    top.legend(fontsize=FONT - 2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    top.grid(True, which="both", alpha=0.25)
    bottom.set_yscale("log")
    bottom.set_xlabel("update", fontsize=FONT)
    bottom.set_ylabel("loss (same examples)", fontsize=FONT)
    bottom.grid(True, which="both", alpha=0.25)
    return figure
