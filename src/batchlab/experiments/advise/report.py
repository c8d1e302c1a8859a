"""``advise`` as a table, a recommendation in words, figures and a section of ``batchlab report``.

Everything starts from the stored ``advise`` record (the dict of ``AdviseResult.to_dict``), so the
report is rebuilt from the store alone; ``batchlab advise`` prints and draws with the same
functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

from batchlab.experiments.advise.choose import BY_TIME, seconds_text
from batchlab.experiments.advise.plots import plot_noise, plot_steps, plot_time
from batchlab.experiments.advise.experiment import RECORD_KIND
from batchlab.experiments.shape import latest_record, load_text
from batchlab.report.document import ReportSection, TableItem
from batchlab.report.figures import figure_item

if TYPE_CHECKING:
    from batchlab.report.context import ReportContext
    from batchlab.store import RunStore

SECTION_ID = RECORD_KIND
SECTION_TITLE = "Which batch size: steps and time to a result (Shallue et al. 2019, McCandlish et al. 2018)"
COLUMNS = ("B", "best η", "λ", "S (seeds)", "E = S·B", "t/update", "T = S·t", "regime")


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}g}"


_seconds = seconds_text


def table_rows(record: Mapping[str, Any]) -> list[list[str]]:
    """One row per B (see :data:`COLUMNS`); a B never reached says so."""
    rows = []
    for r in record["rows"]:
        if not r["reached"]:
            best = r.get("best_metric")
            rows.append([str(r["batch_size"]), "—", "—",
                         f"not reached in {r['budget']} updates (best {_num(best, 4)})", "—", "—", "—", "—"])
            continue
        edge = " (edge)" if r["lr_at_edge"] else ""
        seeds = f"{r['steps']:.4g} ({r['steps_low']}–{r['steps_high']})"
        rows.append([str(r["batch_size"]), f"{r['lr']:.3g}{edge}", f"{r['momentum']:g}", seeds,
                     f"{r['examples']:.4g}", _seconds(r.get("time_per_update_s")),
                     _seconds(r.get("time_to_target_s")), r.get("regime") or "—"])
    return rows


def render_table(record: Mapping[str, Any]) -> str:
    rows = [list(COLUMNS)] + table_rows(record)
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fit_sentence(record: Mapping[str, Any]) -> str:
    fit = record.get("fit")
    if not fit:
        return f"No trade-off fit: {record.get('fit_note')}."
    if fit.get("unresolved"):
        return f"Trade-off fit: {fit['unresolved']}."
    text = (f"Fit of (S/S_min − 1)(E/E_min − 1) = 1 to {fit['points']} batch sizes: S_min = {fit['s_min']:.3g}, "
            f"E_min = {fit['e_min']:.3g}, B_crit = E_min/S_min = {fit['b_crit']:.3g}")
    if fit.get("b_crit_factor"):
        text += (f" (1σ factors from the fit's covariance: ×/÷ {fit['s_min_factor']:.2f}, {fit['e_min_factor']:.2f}, "
                 f"{fit['b_crit_factor']:.2f})")
    if fit.get("b_crit_interval"):
        low, high = fit["b_crit_interval"]
        text += f"; bootstrap over seeds, 95 %: B_crit {low:.3g} … {high:.3g}"
    return text + f"; rms log residual {fit['residual_rms']:.3f}."


def noise_sentence(record: Mapping[str, Any]) -> str | None:
    noise = record.get("noise")
    if not noise or not noise["points"]:
        return None
    parts = [f"{p['when']} (update {p['update']}) {_num(p['b_simple'])}" for p in noise["points"]]
    return (f"Simple noise scale B_simple = tr Σ/|G|² along the best run at B = {noise['batch_size']}: "
            + ", ".join(parts) + " (McCandlish et al. find B_crit ≈ B_noise, both growing as training goes on).")


def recommendation_lines(record: Mapping[str, Any]) -> list[str]:
    """The one answer with its command, then the alternatives with their reasons
    (:mod:`batchlab.experiments.advise.choose` states the rule)."""
    rec = record["recommendation"]
    target = record["plan"]["target"]["key"]
    device = record.get("environment", {}).get("device_name", "this device")
    choice = rec.get("choice")  # None in records made before advise gave one answer
    lines = []
    if choice:
        if choice["rule"] == BY_TIME:
            why = f"the shortest time to {target} on {device} ({_seconds(choice['time_to_target_s'])})"
        else:
            reason = rec["uncertain"].rstrip(".")
            why = (f"the ranking by time is uncertain — {reason[:1].lower() + reason[1:]} — so by steps and "
                   f"examples: the largest B of {', '.join(map(str, rec['in_question']))} within 25 % of their "
                   "least examples")
        lines.append(f"Use B = {choice['batch_size']}, η = {choice['lr']:.3g}, λ = {choice['momentum']:g}: "
                     f"`{rec['command']}`")
        lines.append(f"Why: {why}; {choice['steps']:.4g} steps, {choice['examples']:.4g} examples"
                     + (f"; η search: {choice['lr_search']}" if choice.get("lr_search") else "")
                     + (f"; timed twice (overlapping times): B = {', '.join(map(str, rec['measured_again']))}"
                        if rec.get("measured_again") else "") + ".")
    if rec.get("fastest"):
        f = rec["fastest"]
        spread = f" ({_seconds(f['time_low_s'])} … {_seconds(f['time_high_s'])})" if f.get("time_low_s") else ""
        lines.append(f"Alternative, fastest here: B = {f['batch_size']} (η = {f['lr']:.3g}, λ = {f['momentum']:g}), "
                     f"{f['steps']:.4g} steps, {_seconds(f['time_to_target_s'])}{spread}"
                     + (" — uncertain" if rec.get("uncertain") else "") + ".")
    c = rec["least_compute"]
    if c:
        lines.append(f"Alternative, least compute: B = {c['batch_size']} (η = {c['lr']:.3g}, λ = {c['momentum']:g}), "
                     f"{c['examples']:.4g} examples — the cheapest in examples, but {c['steps']:.4g} sequential "
                     "steps.")
    bound = rec.get("b_crit_bound")
    if rec.get("largest_perfect_scaling"):
        p = rec["largest_perfect_scaling"]
        lines.append(f"Alternative, largest measured B still in perfect scaling: B = {p['batch_size']} — doubling B "
                     f"there still nearly halves the steps (the fit puts the limit at B_crit/4 ≈ "
                     f"{rec['perfect_scaling_limit']:.3g}).")
    elif bound is not None:
        side, size = bound
        lines.append(f"B_crit {side} {size}: " + (
            "every measured B may still be in perfect scaling; larger batches (--max-batch) would find where it "
            "ends." if side == ">" else "every measured B is past B_crit, in diminishing returns or beyond."))
    elif rec.get("perfect_scaling_limit") is not None:
        lines.append(f"No measured B is in perfect scaling; the fit puts its limit at B_crit/4 ≈ "
                     f"{rec['perfect_scaling_limit']:.3g}.")
    memory = record.get("memory")
    if memory:
        lines.append(f"Largest batch that fits in memory on {memory['device_name']} (doubling search): "
                     f"B = {memory['largest_batch']}" + (f" (B = {memory['first_out_of_memory']} ran out of memory)"
                                                        if memory.get("first_out_of_memory") else "") + ".")
    else:
        lines.append("Largest batch that fits in memory: not searched (no CUDA device).")
    return lines


def advise_text(record: Mapping[str, Any]) -> str:
    """What ``batchlab advise`` prints: the table, the recommendation, the fit, the noise scale, and
    how long it took on which device (with the load) and how many runs trained."""
    lines = [render_table(record), "", *recommendation_lines(record), fit_sentence(record)]
    noise = noise_sentence(record)
    if noise:
        lines.append(noise)
    lines.append(f"took {record['seconds']:.0f} s on {record['environment'].get('device_name', 'this device')}"
                 f"{load_text(record.get('load_average'))}; trained {record['trained_runs']} of {len(record['runs'])} runs")
    return "\n".join(lines)


def advise_figures(record: Mapping[str, Any]) -> list[tuple[str, str, str, Figure]]:
    """``(id, title, caption, figure)`` for the steps, time and noise figures."""
    target = record["plan"]["target"]["key"]
    figures = [
        ("advise-steps", f"Steps to {target} against batch size (Shallue et al.'s figure)",
         "Best steps S(B) over the learning-rate and momentum grid at each B (bars: range over seeds; hollow: best "
         "η still on an edge after its grid was extended; ▲: not reached). Dotted: perfect scaling through the smallest B; solid: "
         "McCandlish's S = S_min(1 + B_crit/B). " + fit_sentence(record), plot_steps(record)),
        ("advise-time", "Time and examples to the target against batch size",
         "T(B) = S(B)·t(B) with t(B) the median time of one update of batchlab's trainer step on this device; "
         "E(B) = S(B)·B. " + " ".join(recommendation_lines(record)[:2]), plot_time(record)),
    ]
    if record.get("noise") and record["noise"]["points"]:
        figures.append(("advise-noise", "Simple noise scale over training", noise_sentence(record) or "",
                        plot_noise(record)))
    return figures


def latest_advise_record(store: "RunStore") -> dict[str, Any] | None:
    """The most recently written ``advise`` record of ``store`` (by ``created``), or None."""
    return latest_record(store, RECORD_KIND)


def section_notes(record: Mapping[str, Any]) -> list[str]:
    plan = record["plan"]
    template = plan["template"]
    load = record.get("load_average") or [None, None]
    notes = [
        f"Setting: {template['model']} on {template['dataset']} ({plan['n_train']} training examples), scale "
        f"'{plan['scale']}', {plan['seeds']} seed(s), learning rates {plan['lr_rule']} with reference "
        f"η = {plan['reference_lr']:g} at B = {plan['reference_batch']}, {plan['lr_points']} points a factor "
        f"{plan['lr_factor']:g} apart, λ ∈ {{{', '.join(f'{m:g}' for m in plan['momenta'])}}}.",
        f"S is the first evaluated update at which {plan['target']['key']}; the metric is evaluated on a geometric "
        f"schedule (ratio {plan['eval_ratio']:g}), so S overestimates the first crossing by less than that factor. "
        "A batch size where no configuration reached the target is reported as not reached, never extrapolated.",
        f"This pass trained {record['trained_runs']} of {len(record['runs'])} runs in {record['seconds']:.0f} s"
        + ("" if load[0] is None else f" (1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end)")
        + "; runs already in the store are reused.",
        "A best η on an edge of its grid extends that grid by the grid's own factor until it is interior, bounded "
        "by divergence, or three values were added; only then is it marked (edge).",
        "The one answer: the shortest time to the target when the ranking by time is sure (the machine not busy "
        "while timing, and the fastest B's 90 % interval over interleaved repeats clear of every other B's; "
        "overlapping ones are timed once more first); otherwise the largest B within 25 % of the least examples "
        "among those in question, marked uncertain — steps and examples, which no clock changes.",
    ]
    return notes


def advise_section(ctx: ReportContext) -> ReportSection | None:
    """Steps, examples and time to a target per batch size and the batch size to pick, from the
    latest ``advise`` record; None when the store has none."""
    record = latest_advise_record(ctx.store)
    if record is None:
        return None
    table = TableItem("Steps, examples and time to the target per batch size", list(COLUMNS),
                      table_rows(record), "Best (η, λ) per B; S is the mean over seeds with their range.")
    figures = [figure_item(figure, figure_id, title, caption)
               for figure_id, title, caption, figure in advise_figures(record)]
    intro = " ".join(recommendation_lines(record)) + " " + fit_sentence(record)
    noise = noise_sentence(record)
    if noise:
        intro += " " + noise
    return ReportSection(SECTION_ID, SECTION_TITLE, intro=intro, figures=figures, tables=[table],
                         notes=section_notes(record),
                         data={"recommendation": record["recommendation"], "created": record["created"]})
