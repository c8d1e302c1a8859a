"""Figures of ``batchlab advise``, drawn from its record (the dict of ``AdviseResult.to_dict``).

* :func:`plot_steps` — Shallue et al. 2019's steps-to-result figure: best S(B) per batch size on
  log-log axes (bars: the seeds' range; hollow: best η still on an edge after its grid was
  extended; ▲ at the top: not reached), the perfect-scaling line S ∝ 1/B through the smallest
  reached B, McCandlish's fitted S = S_min(1 + B_crit/B), and the three regimes shaded;
* :func:`plot_time` — time to the target T(B) = S·t(B) on this device, and examples E(B) = S·B;
* :func:`plot_noise` — the simple noise scale B_simple at the start, middle and end of a run,
  beside the fitted B_crit.

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot), so it works
headless.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from batchlab.experiments.advise.fit import REGIME_FRACTION, TradeoffFit

FONT = 10
REGIME_COLOURS = (("perfect scaling", "tab:green"), ("diminishing returns", "tab:orange"),
                  ("maximal data parallelism", "tab:red"))


def _fit(record: Mapping[str, Any]) -> TradeoffFit | None:
    fit = record.get("fit")
    if not fit or fit.get("unresolved"):
        return None
    return TradeoffFit.from_dict(fit)


def plot_steps(record: Mapping[str, Any]) -> Figure:
    rows = record["rows"]
    figure = Figure(figsize=(6.4, 4.6), dpi=110, layout="constrained")
    ax = figure.subplots()
    reached = [r for r in rows if r["reached"]]
    sizes = np.array([r["batch_size"] for r in rows], dtype=float)
    low_x, high_x = sizes.min() / 1.6, sizes.max() * 1.6
    fit = _fit(record)
    if fit is not None:
        edges = [low_x, fit.b_crit * REGIME_FRACTION, fit.b_crit / REGIME_FRACTION, high_x]
        for (name, colour), left, right in zip(REGIME_COLOURS, edges[:-1], edges[1:]):
            left, right = max(left, low_x), min(right, high_x)
            if right > left:
                ax.axvspan(left, right, color=colour, alpha=0.08, lw=0)
                ax.text(np.sqrt(left * right), 0.02, name, transform=ax.get_xaxis_transform(), ha="center",
                        va="bottom", fontsize=FONT - 2, color=colour)
        grid = np.geomspace(low_x, high_x, 200)
        ax.plot(grid, fit.s_min * (1 + fit.b_crit / grid), "-", color="tab:purple",
                label=f"fit: S_min = {fit.s_min:.3g}, B_crit = {fit.b_crit:.3g}")
    if reached:
        first = reached[0]
        grid = np.geomspace(low_x, high_x, 50)
        ax.plot(grid, first["steps"] * first["batch_size"] / grid, ":", color="grey", label="perfect scaling (S ∝ 1/B)")
        for row in reached:
            err = [[row["steps"] - row["steps_low"]], [row["steps_high"] - row["steps"]]]
            face = "white" if row["lr_at_edge"] else "tab:blue"
            ax.errorbar([row["batch_size"]], [row["steps"]], yerr=err, fmt="o", color="tab:blue", mfc=face,
                        capsize=3)
        ax.plot([], [], "o", color="tab:blue", label="measured: best η, λ (bars: seeds)")
        if any(r["lr_at_edge"] for r in reached):
            ax.plot([], [], "o", color="tab:blue", mfc="white", label="best η on an edge after extending")
    missed = [r for r in rows if not r["reached"]]
    if missed:
        top = max([r["budget"] for r in missed] + [r["steps"] for r in reached])
        ax.plot([r["batch_size"] for r in missed], [top * 1.3] * len(missed), "^", color="tab:red",
                label="not reached within the budget")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlim(low_x, high_x)
    ax.set_xlabel("batch size B", fontsize=FONT)
    ax.set_ylabel(f"steps to {record['plan']['target']['key']}", fontsize=FONT)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=FONT - 2, loc="upper right")
    return figure


def plot_time(record: Mapping[str, Any]) -> Figure:
    rows = [r for r in record["rows"] if r["reached"]]
    figure = Figure(figsize=(10.0, 4.2), dpi=110, layout="constrained")
    time_ax, examples_ax = figure.subplots(1, 2)
    timed = [r for r in rows if r.get("time_to_target_s") is not None]
    device = record.get("environment", {}).get("device_name", "this device")
    if timed:
        time_ax.plot([r["batch_size"] for r in timed], [r["time_to_target_s"] for r in timed], "o-", color="tab:blue")
    time_ax.set_title(f"time to the target on {device}", fontsize=FONT)
    time_ax.set_ylabel("T(B) = S(B) · t(B)  (s)", fontsize=FONT)
    examples_ax.plot([r["batch_size"] for r in rows], [r["examples"] for r in rows], "o-", color="tab:green")
    examples_ax.set_title("examples to the target", fontsize=FONT)
    examples_ax.set_ylabel("E(B) = S(B) · B", fontsize=FONT)
    for ax in (time_ax, examples_ax):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size B", fontsize=FONT)
        ax.grid(True, which="both", alpha=0.25)
    return figure


def plot_noise(record: Mapping[str, Any]) -> Figure:
    noise = record["noise"]
    figure = Figure(figsize=(6.0, 4.2), dpi=110, layout="constrained")
    ax = figure.subplots()
    points = [p for p in noise["points"] if p["b_simple"] is not None and p["b_simple"] > 0]
    ax.plot([p["update"] for p in points], [p["b_simple"] for p in points], "o-", color="tab:blue",
            label="B_simple = tr Σ / |G|²")
    for p in points:
        ax.annotate(p["when"], (p["update"], p["b_simple"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=FONT - 2)
    fit = _fit(record)
    if fit is not None:
        ax.axhline(fit.b_crit, color="tab:purple", ls="--", label=f"B_crit (fit) = {fit.b_crit:.3g}")
    ax.set_yscale("log")
    ax.set_xlabel(f"update (B = {noise['batch_size']}, η = {noise['lr']:.3g}, λ = {noise['momentum']:g})",
                  fontsize=FONT)
    ax.set_ylabel("noise scale", fontsize=FONT)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=FONT - 2)
    return figure
