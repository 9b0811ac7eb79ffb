"""Base for the robust rules: a round keeps every client's sparse delta in a bounded ``ClientBuffer``.

See ``fmfl.aggregation.buffer`` for the memory bound while a round is open and while it aggregates.
"""

from __future__ import annotations

from fmfl.aggregation.buffer import DEFAULT_BLOCK_BYTES, DEFAULT_MAX_BYTES, DEFAULT_MAX_CLIENTS, ClientBuffer
from fmfl.aggregation.state_file import CorruptState
from fmfl.aggregation.strategy import RoundStateError, Strategy
from fmfl.aggregation.validation import UpdateLimits, ValidUpdate


class BufferedStrategy(Strategy):
    """Keeps the round's deltas; subclasses combine them in ``_aggregate_delta``."""

    def __init__(
        self,
        *,
        server_lr: float = 1.0,
        limits: UpdateLimits | None = None,
        max_buffered_clients: int = DEFAULT_MAX_CLIENTS,
        max_buffer_bytes: int = DEFAULT_MAX_BYTES,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> None:
        super().__init__(server_lr=server_lr, limits=limits)
        for name, value in (
            ("max_buffered_clients", max_buffered_clients),
            ("max_buffer_bytes", max_buffer_bytes),
            ("block_bytes", block_bytes),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.max_buffered_clients = max_buffered_clients
        self.max_buffer_bytes = max_buffer_bytes
        self.block_bytes = block_bytes
        self._buffer: ClientBuffer | None = None

    @property
    def buffer(self) -> ClientBuffer:
        if self._buffer is None:
            raise RoundStateError("no round begun yet")
        return self._buffer

    def _open_round(self, size: int) -> None:
        self._buffer = ClientBuffer(size, max_clients=self.max_buffered_clients, max_bytes=self.max_buffer_bytes)

    def _check_capacity(self, update: ValidUpdate) -> None:
        self.buffer.check_fits(update.nnz)

    def _add(self, update: ValidUpdate) -> None:
        self.buffer.add(update)

    def _partial_bytes(self) -> bytes:
        return self.buffer.to_bytes()

    def _merge_partial(self, payload: bytes, clients: frozenset[str]) -> None:
        other = ClientBuffer.from_bytes(payload, max_clients=self.max_buffered_clients, max_bytes=self.max_buffer_bytes)
        if {e.client_id for e in other.entries()} != clients:
            raise CorruptState("partial buffer's clients differ from the clients it names")
        self.buffer.merge(other)
