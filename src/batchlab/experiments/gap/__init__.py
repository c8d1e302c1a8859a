"""Keskar et al.'s generalization-gap experiment: small vs large batch, sharp minima.

* :mod:`~batchlab.experiments.gap.experiment` — the plan per scale and :func:`run_gap`, which trains and
  measures into the run store;
* :mod:`~batchlab.experiments.gap.own_model` — the comparison on a user's own classification model and data
  (``task=``, ``--model-file``/``--data-file``) with the scale's protocol;
* :mod:`~batchlab.experiments.gap.measurements` — sharpness and landscapes of stored minima, kept as records;
* :mod:`~batchlab.experiments.gap.tables` — the paper's Tables 2–4 beside ours, and the automatic verdict;
* :mod:`~batchlab.experiments.gap.plots` — the parametric plot (Figure 3), contours, sharpness bars;
* :mod:`~batchlab.experiments.gap.report` — figures, captions and text from a stored result (the lecture
  report's generalization section is drawn from them).

Example::

    from batchlab.store import RunStore
    from batchlab.experiments.gap import plan_gap, run_gap
    result = run_gap(plan_gap("quick", seeds=2), RunStore("batchlab-runs/runs.db"))
    print(result.accuracy.render()); print(result.paragraph)
"""

from batchlab.experiments.gap.experiment import GAP_SCALES, RECORD_KIND, GapPlan, GapResult, NetworkPlan, plan_gap, run_gap
from batchlab.experiments.gap.report import (
    gap_figures,
    gap_own_section,
    gap_paper_section,
    gap_section,
    gap_summary_rows,
    gap_text,
)
from batchlab.experiments.shape import ORDER_GENERALIZATION, Experiment, Section, register_experiment

EXPERIMENT = register_experiment(Experiment(
    kind=RECORD_KIND,
    title="Keskar et al.'s generalization gap: small vs large batch, sharp minima",
    scales=GAP_SCALES,
    plan=plan_gap,
    run=run_gap,
    json_name="gap.json",
    figures=gap_figures,
    text=gap_text,
    # The lecture's flat-vs-sharp comparison first, then batchlab gap's on the paper's networks
    # beside it, then a user's own model in a section of its own.
    sections=(Section("gap", ORDER_GENERALIZATION, gap_section),
              Section("gap-paper", ORDER_GENERALIZATION + 1, gap_paper_section),
              Section("gap-own", ORDER_GENERALIZATION + 2, gap_own_section)),
    summary_rows=gap_summary_rows,
))

__all__ = ["EXPERIMENT", "GapPlan", "GapResult", "NetworkPlan", "gap_figures", "plan_gap", "run_gap"]
