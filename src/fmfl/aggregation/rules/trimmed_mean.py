"""Coordinate-wise trimmed mean.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML 2018, Definition 2: for each coordinate, drop the largest and the smallest
``β`` fraction of the clients' values and average the rest. As in the paper (and Flower), clients are
not weighted by sample count. ``int(β * k)`` values go from each end; a coordinate a client did not
send counts as its zero delta. Memory: see ``fmfl.aggregation.buffer``.
"""

from __future__ import annotations

from typing import ClassVar

from fmfl.aggregation.buffer import DEFAULT_BLOCK_BYTES, DEFAULT_MAX_BYTES, DEFAULT_MAX_CLIENTS
from fmfl.aggregation.rules._buffered import BufferedStrategy
from fmfl.aggregation.rules._coordinatewise import reduce_sorted_blocks
from fmfl.aggregation.sparse import Float64Array
from fmfl.aggregation.validation import UpdateLimits


class TrimmedMean(BufferedStrategy):
    """Coordinate-wise β-trimmed mean of the round's deltas."""

    name: ClassVar[str] = "trimmed-mean"

    def __init__(
        self,
        *,
        beta: float = 0.1,
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
        if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0.0 <= beta < 0.5:
            raise ValueError(f"beta (fraction trimmed from each end) must be in [0, 0.5), got {beta!r}")
        self.beta = float(beta)

    def _aggregate_delta(self) -> Float64Array:
        k = len(self.buffer)
        cut = int(self.beta * k)  # beta < 0.5 keeps at least one value: k - 2*cut >= 1

        def trimmed(sorted_block: Float64Array) -> Float64Array:
            out: Float64Array = sorted_block[cut : k - cut].mean(axis=0)
            return out

        return reduce_sorted_blocks(self.buffer, self.block_bytes, trimmed)
