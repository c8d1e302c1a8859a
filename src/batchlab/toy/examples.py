"""A small dataset on each toy surface: N examples, each with its own loss, and mini-batches of them.

The lecture's picture of mini-batch noise: the loss is an average over examples, ``L = (1/N) Σ ℓ_i``,
and a batch ``b`` of ``B`` examples sees its own surface ``L^b = (1/B) Σ_{i∈b} ℓ_i`` -- where
``L^1`` is flat, ``L^2`` may not be, so a run that would stop at a critical point of ``L`` keeps
moving. Here example ``i`` of a surface has the loss

    ℓ_i(θ) = L(θ) + z_i · θ

with a fixed tilt ``z_i`` per example and ``Σ_i z_i = 0``, so the examples average exactly to the
surface ``L``, a batch's gradient is ``∇L(θ) + mean_{i∈b} z_i``, ``B = N`` is full-batch gradient
descent and a smaller ``B`` gives the noise of sampling a batch (no random numbers are added to
gradients; the only randomness is which examples form a batch).

Every tilt is a small integer times a power of two, so every sum of tilts is exact in float64:
the full batch's mean tilt is exactly zero (full-batch runs equal :func:`run_trajectory` without
batches, bit for bit) and a batch's mean is the same in any summation order and in any language,
which lets the browser playground reproduce Python's mini-batch runs.

Batches (:meth:`ExampleSet.batches`): every epoch the examples are shuffled by a
:class:`~batchlab.toy.prng.Mulberry32` permutation and cut into ``N // B`` batches of ``B``; when ``B``
does not divide ``N``, the ``N mod B`` examples left over are skipped for that epoch (every step
uses exactly ``B`` examples, as the lecture's figures assume).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from batchlab.errors import ConfigError
from batchlab.toy.prng import Mulberry32
from batchlab.toy.surfaces import Surface

# Twelve examples; each column sums to zero. N = 12 has many divisors (1, 2, 3, 4, 6, 12), so
# most batch sizes use every example every epoch.
_TILTS_1D = ((3,), (-1,), (4,), (-3,), (2,), (-4,), (1,), (-2,), (0,), (3,), (-1,), (-2,))
_TILTS_2D = ((3, -1), (-2, 4), (1, 2), (-4, -3), (2, -2), (0, 3), (-3, 1), (2, -4), (-1, -2), (4, 3), (-2, 2),
             (0, -3))
# Tilt unit per surface (a power of two, so sums stay exact): about a tenth of the gradients a run
# meets, enough for B = 1 to wander visibly and to leave the saddle, small enough that the batch
# surfaces keep the shape of L.
TILT_UNIT = {"ball": 0.125, "saddle": 0.125, "valley": 0.5, "two-minima": 0.125}
DEFAULT_TILT_UNIT = 0.125


@dataclass(frozen=True)
class ExampleSet:
    """``N`` examples on ``surface``; row ``i`` of ``tilts`` (shape ``(N, dim)``) is ``z_i``."""

    surface: Surface
    tilts: np.ndarray

    def __post_init__(self) -> None:
        tilts = np.asarray(self.tilts, dtype=np.float64)
        if tilts.ndim != 2 or tilts.shape[1] != self.surface.dim or len(tilts) == 0:
            raise ConfigError(f"tilts must have shape (N, {self.surface.dim}) with N >= 1; got {tilts.shape}")
        if np.any(tilts.sum(axis=0) != 0):
            raise ConfigError("the tilts of an example set must sum to exactly zero, so the examples average to L")
        object.__setattr__(self, "tilts", tilts)

    @property
    def size(self) -> int:
        """N, the number of examples."""
        return len(self.tilts)

    def check_batch_size(self, batch_size: int) -> int:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or not 1 <= batch_size <= self.size:
            raise ConfigError(f"batch size must be an integer in [1, {self.size}]; got {batch_size!r}")
        return int(batch_size)

    def batch_tilt(self, batch: Sequence[int]) -> np.ndarray:
        """``mean_{i∈batch} z_i`` (exact sum, then one division)."""
        return self.tilts[np.asarray(batch, dtype=np.intp)].sum(axis=0) / len(batch)

    def batch_gradient(self, theta: np.ndarray, batch: Sequence[int]) -> np.ndarray:
        """``∇L^b(θ) = ∇L(θ) + mean_{i∈b} z_i``."""
        return self.surface.grad(theta) + self.batch_tilt(batch)

    def batch_values(self, coords: np.ndarray, batch: Sequence[int]) -> np.ndarray:
        """``L^b`` on a grid: ``coords`` has shape ``(dim, ...)`` as in :meth:`Surface.values`."""
        coords = np.asarray(coords, dtype=np.float64)
        return self.surface.values(coords) + np.tensordot(self.batch_tilt(batch), coords, axes=1)

    def batches(self, batch_size: int, seed: int) -> Iterator[list[int]]:
        """Endless batches: per epoch a fresh permutation from one Mulberry32(seed) stream, cut
        into ``N // batch_size`` consecutive slices (left-over examples skipped that epoch)."""
        batch_size = self.check_batch_size(batch_size)
        generator = Mulberry32(seed)  # both checked here, before the first batch is asked for

        def endless() -> Iterator[list[int]]:
            while True:
                order = generator.permutation(self.size)
                for start in range(0, self.size - batch_size + 1, batch_size):
                    yield order[start:start + batch_size]

        return endless()

    def describe(self) -> dict:
        """JSON-ready: the rule and the tilts."""
        return {"rule": "ℓ_i(θ) = L(θ) + z_i·θ", "size": self.size, "tilts": self.tilts.tolist()}


def examples_for(surface: Surface) -> ExampleSet:
    """The twelve-example dataset of a surface (``TILT_UNIT[surface.name]`` times a fixed integer table)."""
    if surface.dim > 2:
        raise ConfigError(f"example sets exist for 1-D and 2-D surfaces; {surface.name} has dim {surface.dim}")
    table = _TILTS_1D if surface.dim == 1 else _TILTS_2D
    unit = TILT_UNIT.get(surface.name, DEFAULT_TILT_UNIT)
    return ExampleSet(surface, unit * np.array(table, dtype=np.float64))
