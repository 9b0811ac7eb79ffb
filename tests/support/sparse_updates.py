"""Test helpers for the aggregator: random sparse deltas and slow, obviously-correct dense references."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Sparse:
    """Stands in for ``fmfl.protocol.SparseUpdate``: anything with indices, values and size."""

    indices: np.ndarray
    values: np.ndarray
    size: int


def random_update(rng: np.random.Generator, size: int, nnz: int, *, dyadic: bool = False, scale: float = 1.0) -> Sparse:
    """A sparse delta; ``dyadic`` values are multiples of 2**-8 in [-4, 4), so float64 sums of them
    times integer weights are exact and any summation order gives the same bits."""
    idx = np.sort(rng.choice(size, size=nnz, replace=False)).astype(np.int64)
    if dyadic:
        vals = (rng.integers(-(2**10), 2**10, size=nnz) / 2**8).astype(np.float32)
    else:
        vals = (rng.standard_normal(nnz) * scale).astype(np.float32)
    return Sparse(idx, vals, size)


def dense(u: Sparse) -> F64:
    out = np.zeros(u.size, dtype=np.float64)
    for i, v in zip(u.indices.tolist(), u.values.tolist(), strict=True):
        out[i] = v
    return out


def ref_weighted_mean(updates: list[Sparse], weights: list[float]) -> F64:
    total = sum(weights)
    return sum((w * dense(u) for u, w in zip(updates, weights, strict=True)), np.zeros(updates[0].size)) / total


def ref_median(updates: list[Sparse]) -> F64:
    return np.median(np.stack([dense(u) for u in updates]), axis=0)


def ref_trimmed_mean(updates: list[Sparse], beta: float) -> F64:
    x = np.sort(np.stack([dense(u) for u in updates]), axis=0)
    cut = int(beta * len(updates))
    kept: F64 = x[cut : len(updates) - cut].mean(axis=0)
    return kept


def ref_krum_scores(updates: list[Sparse], f: int) -> F64:
    """Blanchard et al.'s score, with explicit differences (as Flower's aggregate_krum does)."""
    vs = [dense(u) for u in updates]
    n = len(vs)
    scores = []
    for i in range(n):
        d = sorted(float(np.sum((vs[i] - vs[j]) ** 2)) for j in range(n) if j != i)
        scores.append(sum(d[: n - f - 2]))
    return np.array(scores)
