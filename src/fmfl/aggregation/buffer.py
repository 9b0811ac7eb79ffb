"""Per-client sparse deltas kept for the robust rules, with a hard memory bound.

Coordinate-wise median, trimmed mean and Krum need every client's vector, not just a sum. They are
kept exactly as they arrived - sorted int64 indices plus float32 values, 12 bytes per nonzero - and
densified only one block of coordinates at a time when the round is aggregated.

Memory, while a round is open: ``nbytes`` = sum over clients of (12 * nnz_i + ``PER_CLIENT_OVERHEAD``),
and an update that would pass ``max_bytes`` (default 512 MiB) or ``max_clients`` (default 1,000) is
refused with ``RejectedUpdate(CAPACITY)``, changing nothing. While aggregating, on top of that: one
dense float64 block of ``clients x block_cols`` with ``block_cols`` chosen to fit ``block_bytes``
(default 32 MiB; the median and trimmed mean sort it in place, Krum multiplies it by its transpose
into a ``clients x clients`` Gram matrix), one row of ``block_cols`` for the result of a block, and
the float64 delta of the model size (8 bytes a coordinate). Example: 1,000 clients sending 1% of
2M floats hold 240 MB; aggregating adds 32 MiB + 16 MB.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from fmfl.aggregation.sparse import Float32Array, Float64Array, IndexArray
from fmfl.aggregation.state_file import CorruptState, dump_arrays, load_arrays
from fmfl.aggregation.validation import RejectedUpdate, RejectReason, ValidUpdate, validate_update

# Python objects around each client's arrays (dataclass, two ndarray headers, id string).
PER_CLIENT_OVERHEAD = 400
DEFAULT_MAX_CLIENTS = 1_000
DEFAULT_MAX_BYTES = 512 * 2**20
DEFAULT_BLOCK_BYTES = 32 * 2**20

_KIND = "client-buffer-v1"


@dataclass(frozen=True)
class BufferedUpdate:
    """One client's delta as kept in the buffer (owned copies)."""

    client_id: str
    indices: IndexArray
    values: Float32Array
    weight: float

    @property
    def nnz(self) -> int:
        return int(self.indices.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.indices.nbytes + self.values.nbytes) + PER_CLIENT_OVERHEAD


class ClientBuffer:
    """The sparse deltas of one round, bounded by client count and bytes."""

    def __init__(self, size: int, *, max_clients: int = DEFAULT_MAX_CLIENTS, max_bytes: int = DEFAULT_MAX_BYTES):
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        if max_clients < 1:
            raise ValueError(f"max_buffered_clients must be >= 1, got {max_clients}")
        if max_bytes < 1:
            raise ValueError(f"max_buffer_bytes must be >= 1, got {max_bytes}")
        self.size = size
        self.max_clients = max_clients
        self.max_bytes = max_bytes
        self._entries: dict[str, BufferedUpdate] = {}
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def check_fits(self, nnz: int, *, clients: int = 1) -> None:
        """Raise ``RejectedUpdate(CAPACITY)`` if ``clients`` more updates of ``nnz`` total would not fit."""
        if len(self._entries) + clients > self.max_clients:
            raise RejectedUpdate(
                RejectReason.CAPACITY,
                f"buffer holds {len(self._entries)} clients, max_buffered_clients={self.max_clients}; "
                "aggregate the round or raise the bound",
            )
        need = 12 * nnz + PER_CLIENT_OVERHEAD * clients
        if self.nbytes + need > self.max_bytes:
            raise RejectedUpdate(
                RejectReason.CAPACITY,
                f"buffer would grow to {self.nbytes + need} bytes, max_buffer_bytes={self.max_bytes}; "
                "aggregate the round, raise the bound or send sparser updates",
            )

    def add(self, update: ValidUpdate) -> None:
        """Keep a copy of a validated update (call ``check_fits`` first; this re-checks)."""
        self.check_fits(update.nnz)
        if update.client_id in self._entries:
            raise RejectedUpdate(RejectReason.DUPLICATE_CLIENT, f"client {update.client_id!r} already buffered")
        self._put(BufferedUpdate(update.client_id, update.indices.copy(), update.values.copy(), update.weight))

    def _put(self, entry: BufferedUpdate) -> None:
        self._entries[entry.client_id] = entry
        self.nbytes += entry.nbytes

    def entries(self) -> list[BufferedUpdate]:
        """The buffered deltas sorted by client id, so results never depend on arrival order."""
        return [self._entries[k] for k in sorted(self._entries)]

    def merge(self, other: ClientBuffer) -> None:
        """Take over another worker's buffered deltas (disjoint clients, same size, within bounds)."""
        if other.size != self.size:
            raise ValueError(f"cannot merge a buffer of size {other.size} into one of size {self.size}")
        overlap = self._entries.keys() & other._entries.keys()
        if overlap:
            raise RejectedUpdate(RejectReason.DUPLICATE_CLIENT, f"clients in both buffers: {sorted(overlap)[:5]}")
        self.check_fits(sum(e.nnz for e in other._entries.values()), clients=len(other))
        for entry in other.entries():
            self._put(entry)

    def blocks(self, block_bytes: int = DEFAULT_BLOCK_BYTES) -> Iterator[tuple[int, int, Float64Array]]:
        """Yield ``(lo, hi, X)`` with ``X[i]`` the dense float64 slice ``[lo, hi)`` of client i's delta.

        Clients are in ``entries()`` order. Each client's indices are walked with a cursor, so the
        total cost over all blocks is O(total nnz + clients * size).
        """
        entries = self.entries()
        k = len(entries)
        cols = max(1, min(self.size, block_bytes // (8 * max(k, 1))))
        cursors = [0] * k
        for lo in range(0, self.size, cols):
            hi = min(self.size, lo + cols)
            block = np.zeros((k, hi - lo), dtype=np.float64)
            for i, e in enumerate(entries):
                start = cursors[i]
                end = start + int(np.searchsorted(e.indices[start:], hi))
                block[i, e.indices[start:end] - lo] = e.values[start:end]
                cursors[i] = end
            yield lo, hi, block

    def to_bytes(self) -> bytes:
        entries = self.entries()
        return dump_arrays(
            {
                "kind": _KIND,
                "size": np.int64(self.size),
                "client_ids": np.array([e.client_id for e in entries], dtype=np.str_),
                "weights": np.array([e.weight for e in entries], dtype=np.float64),
                "offsets": np.cumsum([0] + [e.nnz for e in entries], dtype=np.int64),
                "indices": np.concatenate([e.indices for e in entries] or [np.zeros(0, np.int64)]),
                "values": np.concatenate([e.values for e in entries] or [np.zeros(0, np.float32)]),
            }
        )

    @classmethod
    def from_bytes(
        cls, data: bytes, *, max_clients: int = DEFAULT_MAX_CLIENTS, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> ClientBuffer:
        """Rebuild a buffer; its contents are re-checked because they may come from another host."""
        a = load_arrays(data, kind=_KIND, required=("size", "client_ids", "weights", "offsets", "indices", "values"))
        size, ids, weights, offsets = int(a["size"]), a["client_ids"], a["weights"], a["offsets"]
        if size <= 0 or not (ids.shape == weights.shape and offsets.shape == (ids.shape[0] + 1,)):
            raise CorruptState("client-buffer state has inconsistent arrays")
        out = cls(size, max_clients=max_clients, max_bytes=max_bytes)
        for i, cid in enumerate(ids.tolist()):
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            piece = _Piece(a["indices"][lo:hi], a["values"][lo:hi], size)
            try:
                out.add(validate_update(piece, float(weights[i]), str(cid), size=size, seen_clients=out._entries))
            except RejectedUpdate as exc:
                raise CorruptState(f"client-buffer entry {cid!r}: {exc}") from exc
        return out


@dataclass(frozen=True)
class _Piece:
    indices: np.ndarray  # type: ignore[type-arg]
    values: np.ndarray  # type: ignore[type-arg]
    size: int
