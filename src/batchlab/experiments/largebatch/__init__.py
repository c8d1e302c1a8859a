"""Large batches without the generalization gap: the methods side by side, trained here.

* :mod:`~batchlab.experiments.largebatch.experiment` — the plan per scale and :func:`run_largebatch`, which
  trains every method and seed into the run store and measures the minima;
* :mod:`~batchlab.experiments.largebatch.own_model` — the comparison on a user's own classification model
  and data (``task=``, ``--model-file``/``--data-file``): what it needs of them, and their identity;
* :mod:`~batchlab.experiments.largebatch.swap` — SWAP (Gupta et al. 2020): weight averaging and batch-norm
  recomputation, the three phases with each one stored;
* :mod:`~batchlab.experiments.largebatch.tables` — the table, the papers' claims and the verdict rule;
* :mod:`~batchlab.experiments.largebatch.plots` — test accuracy per method with error bars;
* :mod:`~batchlab.experiments.largebatch.report` — the figure and the lecture report's section from a stored result.

Example::

    import batchlab
    from batchlab.store import RunStore
    from batchlab.experiments.largebatch import plan_largebatch, run_largebatch
    result = run_largebatch(plan_largebatch("quick"), RunStore("batchlab-runs/runs.db"))
    print(result.table.render()); print(result.paragraph)

    # your own classification model and data, at batch sizes that fit them
    task = batchlab.Task(make_model, (x_train, y_train, x_val, y_val, x_test, y_test))
    plan = plan_largebatch("quick", task=task, small_batch=8, large_batch=256)
"""

from batchlab.experiments.largebatch.experiment import (
    RECORD_KIND,
    LargeBatchPlan,
    LargeBatchResult,
    plan_largebatch,
    run_largebatch,
)
from batchlab.experiments.largebatch.report import largebatch_figures, largebatch_section, largebatch_text
from batchlab.experiments.shape import ORDER_GENERALIZATION, Experiment, Section, register_experiment

EXPERIMENT = register_experiment(Experiment(
    kind=RECORD_KIND,
    title="Large batches without the gap: the methods side by side",
    plan=plan_largebatch,
    run=run_largebatch,
    json_name="largebatch.json",
    figures=largebatch_figures,
    text=largebatch_text,
    # "Having both": right after the gap the methods try to close.
    sections=(Section("largebatch", ORDER_GENERALIZATION + 5, largebatch_section),),
))

__all__ = ["EXPERIMENT", "LargeBatchPlan", "LargeBatchResult", "plan_largebatch", "run_largebatch"]
