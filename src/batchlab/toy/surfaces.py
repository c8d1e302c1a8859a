"""Small error surfaces on which the lecture's picture of momentum can be watched step by step.

The lecture ("Batch and Momentum", Hung-yi Lee) draws the loss as a landscape and the parameters
as a ball: plain gradient descent stops wherever the gradient vanishes -- at a saddle point or in
the first small local minimum -- while a ball with momentum can roll on. Each surface here is a
closed-form function of one or two parameters with analytic gradient and Hessian (numpy float64),
its critical points located and classified by the Hessian's eigenvalues (all positive: minimum;
all negative: maximum; mixed signs: saddle), a default start point and a learning rate at which the
lecture's experiment is run, and a plotting domain.

Surfaces, by registry name:

``ball``
    1-D, the lecture's drawing: a slope, a flat stretch, a shallow local minimum behind a small
    hill, then a deeper global minimum and a wall.
``saddle``
    2-D, ``f = a x^2 - b y^2 + (b/2) y^4``: a saddle at the origin between two minima at
    ``y = +-1``; the x-axis is the saddle's stable manifold.
``valley``
    2-D ill-conditioned quadratic, a long narrow valley whose curvatures differ by the factor
    ``condition``.
``two-minima``
    2-D curved valley with a shallow minimum near the start and a deeper one behind a saddle.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

from batchlab.errors import ConfigError

MINIMUM = "minimum"
MAXIMUM = "maximum"
SADDLE = "saddle"

# Hessian eigenvalues closer to zero than this are treated as zero when a point is classified;
# every critical point of the built-in surfaces is far from that degenerate case.
_EIGENVALUE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class CriticalPoint:
    """A point where the gradient vanishes, with its loss and what the Hessian says it is.

    ``kind`` is ``"minimum"`` (all Hessian eigenvalues positive), ``"maximum"`` (all negative) or
    ``"saddle"`` (mixed signs); ``name`` is how tables and trajectories refer to it.
    """

    name: str
    kind: str
    point: tuple[float, ...]
    loss: float
    hessian_eigenvalues: tuple[float, ...]

    @property
    def position(self) -> np.ndarray:
        return np.asarray(self.point, dtype=np.float64)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "point": list(self.point),
            "loss": self.loss,
            "hessian_eigenvalues": list(self.hessian_eigenvalues),
        }


def classify(eigenvalues: np.ndarray) -> str:
    """Minimum, maximum or saddle from the Hessian's eigenvalues (the lecture's rule)."""
    if np.all(eigenvalues > _EIGENVALUE_TOLERANCE):
        return MINIMUM
    if np.all(eigenvalues < -_EIGENVALUE_TOLERANCE):
        return MAXIMUM
    if np.any(eigenvalues > _EIGENVALUE_TOLERANCE) and np.any(eigenvalues < -_EIGENVALUE_TOLERANCE):
        return SADDLE
    raise ValueError(f"degenerate critical point, Hessian eigenvalues {eigenvalues}")


class Surface(ABC):
    """An error surface ``L(theta)`` with analytic derivatives.

    Subclasses set ``name``, ``title``, ``formula``, ``dim``, ``start`` (the default start point),
    ``lr`` (the learning rate eta of the lecture experiment on this surface) and ``domain`` (one
    ``(low, high)`` range per coordinate, used for plots), and implement :meth:`values`,
    :meth:`grad`, :meth:`hessian` and :meth:`_locate_critical_points`.
    """

    name: str
    title: str
    formula: str
    dim: int
    start: tuple[float, ...]
    lr: float
    domain: tuple[tuple[float, float], ...]

    @abstractmethod
    def values(self, coords: np.ndarray) -> np.ndarray:
        """Vectorized loss: ``coords`` has shape ``(dim, ...)``; the result has shape ``(...)``."""

    @abstractmethod
    def grad(self, theta: np.ndarray) -> np.ndarray:
        """Analytic gradient at one point, shape ``(dim,)``."""

    @abstractmethod
    def hessian(self, theta: np.ndarray) -> np.ndarray:
        """Analytic Hessian at one point, shape ``(dim, dim)``."""

    @abstractmethod
    def _locate_critical_points(self) -> list[tuple[str, np.ndarray]]:
        """(name, point) for every critical point, each accurate to machine precision."""

    def loss(self, theta: np.ndarray) -> float:
        return float(self.values(np.asarray(theta, dtype=np.float64).reshape(self.dim)))

    @cached_property
    def critical_points(self) -> tuple[CriticalPoint, ...]:
        """All critical points, ordered by loss, each classified by its Hessian's eigenvalues."""
        found = []
        for name, point in self._locate_critical_points():
            eigenvalues = np.linalg.eigvalsh(self.hessian(point))
            found.append(
                CriticalPoint(
                    name=name,
                    kind=classify(eigenvalues),
                    point=tuple(float(v) for v in point),
                    loss=self.loss(point),
                    hessian_eigenvalues=tuple(float(v) for v in eigenvalues),
                )
            )
        return tuple(sorted(found, key=lambda c: c.loss))

    @property
    def minima(self) -> tuple[CriticalPoint, ...]:
        return tuple(c for c in self.critical_points if c.kind == MINIMUM)

    @property
    def saddles(self) -> tuple[CriticalPoint, ...]:
        return tuple(c for c in self.critical_points if c.kind == SADDLE)

    @property
    def global_minimum(self) -> CriticalPoint:
        return self.minima[0]

    def critical_point(self, name: str) -> CriticalPoint:
        for point in self.critical_points:
            if point.name == name:
                return point
        raise KeyError(f"{self.name} has no critical point named {name!r}")

    def nearest_critical_point(self, theta: np.ndarray) -> CriticalPoint:
        theta = np.asarray(theta, dtype=np.float64)
        return min(self.critical_points, key=lambda c: float(np.linalg.norm(theta - c.position)))

    def describe(self) -> dict:
        """JSON-ready description: formula, start, learning rate, critical points."""
        return {
            "name": self.name,
            "title": self.title,
            "formula": self.formula,
            "dim": self.dim,
            "start": list(self.start),
            "lr": self.lr,
            "domain": [list(r) for r in self.domain],
            "critical_points": [c.to_dict() for c in self.critical_points],
        }


def _roots_1d(function: Callable[[float], float], low: float, high: float, samples: int = 20001) -> list[float]:
    """Every sign change of ``function`` on ``[low, high]``, refined by Brent's method.

    Roots where the function touches zero without changing sign would be missed; the surfaces
    below are built so that every critical point is a simple root of the derivative.
    """
    grid = np.linspace(low, high, samples)
    signs = np.sign([function(x) for x in grid])
    roots = []
    for i in np.nonzero(signs[:-1] * signs[1:] < 0)[0]:
        roots.append(brentq(function, grid[i], grid[i + 1], xtol=1e-15, rtol=4 * np.finfo(float).eps))
    return roots


def _softplus(u: np.ndarray) -> np.ndarray:
    """log(1 + e^u), computed without overflow."""
    return np.logaddexp(0.0, u)


@dataclass(frozen=True)
class BallSurface(Surface):
    """The lecture's 1-D drawing of a ball rolling down an error surface.

    ``f(x) = k_l w softplus((a - x)/w) + k_r w softplus((x - r)/w)
             - d_1 exp(-(x - m_1)^2 / (2 s_1^2)) - d_2 exp(-(x - m_2)^2 / (2 s_2^2))``

    Read left to right: a slope of gradient ``-k_l`` that bends at the knee ``a`` into a flat
    stretch (the softplus flattens within a few ``w``), a shallow dip of depth ``d_1`` at ``m_1``
    (the small local minimum), a low hill, a deeper dip of depth ``d_2`` at ``m_2`` (the global
    minimum) and a wall of slope ``k_r`` beyond ``r``. Because every term has bounded slope, a
    fast ball is turned back by the wall instead of flying off to infinity.

    With the defaults, start ``x = -2.5`` and ``eta = 0.05``: gradient descent crawls across the
    flat stretch and stops in the shallow minimum; momentum ``lambda >= 0.8`` rolls over the hill
    into the global minimum; ``lambda <= 0.75`` does not. At very large ``lambda`` the ball
    overshoots, swings between the wall and the hill for hundreds of steps, and where it comes to
    rest depends sensitively on ``lambda`` (0.95 ends in the shallow minimum again). See
    :mod:`batchlab.toy.experiments` for the measured table.
    """

    knee: float = -1.6
    slope_left: float = 5.0
    knee_width: float = 0.1
    shallow_center: float = 0.0
    shallow_depth: float = 0.5
    shallow_width: float = 0.3
    deep_center: float = 1.8
    deep_depth: float = 1.5
    deep_width: float = 0.5
    wall: float = 3.2
    slope_right: float = 2.0

    name = "ball"
    title = "1-D ball: slope, flat stretch, shallow minimum, hill, global minimum"
    formula = (
        "f(x) = k_l w softplus((a - x)/w) + k_r w softplus((x - r)/w) "
        "- d_1 exp(-(x - m_1)^2/(2 s_1^2)) - d_2 exp(-(x - m_2)^2/(2 s_2^2))"
    )
    dim = 1
    start = (-2.5,)
    lr = 0.05
    domain = ((-2.7, 4.3),)

    def _dips(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shallow = self.shallow_depth * np.exp(-((x - self.shallow_center) ** 2) / (2 * self.shallow_width**2))
        deep = self.deep_depth * np.exp(-((x - self.deep_center) ** 2) / (2 * self.deep_width**2))
        return shallow, deep

    def values(self, coords: np.ndarray) -> np.ndarray:
        x = np.asarray(coords, dtype=np.float64)[0]
        w = self.knee_width
        shallow, deep = self._dips(x)
        return (
            self.slope_left * w * _softplus((self.knee - x) / w)
            + self.slope_right * w * _softplus((x - self.wall) / w)
            - shallow
            - deep
        )

    def _derivative(self, x: float) -> float:
        w = self.knee_width
        shallow, deep = self._dips(x)
        return float(
            -self.slope_left * expit((self.knee - x) / w)
            + self.slope_right * expit((x - self.wall) / w)
            + shallow * (x - self.shallow_center) / self.shallow_width**2
            + deep * (x - self.deep_center) / self.deep_width**2
        )

    def grad(self, theta: np.ndarray) -> np.ndarray:
        return np.array([self._derivative(float(np.asarray(theta).reshape(1)[0]))])

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        x = float(np.asarray(theta).reshape(1)[0])
        w = self.knee_width
        left = expit((self.knee - x) / w)
        right = expit((x - self.wall) / w)
        shallow, deep = self._dips(x)
        s1, s2 = self.shallow_width**2, self.deep_width**2
        second = (
            self.slope_left * left * (1 - left) / w
            + self.slope_right * right * (1 - right) / w
            + shallow * (1 / s1 - (x - self.shallow_center) ** 2 / s1**2)
            + deep * (1 / s2 - (x - self.deep_center) ** 2 / s2**2)
        )
        return np.array([[second]])

    def _locate_critical_points(self) -> list[tuple[str, np.ndarray]]:
        # Far left f' -> -k_l, far right f' -> +k_r: every root lies well inside this interval.
        roots = _roots_1d(self._derivative, self.knee - 10 * self.knee_width - 5.0, self.wall + 5.0)
        named = []
        minima = [x for x in roots if self.hessian(np.array([x]))[0, 0] > 0]
        deepest = min(minima, key=lambda x: self.loss(np.array([x])))
        for x in roots:
            if x not in minima:
                name = "hilltop"
            elif x == deepest:
                name = "global minimum"
            else:
                name = "shallow minimum"
            named.append((name, np.array([x])))
        return named


@dataclass(frozen=True)
class SaddleSurface(Surface):
    """A saddle point between two minima: ``f(x, y) = a x^2 - b y^2 + (b/2) y^4``.

    Gradient ``(2 a x, -2 b y + 2 b y^3)``; critical points: the saddle ``(0, 0)`` with Hessian
    ``diag(2a, -2b)`` and two minima ``(0, +-1)`` with loss ``-b/2`` and Hessian ``diag(2a, 4b)``.
    On the x-axis (``y = 0``) the gradient has no y-component, so any method that only follows
    gradients -- with or without momentum -- slides to the saddle and stays (the stable manifold).
    Near the saddle a small ``y`` grows per step by ``1 + 2 b eta`` under gradient descent and by the
    larger root of ``z^2 - (1 + lambda + 2 b eta) z + lambda = 0`` under the lecture's momentum
    (for ``eta = 0.05, b = 1``: 1.10 vs 1.17 at ``lambda = 0.5`` and 1.32 at ``lambda = 0.9``).
    """

    a: float = 1.0
    b: float = 1.0

    name = "saddle"
    title = "2-D saddle point between two minima"
    formula = "f(x, y) = a x^2 - b y^2 + (b/2) y^4"
    dim = 2
    start = (1.5, 0.0)
    lr = 0.05
    domain = ((-1.8, 1.8), (-1.6, 1.6))

    def values(self, coords: np.ndarray) -> np.ndarray:
        x, y = np.asarray(coords, dtype=np.float64)
        return self.a * x**2 - self.b * y**2 + 0.5 * self.b * y**4

    def grad(self, theta: np.ndarray) -> np.ndarray:
        x, y = np.asarray(theta, dtype=np.float64)
        return np.array([2 * self.a * x, -2 * self.b * y + 2 * self.b * y**3])

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        _, y = np.asarray(theta, dtype=np.float64)
        return np.array([[2 * self.a, 0.0], [0.0, -2 * self.b + 6 * self.b * y**2]])

    def _locate_critical_points(self) -> list[tuple[str, np.ndarray]]:
        return [
            ("saddle", np.array([0.0, 0.0])),
            ("minimum y>0", np.array([0.0, 1.0])),
            ("minimum y<0", np.array([0.0, -1.0])),
        ]


@dataclass(frozen=True)
class ValleySurface(Surface):
    """An ill-conditioned quadratic valley: ``f(theta) = 1/2 (theta - c)^T A (theta - c)``.

    ``A = R(phi) diag(1, condition) R(phi)^T`` -- a long valley tilted by ``phi`` degrees, its
    across-valley curvature ``condition`` times its along-valley curvature. One minimum, at ``c``.
    On a quadratic each eigen-direction ``h`` of ``A`` evolves independently: gradient descent
    shrinks it by ``|1 - eta h|`` per step, the lecture's momentum by the larger root modulus of
    ``z^2 - (1 + lambda - eta h) z + lambda = 0`` (``sqrt(lambda)`` when the roots are complex). With
    ``condition = 100`` and ``eta = 0.018``: GD 0.982 along the valley (and a zig-zag, factor -0.8,
    across it); ``lambda = 0.9``: 0.949; ``lambda = 0.99``: 0.995 -- faster, then slower than GD.
    """

    condition: float = 100.0
    angle_degrees: float = 30.0
    center: tuple[float, float] = (0.0, 0.0)

    name = "valley"
    title = "2-D ill-conditioned valley (condition number 100)"
    formula = "f(theta) = 1/2 (theta - c)^T R diag(1, condition) R^T (theta - c)"
    dim = 2
    # About 4.4 along the valley and 0.44 across it from the minimum: both directions matter.
    start = (-4.0, -1.8)
    lr = 0.018
    domain = ((-4.6, 1.2), (-2.8, 1.0))

    @cached_property
    def matrix(self) -> np.ndarray:
        phi = math.radians(self.angle_degrees)
        rotation = np.array([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])
        matrix = rotation @ np.diag([1.0, self.condition]) @ rotation.T
        return 0.5 * (matrix + matrix.T)  # exactly symmetric despite round-off in the product

    def values(self, coords: np.ndarray) -> np.ndarray:
        coords = np.asarray(coords, dtype=np.float64)
        shifted = coords - np.asarray(self.center).reshape((2,) + (1,) * (coords.ndim - 1))
        return 0.5 * np.einsum("i...,ij,j...->...", shifted, self.matrix, shifted)

    def grad(self, theta: np.ndarray) -> np.ndarray:
        return self.matrix @ (np.asarray(theta, dtype=np.float64) - np.asarray(self.center))

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        return self.matrix.copy()

    def _locate_critical_points(self) -> list[tuple[str, np.ndarray]]:
        return [("minimum", np.asarray(self.center, dtype=np.float64))]


@dataclass(frozen=True)
class TwoMinimaSurface(Surface):
    """Two minima of different depth along a curved valley.

    ``f(x, y) = (h/4)(x^2 - 1)^2 + t x + (b/2)(y - c x^2)^2``

    The first two terms are a tilted double well in ``x`` (the tilt ``t > 0`` makes the left well
    deeper); the last keeps ``y`` near the parabola ``y = c x^2``, so the path to either minimum
    curves. Critical points: ``y = c x^2`` with ``h x^3 - h x + t = 0`` -- the shallow minimum on
    the right (near the start), a saddle between, the deep minimum on the left.
    """

    height: float = 2.0
    tilt: float = 0.4
    stiffness: float = 5.0
    curvature: float = 0.3

    name = "two-minima"
    title = "2-D shallow minimum near the start, deeper minimum behind a saddle"
    formula = "f(x, y) = (h/4)(x^2 - 1)^2 + t x + (b/2)(y - c x^2)^2"
    dim = 2
    start = (1.8, 0.0)
    lr = 0.05
    domain = ((-2.0, 2.2), (-0.9, 1.6))

    def values(self, coords: np.ndarray) -> np.ndarray:
        x, y = np.asarray(coords, dtype=np.float64)
        return (
            0.25 * self.height * (x**2 - 1) ** 2
            + self.tilt * x
            + 0.5 * self.stiffness * (y - self.curvature * x**2) ** 2
        )

    def grad(self, theta: np.ndarray) -> np.ndarray:
        x, y = np.asarray(theta, dtype=np.float64)
        off_valley = y - self.curvature * x**2
        return np.array(
            [
                self.height * x * (x**2 - 1) + self.tilt - 2 * self.stiffness * self.curvature * x * off_valley,
                self.stiffness * off_valley,
            ]
        )

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        x, y = np.asarray(theta, dtype=np.float64)
        b, c = self.stiffness, self.curvature
        off_valley = y - c * x**2
        xx = self.height * (3 * x**2 - 1) - 2 * b * c * off_valley + 4 * b * c**2 * x**2
        xy = -2 * b * c * x
        return np.array([[xx, xy], [xy, b]])

    def _locate_critical_points(self) -> list[tuple[str, np.ndarray]]:
        def along_valley(x: float) -> float:
            return self.height * x * (x**2 - 1) + self.tilt

        # The cubic's roots lie within [-2, 2] for any tilt below the well height; three of them
        # (two minima and a saddle) exist while |t| < 2h / (3 sqrt 3).
        roots = sorted(_roots_1d(along_valley, -3.0, 3.0))
        if len(roots) != 3:
            limit = 2 * self.height / (3 * math.sqrt(3))
            raise ConfigError(f"two-minima surface needs |tilt| < {limit:.3f} for two minima; got {self.tilt}")
        deep, saddle, shallow = (np.array([x, self.curvature * x**2]) for x in roots)
        return [("deep minimum", deep), ("saddle", saddle), ("shallow minimum", shallow)]


SURFACES: dict[str, Callable[[], Surface]] = {
    BallSurface.name: BallSurface,
    SaddleSurface.name: SaddleSurface,
    ValleySurface.name: ValleySurface,
    TwoMinimaSurface.name: TwoMinimaSurface,
}


def surface_names() -> tuple[str, ...]:
    return tuple(SURFACES)


def get_surface(name: str) -> Surface:
    """The surface registered under ``name``; an unknown name is a :class:`ConfigError`."""
    try:
        return SURFACES[name]()
    except KeyError:
        raise ConfigError(f"unknown surface {name!r}; known: {', '.join(SURFACES)}") from None
