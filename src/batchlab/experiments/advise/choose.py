"""The one answer of ``advise`` and the command that applies it, with the alternatives as context.

**The rule that picks the one answer** (:func:`recommend`), among the batch sizes whose best
(η, λ) reached the target (the candidates):

1. **By time, when the ranking by time is sure.** T(B) = S(B)·t(B), t(B) the median time per
   update over interleaved repeats and [T_low, T_high] = S(B)·(the median's 90 % interval,
   :func:`batchlab.experiments.advise.measure.median_interval`). The ranking is sure when every
   candidate was timed, the machine was not busy while timing (other processes' 1-minute load of
   half the cores or more, the timing harness's rule,
   :func:`batchlab.timing.harness.busy_machine_note`), and the fastest candidate's interval lies
   wholly below every other candidate's. The answer is then the fastest: the shortest time to the
   target on this machine.
2. **Otherwise by steps and examples, and said to be uncertain.** The set still in question is
   the candidates whose time interval overlaps the fastest's (every candidate when the machine was
   busy or nothing was timed). The answer is the largest B in that set whose examples E = S·B are
   within 25 % of the least E in the set: the end of perfect scaling read from the measurements
   (Shallue et al. 2019's boundary, :data:`batchlab.experiments.advise.fit.REGIME_FRACTION`), the
   fewest steps that cost almost no extra computation. Before falling back on overlapping
   intervals, the batch sizes in question are timed once more and the repeats pooled
   (:func:`recommend_measured`). Steps and examples come from stored runs
   and no clock changes them, so a rerun on a loaded machine gives the same answer — never a
   silent flip to another B.

Ties go to the smaller B. The alternatives shown beside the answer: the fastest (when timed),
the least compute (fewest examples), and the largest B in perfect scaling (by the fit's regimes;
with a B_crit bound, the bound).
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from batchlab.experiments.advise.fit import PERFECT_SCALING, REGIME_FRACTION, TradeoffFit
from batchlab.experiments.advise.measure import pool_timings

BY_TIME = "shortest time"
BY_STEPS = "steps and examples"
# Why a ranking by time is uncertain.
UNTIMED, BUSY, OVERLAP = "untimed", "busy", "overlap"


def with_times(rows: Sequence[dict[str, Any]], per_batch: Mapping[int, Mapping[str, float]]) -> None:
    """Put each reached row's time per update t and T = S·t with its interval [S·t_low, S·t_high]
    (``per_batch``: :func:`batchlab.experiments.advise.measure.time_updates`'s, by B)."""
    for row in rows:
        timed = per_batch.get(row["batch_size"]) if row["reached"] else None
        if timed is None:
            continue
        row["time_per_update_s"] = timed["per_update_s"]
        row["time_to_target_s"] = row["steps"] * timed["per_update_s"]
        row["time_low_s"] = row["steps"] * timed["low_s"]
        row["time_high_s"] = row["steps"] * timed["high_s"]


def time_interval(row: Mapping[str, Any]) -> tuple[float, float] | None:
    """[T_low, T_high] of a timed row, else None."""
    low, high = row.get("time_low_s"), row.get("time_high_s")
    return None if low is None or high is None else (low, high)


def _least(rows: Sequence[Mapping[str, Any]], key: str) -> Mapping[str, Any]:
    return min(rows, key=lambda r: (r[key], r["batch_size"]))


def by_steps_and_examples(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The largest B whose examples are within 25 % of the least among ``rows`` (rule 2)."""
    least = min(r["examples"] for r in rows)
    near = [r for r in rows if r["examples"] <= least * (1 + REGIME_FRACTION)]
    return max(near, key=lambda r: r["batch_size"])


def recommend(rows: Sequence[Mapping[str, Any]], fit: TradeoffFit | None, memory: Mapping[str, Any] | None,
              busy: str | None) -> dict[str, Any]:
    """The one answer by the module docstring's rule, ``uncertain`` (why the ranking by time is not
    sure, or None), and the alternatives. ``rows``: one per B as ``advise`` makes them;
    ``busy``: the busy-machine note of the timing, or None."""
    reached = [r for r in rows if r["reached"]]
    if not reached:
        raise ValueError("recommend needs a batch size that reached the target")
    timed = [r for r in reached if time_interval(r) is not None]
    fastest = _least(timed, "time_to_target_s") if timed else None
    uncertain, because = None, None
    if fastest is None:
        uncertain, because, in_question = "no batch size was timed", UNTIMED, reached
    elif len(timed) < len(reached):
        uncertain, because, in_question = "not every batch size that reached the target was timed", UNTIMED, reached
    elif busy:
        uncertain, because, in_question = busy, BUSY, reached
    else:
        low, high = time_interval(fastest)
        overlapping = [r for r in timed if r is not fastest and time_interval(r)[0] <= high]
        in_question = [fastest, *overlapping]
        if overlapping:
            others = ", ".join(f"B = {r['batch_size']}" for r in overlapping)
            because = OVERLAP
            uncertain = (f"the time to the target at B = {fastest['batch_size']} "
                         f"({seconds_text(low)} … {seconds_text(high)}) overlaps that at {others}")
    choice = fastest if uncertain is None else by_steps_and_examples(in_question)
    cheapest = _least(reached, "examples")
    perfect = [r for r in reached if r.get("regime") == PERFECT_SCALING]
    return {
        "choice": pick(choice) | {"rule": BY_TIME if uncertain is None else BY_STEPS},
        "uncertain": uncertain,
        "uncertain_because": because,
        "in_question": [r["batch_size"] for r in in_question],
        "fastest": None if fastest is None else pick(fastest),
        "least_compute": pick(cheapest),
        "largest_perfect_scaling": None if not perfect else pick(max(perfect, key=lambda r: r["batch_size"])),
        "perfect_scaling_limit": None if fit is None or fit.unresolved else fit.perfect_scaling_limit,
        "b_crit": None if fit is None or fit.unresolved else fit.b_crit,
        "b_crit_bound": None if fit is None or fit.b_crit_bound is None else list(fit.b_crit_bound),
        "largest_fitting_batch": None if memory is None else memory["largest_batch"],
    }


def recommend_measured(rows: Sequence[dict[str, Any]], fit: TradeoffFit | None, memory: Mapping[str, Any] | None,
                       measure: Callable[[list[int]], dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Time the reached batch sizes (``measure(batch_sizes)``:
    :func:`batchlab.experiments.advise.measure.time_updates` for them) and :func:`recommend`; when
    the ranking is uncertain only because time intervals overlap, measure the batch sizes in
    question once more, pool the repeats (:func:`~batchlab.experiments.advise.measure.pool_timings`)
    and decide again — a spike in one round then weighs less, and times that are truly alike stay
    uncertain. Returns (the recommendation, the timing)."""
    reached = [r["batch_size"] for r in rows if r["reached"]]
    timing = measure(reached)
    with_times(rows, timing["per_batch"])
    advice = recommend(rows, fit, memory, timing["busy"])
    if advice["uncertain_because"] == OVERLAP:
        timing = pool_timings(timing, measure(advice["in_question"]))
        with_times(rows, timing["per_batch"])
        advice = recommend(rows, fit, memory, timing["busy"])
    advice["measured_again"] = timing.get("measured_again", [])
    return advice, timing


def pick(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in ("batch_size", "lr", "momentum", "steps", "steps_high", "examples",
                                    "time_to_target_s", "time_low_s", "time_high_s", "lr_at_edge", "lr_search")}


def epochs_to_reach(row: Mapping[str, Any], n_train: int) -> int:
    """Epochs in which every seed of ``row`` reached the target: ⌈max S over seeds · B / N⌉."""
    steps = row.get("steps_high") or row["steps"]
    return max(1, math.ceil(steps * row["batch_size"] / n_train))


def train_command(choice: Mapping[str, Any], template: Mapping[str, Any], n_train: int,
                  files: Sequence[str] | None) -> str:
    """The ``batchlab train`` command line that trains ``choice`` on the advised model and data:
    the registry's flags of ``template`` (a RunConfig as a dict), or ``--model-file``/``--data-file``;
    then B, η, λ and the epochs in which every seed reached the target. A template with a
    training subset, which ``train`` has no flag for, gets :func:`python_call` instead."""
    if files is None and template.get("train_subset") is not None:
        return python_call(choice, n_train, template)
    words = ["batchlab", "train"]
    if files is not None:
        words += ["--model-file", files[0], "--data-file", files[1]]
    else:
        words += ["--dataset", template["dataset"], "--model", template["model"]]
        if template.get("hidden"):
            words += ["--hidden", *(str(h) for h in template["hidden"])]
        if template.get("val_fraction") not in (None, 0.1):
            words += ["--val-fraction", f"{template['val_fraction']:g}"]
        if template.get("split_seed"):
            words += ["--split-seed", str(template["split_seed"])]
    words += ["--batch-size", str(choice["batch_size"]), "--lr", f"{choice['lr']:.3g}",
              "--momentum", f"{choice['momentum']:g}", "--epochs", str(epochs_to_reach(choice, n_train))]
    return shlex.join(words)


def python_call(choice: Mapping[str, Any], n_train: int, template: Mapping[str, Any] | None = None) -> str:
    """The Python call that applies ``choice``: to ``task=task`` (a task given in Python, no files
    to name) when ``template`` is None, else to the registry data ``template`` names."""
    fields = ""
    if template is not None:
        fields = f"dataset={template['dataset']!r}, model={template['model']!r}, "
        for name in ("hidden", "train_subset", "val_fraction", "split_seed"):
            if template.get(name) is not None:
                value = tuple(template[name]) if name == "hidden" else template[name]
                fields += f"{name}={value!r}, "
    call = (f"batchlab.train(batchlab.RunConfig({fields}batch_size={choice['batch_size']}, lr={choice['lr']:.3g}, "
            f"momentum={choice['momentum']:g}, epochs={epochs_to_reach(choice, n_train)})")
    return call + (", task=task)" if template is None else ")")


def seconds_text(value: float | None) -> str:
    """``406 µs``, ``47.9 ms``, ``3.2 s``; ``—`` for None."""
    if value is None:
        return "—"
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"
