"""Momentum on small error surfaces: the lecture's rolling ball, run and measured.

* :mod:`batchlab.toy.surfaces` -- 1-D and 2-D surfaces with analytic gradients, Hessians and
  classified critical points (registry: ``ball``, ``saddle``, ``valley``, ``two-minima``).
* :mod:`batchlab.toy.trajectory` -- :func:`run_trajectory`, the lecture's update
  ``m <- lambda m - eta g; theta <- theta + m`` with optional gradient noise.
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

from batchlab.toy.experiments import ClaimCheck, SurfaceStudy, ToyReport, ToyRun, lecture_toy_experiments
from batchlab.toy.surfaces import SURFACES, CriticalPoint, Surface, get_surface, surface_names
from batchlab.toy.trajectory import Trajectory, escape_step, run_trajectory

__all__ = [
    "SURFACES",
    "ClaimCheck",
    "CriticalPoint",
    "Surface",
    "SurfaceStudy",
    "ToyReport",
    "ToyRun",
    "Trajectory",
    "escape_step",
    "get_surface",
    "lecture_toy_experiments",
    "run_trajectory",
    "surface_names",
]
