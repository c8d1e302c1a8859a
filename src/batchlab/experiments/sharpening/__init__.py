"""Sharpness during training: λ_max every k updates for small and large batches and several
learning rates, against the stability bound 2(1 + λ)/η (Cohen et al. 2021; Jastrzębski et al. 2018).

* :mod:`~batchlab.experiments.sharpening.trajectory` — the runs trained update by update with the
  packed trainer's step, λ_max measured every k updates (Lanczos, warm-started);
* :mod:`~batchlab.experiments.sharpening.experiment` — the plan per scale, :func:`run_sharpening`
  and the findings;
* :mod:`~batchlab.experiments.sharpening.plots` — λ_max against the update with the bounds dashed;
* :mod:`~batchlab.experiments.sharpening.report` — figure, table, text and report section from a
  stored record.

Example::

    from batchlab.store import RunStore
    from batchlab.experiments.sharpening import plan_sharpening, run_sharpening
    result = run_sharpening(plan_sharpening("quick"), RunStore("batchlab-runs/runs.db"))
    print("\\n".join(result.findings))
"""

from batchlab.experiments.sharpening.experiment import (
    RECORD_KIND,
    SharpeningPlan,
    SharpeningResult,
    plan_sharpening,
    run_sharpening,
)
from batchlab.experiments.sharpening.report import sharpening_figures, sharpening_section, sharpening_text
from batchlab.experiments.shape import ORDER_GENERALIZATION, Experiment, Section, register_experiment

EXPERIMENT = register_experiment(Experiment(
    kind=RECORD_KIND,
    title="Sharpness during training: progressive sharpening and the edge of stability",
    scales=("quick", "full"),
    plan=plan_sharpening,
    run=run_sharpening,
    json_name="sharpening.json",
    figures=sharpening_figures,
    text=sharpening_text,
    # Beside the flat-vs-sharp comparison: how sharp the minima get while training, not only at the end.
    sections=(Section("sharpening", ORDER_GENERALIZATION + 3, sharpening_section),),
))

__all__ = ["EXPERIMENT", "SharpeningPlan", "SharpeningResult", "plan_sharpening", "run_sharpening"]
