"""Coordinate-wise median.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML 2018, Definition 1: each coordinate of the aggregate is the median of the
clients' values there (the mean of the two middle ones for an even count, as ``np.median``).
Unweighted, as in the paper; a coordinate a client did not send counts as its zero delta.
Memory: see ``fmfl.aggregation.buffer``.
"""

from __future__ import annotations

from typing import ClassVar

from fmfl.aggregation.rules._buffered import BufferedStrategy
from fmfl.aggregation.rules._coordinatewise import reduce_sorted_blocks
from fmfl.aggregation.sparse import Float64Array


class Median(BufferedStrategy):
    """Coordinate-wise median of the round's deltas."""

    name: ClassVar[str] = "median"

    def _aggregate_delta(self) -> Float64Array:
        k = len(self.buffer)

        def median(sorted_block: Float64Array) -> Float64Array:
            if k % 2:
                mid: Float64Array = sorted_block[k // 2].copy()
                return mid
            out: Float64Array = (sorted_block[k // 2 - 1] + sorted_block[k // 2]) / 2.0
            return out

        return reduce_sorted_blocks(self.buffer, self.block_bytes, median)
