"""Figures of the toy experiments: the ball on the surface, loss curves, and the lambda sweep.

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot, no display, no global
backend switch), so it works headless and in tests; :func:`batchlab.files.save_figure` writes it atomically.
Functions that draw one panel take an optional ``ax`` to draw into, else make their own figure.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from batchlab.toy.experiments import BETTER, FASTER, SAME, SLOWER, WORSE, SurfaceStudy, ToyReport
from batchlab.toy.surfaces import MAXIMUM, MINIMUM, Surface
from batchlab.toy.trajectory import Trajectory

FONT = 11
_CRITICAL_MARKERS = {MINIMUM: "*", MAXIMUM: "^"}
_VERDICT_COLOURS = {
    BETTER: "tab:green",
    FASTER: "tab:blue",
    SAME: "tab:gray",
    SLOWER: "tab:orange",
    WORSE: "tab:red",
}
_BASIN_MARKERS = ("o", "D", "^", "v", "P", "X")
# Below this gap to the global minimum a loss curve is at the floor of float64 round-off.
_LOSS_GAP_FLOOR = 1e-12


def _axes(ax: Axes | None, size: tuple[float, float] = (6.4, 4.8)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    figure = Figure(figsize=size, dpi=110, layout="constrained")
    return figure, figure.add_subplot()


def _colours(trajectories: Mapping[str, Trajectory]) -> dict[str, str]:
    """GD in black, momentum runs in the tab10 colours, in the order given."""
    palette = iter(["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink"])
    return {label: "black" if t.momentum == 0 else next(palette, "tab:gray") for label, t in trajectories.items()}


def _finite(points: np.ndarray) -> np.ndarray:
    return points[np.all(np.isfinite(points), axis=1)]


def plot_paths(
    surface: Surface, trajectories: Mapping[str, Trajectory], ax: Axes | None = None, title: str | None = None
) -> Figure:
    """The surface with each trajectory drawn on it.

    1-D: the curve ``L(x)`` with every iterate ``(x_t, L(x_t))`` as a dot -- the lecture's ball,
    dense where it moves slowly -- and a large dot where it stopped. 2-D: filled contours with each
    path as a line of dots. Critical points are marked (star: minimum, cross: saddle, triangle:
    maximum).
    """
    figure, ax = _axes(ax)
    colours = _colours(trajectories)
    low_high = [list(r) for r in surface.domain]
    for t in trajectories.values():  # widen the view to where the runs went (within reason)
        finite = _finite(t.points)
        for d in range(surface.dim):
            span = low_high[d][1] - low_high[d][0]
            low_high[d][0] = max(min(low_high[d][0], finite[:, d].min()), low_high[d][0] - span)
            low_high[d][1] = min(max(low_high[d][1], finite[:, d].max()), low_high[d][1] + span)

    if surface.dim == 1:
        xs = np.linspace(*low_high[0], 800)
        ax.plot(xs, surface.values(xs[None, :]), color="0.35", linewidth=2, label="loss L(x)", zorder=1)
        for label, t in trajectories.items():
            x = t.points[:, 0]
            ax.plot(x, t.losses, "o", markersize=3.5, alpha=0.45, color=colours[label], zorder=3)
            ax.plot(x[-1:], t.losses[-1:], "o", markersize=13, color=colours[label], markeredgecolor="white",
                    zorder=4, label=f"{label}: {t.ended_at}, {t.steps} steps")
        start = np.array(surface.start)
        ax.plot(start, surface.values(start[None, :]), "s", markersize=8, color="0.2", zorder=5, label="start")
        ax.set_xlabel("parameter x", fontsize=FONT)
        ax.set_ylabel("loss", fontsize=FONT)
        for point in surface.critical_points:
            ax.annotate(point.name, (point.point[0], point.loss), textcoords="offset points", xytext=(0, -16),
                        ha="center", fontsize=FONT - 2, color="0.3")
    else:
        xs = np.linspace(*low_high[0], 300)
        ys = np.linspace(*low_high[1], 300)
        grid_x, grid_y = np.meshgrid(xs, ys)
        values = surface.values(np.stack([grid_x, grid_y]))
        # Quantile levels keep the contours readable whether the loss spans 1 or 300 units.
        levels = np.unique(np.quantile(values, np.linspace(0, 1, 30)))
        ax.contourf(grid_x, grid_y, values, levels=levels, cmap="Blues_r", alpha=0.5)
        ax.contour(grid_x, grid_y, values, levels=levels, colors="0.55", linewidths=0.4)
        for label, t in trajectories.items():
            path = t.points
            ax.plot(path[:, 0], path[:, 1], "-o", markersize=2.2, linewidth=0.9, alpha=0.8, color=colours[label],
                    label=f"{label}: {t.ended_at}, {t.steps} steps")
            ax.plot(path[-1, 0], path[-1, 1], "o", markersize=9, color=colours[label], markeredgecolor="white")
        start = next(iter(trajectories.values())).points[0] if trajectories else np.array(surface.start)
        ax.plot(start[0], start[1], "s", markersize=8, color="tab:cyan", markeredgecolor="black", label="start")
        for point in surface.critical_points:
            ax.plot(point.point[0], point.point[1], _CRITICAL_MARKERS.get(point.kind, "X"), markersize=12,
                    color="gold", markeredgecolor="black", zorder=5)
            ax.annotate(point.name, point.point, textcoords="offset points", xytext=(7, 7), fontsize=FONT - 1,
                        color="black", fontweight="bold")
        ax.set_xlim(*low_high[0])
        ax.set_ylim(*low_high[1])
        ax.set_xlabel("x", fontsize=FONT)
        ax.set_ylabel("y", fontsize=FONT)
    ax.set_title(title or surface.title, fontsize=FONT + 1)
    ax.legend(fontsize=FONT - 2, loc="best")
    ax.tick_params(labelsize=FONT - 1)
    return figure


def plot_loss_curves(
    surface: Surface, trajectories: Mapping[str, Trajectory], ax: Axes | None = None, title: str | None = None
) -> Figure:
    """Loss above the global minimum, ``L(theta_t) - L_min``, against step ``t`` (log scale).

    A run that stops in a worse minimum levels off above zero; a run that stalls near a saddle
    shows a long flat stretch before it drops.
    """
    figure, ax = _axes(ax)
    colours = _colours(trajectories)
    floor = surface.global_minimum.loss
    drawn = []
    for label, t in trajectories.items():
        gap = np.clip(t.losses - floor, _LOSS_GAP_FLOOR, None)
        ax.plot(np.arange(len(gap)), gap, color=colours[label], linewidth=1.6, label=label)
        drawn.append(gap)
    ax.set_yscale("log")
    if drawn and np.ptp(np.concatenate(drawn)) == 0:
        # Every curve sits at one value (e.g. all at the floor): a decade either side, not a
        # zero-height axis.
        level = float(drawn[0][0])
        ax.set_ylim(level / 10, level * 10)
    ax.set_xlabel("step t", fontsize=FONT)
    ax.set_ylabel("L(θ_t) − L(global minimum)", fontsize=FONT)
    ax.set_title(title or "Loss above the global minimum", fontsize=FONT + 1)
    ax.legend(fontsize=FONT - 2)
    ax.tick_params(labelsize=FONT - 1)
    return figure


def plot_momentum_sweep(study: SurfaceStudy, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Where momentum helps: for each lambda of the sweep, the steps it took (to come to rest, or to
    leave the saddle), coloured by the verdict against GD (lambda = 0, dashed line), with the
    marker's shape saying where the run ended. An open marker: the run had not come to rest when
    its steps ran out."""
    figure, ax = _axes(ax)
    metric = study.time_metric
    shapes = iter(_BASIN_MARKERS)
    basin_marker: dict[str, str] = {}
    values = []
    for point in study.sweep:
        record = point.record
        value = record.escape_step if metric == "escape_step" else record.steps
        if value is None:  # never left the saddle: drawn at its step count, open marker
            value = record.steps
        values.append(value)
        if record.ended_at not in basin_marker:
            basin_marker[record.ended_at] = next(shapes, "o")
        marker = basin_marker[record.ended_at]
        colour = _VERDICT_COLOURS.get(point.verdict, "tab:gray") if record.momentum > 0 else "black"
        settled = record.converged if metric == "steps" else record.escape_step is not None
        ax.plot(record.momentum, value, marker, markersize=10, color=colour, markerfacecolor=colour if settled else "white")
        if record.momentum == 0:
            ax.axhline(value, linestyle="--", color="black", linewidth=1, label="GD (λ = 0)")
    for verdict, colour in _VERDICT_COLOURS.items():
        if any(p.verdict == verdict and p.record.momentum > 0 for p in study.sweep):
            ax.plot([], [], "s", markersize=9, color=colour, label=verdict)
    for basin, marker in basin_marker.items():
        ax.plot([], [], marker, markersize=9, color="0.5", label=f"ends in: {basin}")
    ax.set_yscale("log")
    ax.set_xlabel("momentum λ", fontsize=FONT)
    ax.set_ylabel("steps to leave the saddle" if metric == "escape_step" else "steps to come to rest", fontsize=FONT)
    ax.set_title(title or "λ sweep (colour: against GD; shape: end)", fontsize=FONT + 1)
    ax.legend(fontsize=FONT - 2, loc="upper left")
    ax.tick_params(labelsize=FONT - 1)
    if values and min(values) == max(values) and values[0] > 0:
        # Every λ took the same steps (all ran out of steps): a band around it, not a zero-height axis.
        ax.set_ylim(values[0] / 3, values[0] * 3)
    else:
        ax.margins(y=0.35)
    return figure


def study_figure(study: SurfaceStudy) -> Figure:
    """One figure per surface: the paths on the surface, the loss curves, and the lambda sweep."""
    figure = Figure(figsize=(18, 5.4), dpi=110, layout="constrained")
    left, middle, right = figure.subplots(1, 3, gridspec_kw={"width_ratios": [1.25, 1, 1]})
    scenario = next(s for s in study.scenarios if s.key == study.shown_scenario)
    shown = study.shown_trajectories()
    eta = next(iter(shown.values())).lr if shown else study.surface.lr
    plot_paths(study.surface, shown, ax=left, title=f"{study.surface.title}\n{scenario.description}, η = {eta:g}")
    plot_loss_curves(study.surface, shown, ax=middle)
    plot_momentum_sweep(study, ax=right)
    figure.suptitle(
        f"Momentum on '{study.surface.name}': m ← λm − ηg, θ ← θ + m (λ = 0 is gradient descent)",
        fontsize=FONT + 2,
    )
    return figure


def toy_figures(report: ToyReport) -> dict[str, Figure]:
    """``{"toy-<surface>": figure}`` for every surface of the report (see :func:`study_figure`)."""
    return {f"toy-{study.surface.name}": study_figure(study) for study in report.studies}
