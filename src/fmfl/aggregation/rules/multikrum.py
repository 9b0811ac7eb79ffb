"""Multi-Krum: average the ``m`` deltas with the best Krum scores.

Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries: Byzantine Tolerant
Gradient Descent", NeurIPS 2017. With ``n`` deltas of which at most ``f`` are Byzantine
(``n >= 2f + 3``), the score of delta i is the sum of its squared distances to its ``n - f - 2``
nearest other deltas; Multi-Krum outputs the plain average of the ``m`` lowest-scoring deltas
(``m = n - f`` unless given). As in the paper the average is unweighted (Flower weights it by sample
count). Ties go to the smaller client id, so the result never depends on arrival order.

Distances come from a Gram matrix, ``|a-b|² = |a|² + |b|² - 2a·b``: for sparse deltas from the
products of entries that share a coordinate (O(total nnz x the most clients on one coordinate)),
for dense ones from a BLAS matmul over dense blocks (O(n² x size), memory one ``n x block`` block),
whichever is estimated cheaper. Caveat: for two deltas whose
distance is below about 1e-8 of their norms, cancellation makes that distance inexact (it is
clamped at 0), which can only reorder near-identical deltas.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from fmfl.aggregation.accumulator import WeightedSum
from fmfl.aggregation.buffer import (
    DEFAULT_BLOCK_BYTES,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_CLIENTS,
    BufferedUpdate,
    ClientBuffer,
)
from fmfl.aggregation.rules._buffered import BufferedStrategy
from fmfl.aggregation.sparse import Float64Array, IndexArray
from fmfl.aggregation.strategy import RoundStateError
from fmfl.aggregation.validation import UpdateLimits

# numpy element-wise work costs about this many BLAS matmul flops; picks the cheaper Gram path.
_ELEMENTWISE_VS_FLOP = 20


def pairwise_sq_distances(buffer: ClientBuffer, block_bytes: int) -> Float64Array:
    """``D[i, j] = |delta_i - delta_j|²`` over ``buffer.entries()`` order."""
    entries = buffer.entries()
    k = len(entries)
    idx = np.concatenate([e.indices for e in entries])
    order = np.argsort(idx, kind="stable")  # stable: within a coordinate, entries stay in client order
    idx = idx[order]
    runs = np.diff(np.flatnonzero(np.diff(idx, prepend=-1, append=buffer.size + 1)))
    overlap = int(runs.max()) if runs.size else 0
    if idx.size * overlap * _ELEMENTWISE_VS_FLOP < k * k * buffer.size:
        gram = _sparse_gram(entries, idx, order)
    else:
        gram = np.zeros((k, k), dtype=np.float64)
        for _, _, block in buffer.blocks(block_bytes):
            gram += block @ block.T
    sq = np.diag(gram).copy()
    dist: Float64Array = np.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0)
    np.fill_diagonal(dist, 0.0)
    return dist


def _sparse_gram(entries: list[BufferedUpdate], idx: IndexArray, order: IndexArray) -> Float64Array:
    """Gram matrix from the products of entries sharing a coordinate: O(total nnz x max overlap).

    For sparse deltas few clients share a coordinate, so this beats the dense O(k² x size) matmul by
    orders of magnitude; it holds about 40 bytes per buffered nonzero while it runs.
    """
    k = len(entries)
    cid = np.repeat(np.arange(k), [e.nnz for e in entries])[order]
    val = np.concatenate([e.values for e in entries]).astype(np.float64)[order]
    gram = np.zeros((k, k), dtype=np.float64)
    np.add.at(gram, (cid, cid), val * val)
    # Entry p and entry p+d (d = 1, 2, ...) are a pair of clients on one coordinate when their
    # indices match; no match at distance d means no coordinate is shared by more than d clients.
    for d in range(1, idx.size):
        same = idx[:-d] == idx[d:]
        if not same.any():
            break
        a, b = cid[:-d][same], cid[d:][same]
        prod = val[:-d][same] * val[d:][same]
        np.add.at(gram, (a, b), prod)
        np.add.at(gram, (b, a), prod)
    return gram


def krum_scores(dist: Float64Array, num_byzantine: int) -> Float64Array:
    """Each row's sum of its ``n - f - 2`` smallest distances to the other rows."""
    n = dist.shape[0]
    closest = n - num_byzantine - 2
    others = np.sort(dist + np.diag(np.full(n, np.inf)), axis=1)  # self-distance pushed last
    scores: Float64Array = others[:, :closest].sum(axis=1)
    return scores


class MultiKrum(BufferedStrategy):
    """Average of the ``num_selected`` deltas with the lowest Krum scores."""

    name: ClassVar[str] = "multi-krum"

    def __init__(
        self,
        *,
        num_byzantine: int,
        num_selected: int | None = None,
        server_lr: float = 1.0,
        limits: UpdateLimits | None = None,
        max_buffered_clients: int = DEFAULT_MAX_CLIENTS,
        max_buffer_bytes: int = DEFAULT_MAX_BYTES,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> None:
        super().__init__(
            server_lr=server_lr,
            limits=limits,
            max_buffered_clients=max_buffered_clients,
            max_buffer_bytes=max_buffer_bytes,
            block_bytes=block_bytes,
        )
        if isinstance(num_byzantine, bool) or not isinstance(num_byzantine, int) or num_byzantine < 0:
            raise ValueError(f"num_byzantine must be an integer >= 0, got {num_byzantine!r}")
        if num_selected is not None and (
            isinstance(num_selected, bool) or not isinstance(num_selected, int) or num_selected < 1
        ):
            raise ValueError(f"num_selected must be an integer >= 1 or None, got {num_selected!r}")
        self.num_byzantine = num_byzantine
        self.num_selected = num_selected
        self.last_selected: tuple[str, ...] = ()

    def _selection_size(self, n: int) -> int:
        return self.num_selected if self.num_selected is not None else n - self.num_byzantine

    def _aggregate_delta(self) -> Float64Array:
        entries = self.buffer.entries()
        n, f = len(entries), self.num_byzantine
        if n < 2 * f + 3:
            raise RoundStateError(f"{self.name} with num_byzantine={f} needs at least {2 * f + 3} updates, has {n}")
        m = self._selection_size(n)
        if m > n:
            raise RoundStateError(f"{self.name} selects {m} updates but the round has only {n}")
        scores = krum_scores(pairwise_sq_distances(self.buffer, self.block_bytes), f)
        chosen = sorted(np.argsort(scores, kind="stable")[:m].tolist())  # stable: ties by client id
        self.last_selected = tuple(entries[i].client_id for i in chosen)
        return _plain_mean([entries[i] for i in chosen], self.buffer.size)


def _plain_mean(entries: list[BufferedUpdate], size: int) -> Float64Array:
    acc = WeightedSum(size)
    for e in entries:
        acc.add(e.indices, e.values, 1.0)
    return acc.mean()
