"""A tiny 32-bit random number generator that gives the same numbers in Python and in JavaScript.

The toy surfaces' mini-batch runs draw their batch order from :class:`Mulberry32`, and the browser
playground (:mod:`batchlab.playground`) runs the very same generator, so a seed gives the same
batches in both languages, bit for bit. numpy's generators cannot be reproduced in a browser;
this one is a few lines of integer arithmetic modulo 2^32.

mulberry32 (Tommy Ettinger, 2017; public domain), one step::

    a = (a + 0x6D2B79F5) mod 2^32
    t = (a ^ (a >> 15)) * (a | 1)            mod 2^32
    t = ((t + (t ^ (t >> 7)) * (t | 61)) mod 2^32) ^ t
    return t ^ (t >> 14)

The JavaScript original is the same lines with ``Math.imul`` and ``>>>``.
"""

from __future__ import annotations

import operator

from batchlab.errors import ConfigError

_MASK = 0xFFFFFFFF
_INCREMENT = 0x6D2B79F5
SEED_LIMIT = 2**32


def check_seed(seed: int) -> int:
    """The seed as an int in ``[0, 2^32)`` (numpy integers accepted); anything else is a
    :class:`ConfigError`."""
    try:
        value = None if isinstance(seed, bool) else operator.index(seed)
    except TypeError:
        value = None
    if value is None or not 0 <= value < SEED_LIMIT:
        raise ConfigError(f"seed must be an integer in [0, 2^32); got {seed!r}")
    return value


class Mulberry32:
    """The mulberry32 generator: 32 bits of state, period 2^32, one uint32 per call."""

    def __init__(self, seed: int) -> None:
        self.state = check_seed(seed)

    def next_uint32(self) -> int:
        """The next number, uniform on ``[0, 2^32)``."""
        self.state = (self.state + _INCREMENT) & _MASK
        a = self.state
        t = ((a ^ (a >> 15)) * (a | 1)) & _MASK
        t = ((t + (((t ^ (t >> 7)) * (t | 61)) & _MASK)) & _MASK) ^ t
        return (t ^ (t >> 14)) & _MASK

    def random(self) -> float:
        """Uniform on ``[0, 1)``: the next uint32 divided by 2^32 (exact in float64)."""
        return self.next_uint32() / SEED_LIMIT

    def below(self, n: int) -> int:
        """An integer in ``[0, n)``: the next uint32 modulo ``n``. The modulo bias is below
        ``n / 2^32`` -- irrelevant for shuffling a dozen examples, and simple to port."""
        return self.next_uint32() % n

    def permutation(self, n: int) -> list[int]:
        """A random order of ``0 … n-1``: Fisher-Yates from the last position down, position ``i``
        swapped with ``below(i + 1)`` (Knuth's Algorithm P)."""
        order = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.below(i + 1)
            order[i], order[j] = order[j], order[i]
        return order
