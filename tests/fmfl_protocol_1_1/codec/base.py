"""The two seams of the update codec: which positions to send (a sparsifier) and how to write their values.

An update payload is ``indices`` (sorted, unique) plus ``values`` at those indices. A :class:`Sparsifier`
picks the indices; a :class:`ValueCoder` turns the picked values into bytes and tells the encoder exactly
which float32 values the decoder will reconstruct, so that error feedback keeps the true residual.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
IndexArray = npt.NDArray[np.int64]


class ValueCoding(IntEnum):
    """How a payload writes its values (byte 9 of the payload body)."""

    FP32 = 0  # 4 bytes each, little-endian IEEE 754 binary32
    FP16 = 1  # 2 bytes each, little-endian IEEE 754 binary16
    INT8 = 2  # 1 byte each, two's complement in [-127, 127], times the group scale
    INT4 = 3  # 4 bits each, nibble = q + 8 in [1, 15], low nibble first, times the group scale
    SIGN = 4  # 1 bit each, 1 = +scale, 0 = -scale, most significant bit first


class Sparsifier(Protocol):
    """Chooses which coordinates of an update to send."""

    seeded: bool  # True if the decoder regenerates the indices from the seed (no index bytes sent)

    def select(self, values: FloatArray, seed: int) -> IndexArray:
        """Sorted unique int64 indices into ``values``."""
        ...


class ValueCoder(Protocol):
    """Writes the chosen values, in index order, split into scale groups of ``counts`` values each."""

    code: ValueCoding  # the payload's value-coding byte
    grouped: bool  # True if the coder writes one float32 scale per group

    def encode(
        self, values: FloatArray, counts: npt.NDArray[np.int64], rng: np.random.Generator
    ) -> tuple[bytes, bytes, Float32Array]:
        """``(scale bytes, value bytes, values as the decoder will reconstruct them)``."""
        ...


def ceil_fraction(fraction: float, n: int) -> int:
    """``ceil(fraction * n)`` clamped to ``[1, n]`` (``[0, 0]`` for an empty tensor)."""
    if n == 0:
        return 0
    return min(n, max(1, int(np.ceil(fraction * n))))
