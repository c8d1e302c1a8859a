"""Which batch size to use, measured: steps, examples and time to a target against batch size.

* :mod:`~batchlab.experiments.advise.target` — the target, its evaluation schedule and steps S to reach it;
* :mod:`~batchlab.experiments.advise.trace` — all runs of one batch size trained together towards the target;
* :mod:`~batchlab.experiments.advise.fit` — McCandlish et al.'s S_min, E_min, B_crit and Shallue et al.'s regimes;
* :mod:`~batchlab.experiments.advise.measure` — noise scale along training, time per update, GPU memory limit;
* :mod:`~batchlab.experiments.advise.lr_search` — the learning-rate grid at a B, extended at an edge;
* :mod:`~batchlab.experiments.advise.choose` — the one answer, its rule and its ``batchlab train`` command;
* :mod:`~batchlab.experiments.advise.experiment` — the plan per scale and :func:`run_advise`;
* :mod:`~batchlab.experiments.advise.plots` and :mod:`~batchlab.experiments.advise.report` — figures and the
  report section.

Example::

    import batchlab
    result = batchlab.advise(batchlab.RunConfig(dataset="mnist-5k", model="mlp"), scale="quick",
                             store="batchlab-runs/runs.db")
    print(result.recommendation["command"])   # batchlab train … with the advised B, η and λ

    # your own model: task = batchlab.Task(make_model, data); batchlab.advise(task=task, target="val_acc=0.8")
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchlab.config import RunConfig
from batchlab.experiments.advise.experiment import (
    RECORD_KIND,
    AdvisePlan,
    AdviseResult,
    TargetNotReachedError,
    plan_advise,
    run_advise,
)
from batchlab.experiments.advise.fit import TradeoffFit, fit_tradeoff
from batchlab.experiments.advise.report import advise_figures, advise_section, advise_text
from batchlab.experiments.advise.target import Target, parse_target
from batchlab.experiments.shape import ORDER_SUMMARY, Experiment, Section, register_experiment

if TYPE_CHECKING:
    from batchlab.store import RunStore
    from batchlab.task import Task


EXPERIMENT = register_experiment(Experiment(
    kind=RECORD_KIND,
    title="Which batch size: steps, examples and time to a target",
    plan=plan_advise,
    run=run_advise,
    json_name="advise.json",
    figures=advise_figures,
    text=advise_text,
    sections=(Section("advise", ORDER_SUMMARY + 5, advise_section),),
))


def advise(template: RunConfig | None = None, *, scale: str = "quick", store: "RunStore | str | None" = None, splits: Any = None,
           task: "Task | None" = None, **overrides: Any) -> AdviseResult:
    """Plan (``overrides``: see :func:`plan_advise`) and run ``advise`` for ``template``.

    ``store``: a :class:`batchlab.RunStore`, a path to one, or None (nothing kept or reused).
    ``splits``: the data to train on (default: the template's registry data).
    ``task``: a user's :class:`batchlab.Task` (its model, data, loss and metric) instead of the
    registry's model and data; the recommendation's command is then a ``batchlab.train`` call.
    """
    plan = plan_advise(scale, template, task=task, **overrides)
    if isinstance(store, (str, Path)):
        from batchlab.store import RunStore

        with RunStore(store) as opened:
            return run_advise(plan, opened, splits=splits, task=task)
    return run_advise(plan, store, splits=splits, task=task)


__all__ = ["EXPERIMENT", "AdvisePlan", "AdviseResult", "Target", "TargetNotReachedError", "TradeoffFit", "advise",
           "fit_tradeoff", "parse_target", "plan_advise", "run_advise"]
