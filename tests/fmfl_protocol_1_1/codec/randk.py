"""Random-k sparsification from a seed shared through the payload: the indices cost 8 bytes.

Stich, Cordonnier & Jaggi 2018, "Sparsified SGD with Memory" (rand-k with error feedback); Konečný et al.
2016, "Federated Learning: Strategies for Improving Communication Efficiency" (random masks from a seed).
Values are not rescaled by n/k: use it with error feedback (``ef``), which sends the rest later.

The index set is fixed by the seed alone, so any implementation can regenerate it: hash every position
``i`` with SplitMix64 (Steele, Lea & Flood 2014) as
``h_i = splitmix64(seed + (i + 1) * 0x9E3779B97F4A7C15 mod 2**64)`` and keep the ``k`` positions with the
smallest ``(h_i, i)``, in increasing order of ``i``.
"""

from __future__ import annotations

import numpy as np

from fmfl_protocol_1_1.codec.base import FloatArray, IndexArray, ceil_fraction

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
MASK64 = (1 << 64) - 1


def splitmix64(x: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    """The SplitMix64 finaliser of uint64 ``x`` (wrapping arithmetic)."""
    z = x.astype(np.uint64, copy=True)
    z ^= z >> np.uint64(30)
    z *= _MIX1
    z ^= z >> np.uint64(27)
    z *= _MIX2
    z ^= z >> np.uint64(31)
    return z


def position_hashes(seed: int, size: int) -> np.ndarray:  # type: ignore[type-arg]
    """``h_i`` for ``i`` in ``[0, size)``."""
    counters = np.arange(1, size + 1, dtype=np.uint64) * _GOLDEN + np.uint64(seed & MASK64)
    return splitmix64(counters)


def seeded_indices(seed: int, size: int, k: int) -> IndexArray:
    """The ``k`` positions with the smallest ``(h_i, i)``, sorted. Allocates ``O(size)``."""
    if k >= size:
        return np.arange(size, dtype=np.int64)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    hashes = position_hashes(seed, size)
    kth = np.partition(hashes, k - 1)[k - 1]
    keep = hashes < kth
    # Ties at the k-th hash value go to the lowest positions, so the set is unique.
    missing = k - int(keep.sum())
    keep[np.flatnonzero(hashes == kth)[:missing]] = True
    return np.flatnonzero(keep).astype(np.int64, copy=False)


def derive_seed(base_seed: int, counter: int) -> int:
    """A per-round seed from a base seed (SplitMix64 of their sum), so rounds pick different coordinates."""
    value = np.array([(base_seed + counter) & MASK64], dtype=np.uint64)
    return int(splitmix64(value * _GOLDEN)[0])


class RandKSparsifier:
    """Keeps ``count`` or ``ceil(fraction * size)`` positions chosen by the seed."""

    seeded = True

    def __init__(self, size: int, *, fraction: float | None = None, count: int | None = None) -> None:
        if (fraction is None) == (count is None):
            raise ValueError("give exactly one of fraction and count")
        self._k = min(count, size) if count is not None else ceil_fraction(fraction or 0.0, size)
        self._size = size

    def k(self) -> int:
        return self._k

    def select(self, values: FloatArray, seed: int) -> IndexArray:
        return seeded_indices(seed, values.size, self._k)
