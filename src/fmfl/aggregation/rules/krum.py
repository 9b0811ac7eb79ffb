"""Krum: keep the single delta closest to its neighbours.

Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries: Byzantine Tolerant
Gradient Descent", NeurIPS 2017. Krum is Multi-Krum with ``m = 1``: the aggregate is the one delta
with the lowest score (sum of squared distances to its ``n - f - 2`` nearest others), needing
``n >= 2f + 3``. Scoring, tie-breaking and memory: see ``multikrum``.
"""

from __future__ import annotations

from typing import ClassVar

from fmfl.aggregation.buffer import DEFAULT_BLOCK_BYTES, DEFAULT_MAX_BYTES, DEFAULT_MAX_CLIENTS
from fmfl.aggregation.rules.multikrum import MultiKrum
from fmfl.aggregation.validation import UpdateLimits


class Krum(MultiKrum):
    """The lowest-scoring delta of the round."""

    name: ClassVar[str] = "krum"

    def __init__(
        self,
        *,
        num_byzantine: int,
        server_lr: float = 1.0,
        limits: UpdateLimits | None = None,
        max_buffered_clients: int = DEFAULT_MAX_CLIENTS,
        max_buffer_bytes: int = DEFAULT_MAX_BYTES,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> None:
        super().__init__(
            num_byzantine=num_byzantine,
            num_selected=1,
            server_lr=server_lr,
            limits=limits,
            max_buffered_clients=max_buffered_clients,
            max_buffer_bytes=max_buffer_bytes,
            block_bytes=block_bytes,
        )
