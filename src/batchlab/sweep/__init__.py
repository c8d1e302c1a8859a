"""Sweeps: grids of runs over batch size × momentum × learning rate × seed × optimizer.

::

    from batchlab.sweep import SweepSpec, run_sweep
    spec = SweepSpec(grid={"batch_size": [16, 256, "full"], "momentum": [0.0, 0.9], "seed": [0, 1, 2]},
                     fixed={"dataset": "mnist-5k", "epochs": 3})
    results = run_sweep(spec, "batchlab-runs/runs.db")
    df = results.to_pandas()

Modules: :mod:`~batchlab.sweep.spec` (the grid, TOML files, upfront validation),
:mod:`~batchlab.sweep.plan` (skip, resume, packs), :mod:`~batchlab.sweep.local_executor` and
:mod:`~batchlab.sweep.ray_executor` (who trains), :mod:`~batchlab.sweep.run` (``run_sweep``),
:mod:`~batchlab.sweep.results` (``Results``), :mod:`~batchlab.sweep.progress` and
:mod:`~batchlab.sweep.summary` (what is printed).
"""

from batchlab.sweep.plan import EXECUTORS, SweepPlan, WorkUnit, plan_sweep
from batchlab.sweep.results import Results
from batchlab.sweep.run import plan_only, run_sweep
from batchlab.sweep.spec import LR_SCALING_RULES, SweepSpec

__all__ = [
    "EXECUTORS",
    "LR_SCALING_RULES",
    "Results",
    "SweepPlan",
    "SweepSpec",
    "WorkUnit",
    "plan_only",
    "plan_sweep",
    "run_sweep",
]
