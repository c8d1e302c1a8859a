"""Gradient descent with the lecture's momentum, run on a toy error surface, step by step.

The update is exactly the lecture's (Hung-yi Lee, "Batch and Momentum"; Sutskever form), applied by
:func:`batchlab.optim.functional.momentum_update`::

    m_0 = 0
    m_t = lambda * m_{t-1} - eta * g_{t-1},      g_{t-1} = grad L(theta_{t-1}) (+ noise)
    theta_t = theta_{t-1} + m_t

so ``m_t = -eta * (g_{t-1} + lambda g_{t-2} + lambda^2 g_{t-3} + ...)`` is the decayed sum of all
past gradients, and ``lambda = 0`` is plain gradient descent ``theta_t = theta_{t-1} - eta g_{t-1}``.

Mini-batches (``batch_size``): the surface's twelve examples (:mod:`batchlab.toy.examples`), each with
its own loss; step ``t`` uses the gradient of the batch surface ``L^b``, the batches drawn epoch by
epoch in a reproducible order from the seed (the same order the browser playground draws).
``batch_size = N`` is full-batch gradient descent, bit for bit. Optional Gaussian gradient noise
(independent ``N(0, noise_std^2)`` per coordinate and step, from a seeded ``numpy.random.Generator``)
is added on top when asked for.

A run stops when the true gradient and the step are both small (``|grad L(theta_t)| < stop_tol``
and ``|m_t| < stop_tol``: the ball has come to rest), when ``steps`` updates are done, or when the
parameters leave every sensible range (non-finite or ``|theta| > divergence_bound``): divergence is
recorded as a result, not raised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from batchlab.errors import ConfigError
from batchlab.toy.examples import ExampleSet, examples_for
from batchlab.optim.functional import momentum_update
from batchlab.store.status import DIVERGED
from batchlab.toy.surfaces import CriticalPoint, Surface

DEFAULT_STEPS = 5000
DEFAULT_STOP_TOL = 1e-6
DEFAULT_DIVERGENCE_BOUND = 1e6


@dataclass(frozen=True)
class Trajectory:
    """One optimizer run on one surface.

    ``points[t]`` is ``theta_t`` (``points[0]`` the start), ``losses[t] = L(theta_t)``, and
    ``gradients[t]`` the gradient the update ``t + 1`` used (noise included), so
    ``points[t + 1] - points[t]`` is the momentum ``m_{t+1}``. ``ended_at`` is the name of the
    surface's critical point nearest to the final point (``"diverged"`` after a divergence);
    ``converged`` says whether the run came to rest before running out of steps. Mini-batch runs
    have ``batch_size`` set and ``batches[t]``, the example indices update ``t + 1`` used.
    """

    surface: str
    lr: float
    momentum: float
    noise_std: float
    seed: int
    points: np.ndarray
    losses: np.ndarray
    gradients: np.ndarray
    converged: bool
    diverged: bool
    ended_at: str
    batch_size: int | None = None
    batches: np.ndarray | None = None

    @property
    def steps(self) -> int:
        """Updates taken until the run stopped."""
        return len(self.points) - 1

    @property
    def start(self) -> np.ndarray:
        return self.points[0]

    @property
    def final_point(self) -> np.ndarray:
        return self.points[-1]

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1])

    @property
    def label(self) -> str:
        """'GD' for lambda = 0, else 'momentum lambda=...'; noise appended when present."""
        text = "GD" if self.momentum == 0 else f"momentum λ={self.momentum:g}"
        text += f", batch B={self.batch_size}" if self.batch_size is not None else ""
        return text + (f", noise σ={self.noise_std:g}" if self.noise_std > 0 else "")


def validate_settings(lr: float, momentum: float, steps: int, noise_std: float) -> None:
    """Raise :class:`ConfigError` (one line) for values outside what the update rule allows."""
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"learning rate must be a finite number > 0; got {lr}")
    if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
        raise ConfigError(f"momentum λ must be in [0, 1); got {momentum}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"steps must be an integer >= 1; got {steps}")
    if not (isinstance(noise_std, (int, float)) and math.isfinite(noise_std) and noise_std >= 0):
        raise ConfigError(f"gradient noise must be a finite number >= 0; got {noise_std}")


def run_trajectory(
    surface: Surface,
    start: np.ndarray | tuple[float, ...] | None = None,
    lr: float | None = None,
    momentum: float = 0.0,
    steps: int = DEFAULT_STEPS,
    noise_std: float = 0.0,
    seed: int = 0,
    stop_tol: float = DEFAULT_STOP_TOL,
    divergence_bound: float = DEFAULT_DIVERGENCE_BOUND,
    batch_size: int | None = None,
    examples: ExampleSet | None = None,
) -> Trajectory:
    """Run the lecture's momentum rule on ``surface`` and record every step.

    ``start`` defaults to ``surface.start`` and ``lr`` (eta) to ``surface.lr``; ``momentum`` is
    lambda (0 gives plain gradient descent); at most ``steps`` updates. ``batch_size`` (default: the
    true gradient) runs mini-batch SGD on ``examples`` (default :func:`examples_for` the surface),
    the batch order drawn from ``seed``. Same arguments and seed give the same trajectory, bit for bit.
    """
    lr = surface.lr if lr is None else lr
    validate_settings(lr, momentum, steps, noise_std)
    theta = np.array(surface.start if start is None else start, dtype=np.float64).reshape(surface.dim)
    rng = np.random.default_rng(seed)
    batch_stream = None
    if batch_size is not None:
        examples = examples_for(surface) if examples is None else examples
        batch_stream = examples.batches(batch_size, seed)  # checks batch size and seed before any step

    points = [theta.copy()]
    used_gradients = []
    used_batches = []
    velocity = np.zeros(surface.dim)  # m_0 = 0
    gradient = surface.grad(theta)
    converged = bool(np.linalg.norm(gradient) < stop_tol)  # started at rest on a critical point
    diverged = False
    # Overflow on the way to divergence is expected; it is detected below and reported.
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(0 if converged else steps):
            if batch_stream is not None:
                used_batches.append(next(batch_stream))
                gradient = gradient + examples.batch_tilt(used_batches[-1])
            if noise_std > 0:
                gradient = gradient + noise_std * rng.standard_normal(surface.dim)
            used_gradients.append(gradient)
            theta, velocity = momentum_update(theta, velocity, gradient, lr=lr, momentum=momentum)
            points.append(theta.copy())
            if not np.all(np.isfinite(theta)) or np.linalg.norm(theta) > divergence_bound:
                diverged = True
                break
            gradient = surface.grad(theta)
            if np.linalg.norm(gradient) < stop_tol and np.linalg.norm(velocity) < stop_tol:
                converged = True
                break
        path = np.array(points)
        losses = np.asarray(surface.values(path.T), dtype=np.float64)

    return Trajectory(
        surface=surface.name,
        lr=float(lr),
        momentum=float(momentum),
        noise_std=float(noise_std),
        seed=int(seed),
        points=path,
        losses=losses,
        gradients=np.array(used_gradients).reshape(-1, surface.dim),
        converged=converged,
        diverged=diverged,
        ended_at=DIVERGED if diverged else surface.nearest_critical_point(path[-1]).name,
        batch_size=None if batch_size is None else int(batch_size),
        batches=None if batch_stream is None else np.array(used_batches, dtype=np.intp).reshape(-1, batch_size),
    )


def unstable_directions(saddle: CriticalPoint, surface: Surface) -> np.ndarray:
    """Orthonormal eigenvectors (columns) of the Hessian's negative eigenvalues at ``saddle``:
    the directions in which moving away from the saddle lowers the loss."""
    eigenvalues, eigenvectors = np.linalg.eigh(surface.hessian(saddle.position))
    return eigenvectors[:, eigenvalues < 0]


def escape_step(trajectory: Trajectory, surface: Surface, saddle: CriticalPoint, radius: float) -> int | None:
    """First step ``t`` at which ``theta_t`` is farther than ``radius`` from ``saddle`` along the
    saddle's unstable directions (the loss-lowering eigenvectors of its Hessian), or ``None`` if
    the trajectory never gets that far. Distance along stable directions does not count, so a run
    that starts far out on the stable manifold has not 'escaped' until it leaves that manifold."""
    directions = unstable_directions(saddle, surface)
    offsets = (trajectory.points - saddle.position) @ directions
    beyond = np.nonzero(np.linalg.norm(offsets, axis=1) > radius)[0]
    return int(beyond[0]) if beyond.size else None
