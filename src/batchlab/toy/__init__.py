"""Momentum on small error surfaces: the lecture's rolling ball, run and measured.

* :mod:`batchlab.toy.surfaces` -- 1-D and 2-D surfaces with analytic gradients, Hessians and
  classified critical points (registry: ``ball``, ``saddle``, ``valley``, ``two-minima``).
* :mod:`batchlab.toy.trajectory` -- :func:`run_trajectory`, the lecture's update
  ``m <- lambda m - eta g; theta <- theta + m`` with optional gradient noise.
* :mod:`batchlab.toy.examples` -- :func:`examples_for`, twelve examples per surface, each with its own
  loss, for real mini-batch noise (``run_trajectory(..., batch_size=B, seed=s)``).
* :mod:`batchlab.toy.prng` -- :class:`Mulberry32`, the batch order's generator, identical in the
  browser playground.
* :mod:`batchlab.toy.experiments` -- :func:`lecture_toy_experiments`, the lecture's claims checked.
* :mod:`batchlab.toy.plots` -- figures (imported on demand, so the rest needs no matplotlib).

Example::

    from batchlab.toy import lecture_toy_experiments
    from batchlab.toy.plots import toy_figures
    report = lecture_toy_experiments(surfaces=["ball"])
    for finding in report.findings:
        print(finding.holds, finding.claim)
    toy_figures(report)["toy-ball"].savefig("ball.png")
"""

from batchlab.toy.examples import ExampleSet, examples_for
from batchlab.toy.experiments import ClaimCheck, SurfaceStudy, ToyReport, ToyRun, lecture_toy_experiments
from batchlab.toy.prng import Mulberry32
from batchlab.toy.surfaces import SURFACES, CriticalPoint, Surface, get_surface, surface_names
from batchlab.toy.trajectory import Trajectory, escape_step, run_trajectory

__all__ = [
    "SURFACES",
    "ClaimCheck",
    "CriticalPoint",
    "ExampleSet",
    "Mulberry32",
    "Surface",
    "SurfaceStudy",
    "ToyReport",
    "ToyRun",
    "Trajectory",
    "escape_step",
    "examples_for",
    "get_surface",
    "lecture_toy_experiments",
    "run_trajectory",
    "surface_names",
]
