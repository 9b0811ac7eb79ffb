"""Shared driver of the coordinate-wise robust rules: sort each block of coordinates across clients."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fmfl.aggregation.buffer import ClientBuffer
from fmfl.aggregation.sparse import Float64Array

# Reduces a (clients, cols) block sorted along axis 0 to one row of cols.
SortedReducer = Callable[[Float64Array], Float64Array]


def reduce_sorted_blocks(buffer: ClientBuffer, block_bytes: int, reduce: SortedReducer) -> Float64Array:
    """Apply ``reduce`` to each block of densified deltas sorted per coordinate (O(k log k) a coordinate)."""
    out = np.empty(buffer.size, dtype=np.float64)
    for lo, hi, block in buffer.blocks(block_bytes):
        block.sort(axis=0)  # in place: the block is ours, and a sorted copy would double the peak
        out[lo:hi] = reduce(block)
    return out
