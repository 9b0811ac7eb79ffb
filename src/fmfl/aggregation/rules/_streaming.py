"""Base for the FedAvg family: a round is one streaming ``WeightedSum``, O(nnz) per update."""

from __future__ import annotations

import numpy as np

from fmfl.aggregation.accumulator import WeightedSum
from fmfl.aggregation.sparse import Float64Array
from fmfl.aggregation.state_file import CorruptState
from fmfl.aggregation.strategy import RoundStateError, Strategy
from fmfl.aggregation.validation import ValidUpdate


class MeanStrategy(Strategy):
    """Aggregates the sample-weighted mean delta; subclasses choose the server step."""

    _sum: WeightedSum | None = None
    _delta: Float64Array | None = None

    def _open_round(self, size: int) -> None:
        # Reuse the round buffers of the previous round: for a 2M-float model, fresh 16 MB arrays
        # cost thousands of page faults each, more than all the sparse updates of a small round.
        if self._sum is not None and self._sum.size == size:
            self._sum.reset()
        else:
            self._sum = WeightedSum(size)
            self._delta = np.empty(size, dtype=np.float64)

    @property
    def weighted_sum(self) -> WeightedSum:
        if self._sum is None:
            raise RoundStateError("no round begun yet")
        return self._sum

    def _add(self, update: ValidUpdate) -> None:
        assert self._sum is not None  # _add runs only in an open round
        self._sum.add(update.indices, update.values, update.weight)

    def _aggregate_delta(self) -> Float64Array:
        return self.weighted_sum.mean(out=self._delta)

    def _partial_bytes(self) -> bytes:
        return self.weighted_sum.to_bytes()

    def _merge_partial(self, payload: bytes, clients: frozenset[str]) -> None:
        other = WeightedSum.from_bytes(payload)
        if other.count != len(clients):
            raise CorruptState(f"partial sum counts {other.count} updates but names {len(clients)} clients")
        self.weighted_sum.merge(other)
