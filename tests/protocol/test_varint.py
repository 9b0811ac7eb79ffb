"""Varint index gaps: the vectorized decoder against a byte-by-byte reading of the format (protocol.md 5).

The decoder has a fast path for streams whose longest varint is 2 bytes (every top-k gap below 16,384) and
the general per-byte pass: both must read exactly what the format says, and refuse what it forbids.
"""

from __future__ import annotations

import numpy as np
import pytest

from fmfl.protocol import ProtocolError
from fmfl.protocol.codec.varint import decode_varints, encode_varints


def _read_one_by_one(data: bytes) -> list[int]:
    values, value, shift = [], 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            values.append(value)
            value, shift = 0, 0
    return values


@pytest.mark.parametrize("top", [2**7, 2**14, 2**21, 2**32 - 1])  # longest varint 1, 2, 3 and 5 bytes
def test_decoded_values_are_the_format_read_byte_by_byte(top: int) -> None:
    rng = np.random.default_rng(top)
    for _ in range(50):
        values = rng.integers(0, top, size=int(rng.integers(1, 400)), dtype=np.uint64)
        data = encode_varints(values)
        got = decode_varints(data, values.size)
        assert got.dtype == np.uint64
        assert got.tolist() == _read_one_by_one(data) == values.tolist()


@pytest.mark.parametrize(("data", "count", "reason"), [
    (b"\x05\x80\x00", 2, "overlong"),  # a 2-byte varint whose last byte is zero (the fast path's shape)
    (b"\x80\x00", 1, "overlong"),
    (b"\x05\x85", 2, "ends inside a varint"),
    (b"\x05\x85\x01", 3, "holds 2 values"),
])
def test_two_byte_streams_are_refused_as_the_format_says(data: bytes, count: int, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_varints(data, count)
