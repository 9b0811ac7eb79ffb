"""Vectorised unsigned LEB128 varints (the encoding of Protocol Buffers), at most 5 bytes each.

Each value is written 7 bits at a time, least significant group first; every byte but the last of a value has
its high bit set. A value takes ``1 + floor(log128(v))`` bytes; values here stay below ``2**35``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fmfl.protocol.errors import ProtocolError, Reason

MAX_VARINT_BYTES = 5
_THRESHOLDS = np.array([1 << 7, 1 << 14, 1 << 21, 1 << 28], dtype=np.uint64)


def varint_lengths(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """How many bytes each value takes."""
    lengths = np.ones(values.shape, dtype=np.int64)
    for threshold in _THRESHOLDS:
        lengths += values >= threshold
    return lengths


def encode_varints(values: npt.NDArray[np.uint64], lengths: npt.NDArray[np.int64] | None = None) -> bytes:
    """Concatenated varints of ``values`` (each below ``2**35``); ``lengths`` if already computed."""
    if values.size == 0:
        return b""
    if int(values.max()) >= 1 << (7 * MAX_VARINT_BYTES):
        raise ValueError("varint value out of range")
    if lengths is None:
        lengths = varint_lengths(values)
    starts = np.cumsum(lengths) - lengths
    out = np.empty(int(lengths.sum()), dtype=np.uint8)
    # One pass per byte position (at most 5), never per element.
    for j in range(MAX_VARINT_BYTES):
        mask = lengths > j
        if not mask.any():
            break
        v = values[mask] if j else values
        group = (v >> np.uint64(7 * j)) & np.uint64(0x7F)
        more = (lengths[mask] if j else lengths) > j + 1
        out[(starts[mask] if j else starts) + j] = group.astype(np.uint8) | (more.astype(np.uint8) << 7)
    return out.tobytes()


def decode_varints(data: bytes | memoryview, count: int) -> npt.NDArray[np.uint64]:
    """Exactly ``count`` canonical varints filling all of ``data``, or :class:`ProtocolError`.

    Rejects varints longer than 5 bytes, non-canonical (overlong) forms, a final varint cut short and bytes
    left over. Allocates ``O(len(data))``; the caller bounds ``len(data)`` by ``5 * count``.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    if count == 0:
        if raw.size:
            raise ProtocolError(Reason.MALFORMED, "index section must be empty when nnz is 0")
        return np.zeros(0, dtype=np.uint64)
    if raw.size == 0 or raw[-1] & 0x80:
        raise ProtocolError(Reason.TRUNCATED, "varint stream ends inside a varint")
    ends = np.flatnonzero(raw < 0x80)
    if ends.size != count:
        raise ProtocolError(Reason.MALFORMED, f"varint stream holds {ends.size} values, header says {count}")
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    longest = int(lengths.max())
    if longest > MAX_VARINT_BYTES:
        raise ProtocolError(Reason.MALFORMED, f"varint longer than {MAX_VARINT_BYTES} bytes")
    last = raw[ends]
    if np.any((lengths > 1) & (last == 0)):
        raise ProtocolError(Reason.MALFORMED, "overlong (non-canonical) varint")
    if longest == 1:
        return raw.astype(np.uint64)
    if longest == 2:
        # Every gap below 16,384 (top-k gaps of vectors up to a few million floats): the low 7 bits from the
        # first byte, the rest from the last, without the per-byte pass below (half the gateway's decode time).
        high = last.astype(np.uint64)
        low = (raw[starts] & 0x7F).astype(np.uint64)
        return np.where(lengths == 2, low | (high << np.uint64(7)), high)
    position = np.arange(raw.size, dtype=np.int64) - np.repeat(starts, lengths)
    groups = (raw & 0x7F).astype(np.uint64) << (7 * position).astype(np.uint64)
    return np.add.reduceat(groups, starts)
