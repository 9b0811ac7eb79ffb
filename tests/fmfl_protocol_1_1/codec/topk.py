"""Top-k sparsification: send the k coordinates of largest magnitude.

Aji & Heafield 2017, "Sparse Communication for Distributed Gradient Descent" (EMNLP); with error feedback
("memory"), Stich, Cordonnier & Jaggi 2018, "Sparsified SGD with Memory" (NeurIPS). ``k`` is a fraction of the
coordinates (rounded up) or a count, over the whole vector or per tensor (each tensor keeps
``ceil(fraction * n_t)`` coordinates, at least one, so a small head is never starved by a large body).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fmfl_protocol_1_1.codec.base import FloatArray, IndexArray, ceil_fraction


def top_k_indices(values: FloatArray, k: int) -> IndexArray:
    """Sorted indices of the ``k`` largest ``|values|`` (ties broken arbitrarily). O(n) by argpartition."""
    n = values.size
    if k >= n:
        return np.arange(n, dtype=np.int64)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    chosen = np.argpartition(np.abs(values), n - k)[n - k :]
    chosen.sort()
    return chosen.astype(np.int64, copy=False)


class TopKSparsifier:
    """Keeps the largest-magnitude coordinates: ``count`` of them, or ``ceil(fraction * n)``."""

    seeded = False

    def __init__(
        self,
        size: int,
        *,
        fraction: float | None = None,
        count: int | None = None,
        tensor_sizes: Sequence[int] | None = None,
    ) -> None:
        if (fraction is None) == (count is None):
            raise ValueError("give exactly one of fraction and count")
        self._size = size
        # A count becomes a fraction for per-tensor splitting, so each tensor keeps its share.
        self._fraction = fraction if fraction is not None else min(1.0, (count or 0) / size)
        self._count = count
        self._tensor_sizes = list(tensor_sizes) if tensor_sizes is not None else None

    def k(self) -> int:
        """How many coordinates one call keeps (for the whole vector)."""
        if self._tensor_sizes is not None:
            return sum(ceil_fraction(self._fraction, n) for n in self._tensor_sizes)
        if self._count is not None:
            return min(self._count, self._size)
        return ceil_fraction(self._fraction, self._size)

    def select(self, values: FloatArray, seed: int) -> IndexArray:
        del seed  # deterministic
        if self._tensor_sizes is None:
            return top_k_indices(values, self.k())
        parts = []
        offset = 0
        for n in self._tensor_sizes:  # a loop over tensors (a handful), not over elements
            k = ceil_fraction(self._fraction, n)
            parts.append(top_k_indices(values[offset : offset + n], k) + offset)
            offset += n
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
