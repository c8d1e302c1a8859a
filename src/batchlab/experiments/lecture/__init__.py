"""The lecture's experiments, run into a run store for ``batchlab lecture`` and its report.

* :mod:`~batchlab.experiments.lecture.scales` — what each scale (``quick``, ``full``) trains, times and measures;
* :mod:`~batchlab.experiments.lecture.stages` — :func:`run_lecture`: timing, the accuracy sweep, gradient
  noise near a critical point, flat vs sharp minima (a small and a large batch at equal training
  accuracy) and the toy momentum experiments, each reusing what the store holds.

The report (:mod:`batchlab.report`) only reads what these stages stored.

Example::

    from batchlab.store import RunStore
    from batchlab.experiments.lecture import get_scale, run_lecture
    with RunStore("batchlab-runs/runs.db") as store:
        run_lecture(store, get_scale("quick"))
"""

from batchlab.experiments.lecture.scales import (
    SCALES,
    AccuracyStudy,
    LectureScale,
    SharpMinimaStudy,
    available_studies,
    critical_point_config,
    get_scale,
    study_configs,
    with_seeds,
)
from batchlab.experiments.lecture.stages import run_lecture
from batchlab.experiments.shape import Experiment, register_experiment
from batchlab.report.context import LECTURE_KIND

# The lecture's sections (timing, accuracy, noise, summary, momentum) are the report's own
# (batchlab.report.sections); its flat-vs-sharp comparison is a gap record, shown by the gap's section.
EXPERIMENT = register_experiment(Experiment(
    kind=LECTURE_KIND,
    title="The lecture's experiments, measured here",
    scales=tuple(SCALES),
    plan=get_scale,
    run=lambda plan, store, **options: run_lecture(store, plan, **options),
))

__all__ = [
    "EXPERIMENT",
    "SCALES",
    "AccuracyStudy",
    "LectureScale",
    "SharpMinimaStudy",
    "available_studies",
    "critical_point_config",
    "get_scale",
    "run_lecture",
    "study_configs",
    "with_seeds",
]
