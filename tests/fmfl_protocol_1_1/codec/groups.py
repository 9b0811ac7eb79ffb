"""Scale groups: the runs of consecutive sent values that share one quantization scale.

Per-block scales follow Dettmers et al. 2022, "8-bit Optimizers via Block-wise Quantization"; per-tensor
scales are the usual layer-wise choice of QSGD (Alistarh et al. 2017). Groups run over the *sent* values in
index order, so the decoder needs only the group sizes, never the tensor layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fmfl_protocol_1_1.codec.base import FloatArray, IndexArray

CountArray = npt.NDArray[np.int64]


def block_counts(nnz: int, block: int) -> CountArray:
    """Groups of ``block`` values; the last one holds the remainder. No groups when ``nnz`` is 0."""
    groups = -(-nnz // block)
    counts = np.full(groups, block, dtype=np.int64)
    if groups:
        counts[-1] = nnz - block * (groups - 1)
    return counts


def tensor_counts(indices: IndexArray, tensor_sizes: Sequence[int]) -> CountArray:
    """How many of the sorted ``indices`` fall in each tensor (some counts may be zero)."""
    bounds = np.cumsum(np.asarray(tensor_sizes, dtype=np.int64))
    return np.diff(np.searchsorted(indices, bounds, side="left"), prepend=0).astype(np.int64)


def _reduce(ufunc: np.ufunc, values: FloatArray, counts: CountArray) -> FloatArray:
    out = np.zeros(counts.size, dtype=np.float64)
    nonempty = counts > 0
    if values.size:
        starts = (np.cumsum(counts) - counts)[nonempty]
        out[nonempty] = ufunc.reduceat(values, starts)
    return out


def group_max_abs(values: FloatArray, counts: CountArray) -> FloatArray:
    """max |v| per group (0 for an empty group)."""
    return _reduce(np.maximum, np.abs(values), counts)


def group_mean_abs(values: FloatArray, counts: CountArray) -> FloatArray:
    """mean |v| per group (0 for an empty group)."""
    sums = _reduce(np.add, np.abs(values), counts)
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
