"""Every way an update payload can be wrong, and the reason decode_update gives for it."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import zstandard

from fmfl.protocol import Limits, ProtocolError, UpdateEncoder, decode_update
from fmfl.protocol.limits import max_payload_bytes

SIZE = 16
LIMITS = Limits.for_vector_size(SIZE)
F32 = struct.Struct("<f")
BLOCK = struct.pack("<I", 256)


def payload(
    *,
    size: int = SIZE,
    nnz: int = 2,
    index: int = 1,
    value: int = 0,
    groups: int = 0,
    reserved: int = 0,
    index_bytes: bytes = b"\x03\x04",  # indices 3 and 8
    rest: bytes | None = None,
    prefix: bytes = b"\x01\x00",
) -> bytes:
    """A hand-built payload (defaults: fp32 values 1.0, 2.0 at indices 3 and 8)."""
    if rest is None:
        rest = F32.pack(1.0) + F32.pack(2.0)
    header = struct.pack("<IIBBBBI", size, nnz, index, value, groups, reserved, len(index_bytes))
    return prefix + header + index_bytes + rest


def zstd_payload(body: bytes, declared: int | None = None, frame: bytes | None = None) -> bytes:
    frame = frame if frame is not None else zstandard.ZstdCompressor(write_content_size=True).compress(body)
    return b"\x01\x01" + struct.pack("<I", len(body) if declared is None else declared) + frame


def test_the_hand_built_default_is_valid() -> None:
    update = decode_update(payload(), SIZE, LIMITS)
    assert update.indices.tolist() == [3, 8]
    assert update.values.tolist() == [1.0, 2.0]


def int8(codes: list[int], scale: float = 0.5, block: int = 256) -> bytes:
    return struct.pack("<I", block) + F32.pack(scale) + bytes(c & 0xFF for c in codes)


CASES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "truncated"),
    ("one byte", b"\x01", "truncated"),
    ("format 2", payload(prefix=b"\x02\x00"), "version"),
    ("unknown flag", payload(prefix=b"\x01\x80"), "malformed"),
    ("short body header", b"\x01\x00" + b"\x00" * 15, "truncated"),
    ("other size", payload(size=SIZE + 1), "size_mismatch"),
    ("nnz above size", payload(nnz=SIZE + 1), "malformed"),
    ("reserved byte", payload(reserved=1), "malformed"),
    ("index coding 9", payload(index=9), "unknown_type"),
    ("value coding 9", payload(value=9), "unknown_type"),
    ("group mode 7", payload(value=2, groups=7, rest=b""), "unknown_type"),
    ("index section past end", payload(index_bytes=b"\x03\x04", rest=b"")[:-1], "truncated"),
    ("values cut short", payload()[:-1], "truncated"),
    ("byte after values", payload() + b"\x00", "trailing_bytes"),
    ("varint stream ends mid-value", payload(index_bytes=b"\x03\x84"), "truncated"),
    ("fewer varints than nnz", payload(nnz=2, index_bytes=b"\x83\x01"), "malformed"),
    ("too few index bytes", payload(nnz=3, index_bytes=b"\x01\x01", rest=F32.pack(1) * 3), "malformed"),
    ("overlong varint", payload(index_bytes=b"\x03\x84\x00"), "malformed"),
    ("six-byte varint", payload(nnz=1, index_bytes=b"\x80" * 5 + b"\x01", rest=F32.pack(1)), "malformed"),
    ("first index out of range", payload(index_bytes=b"\x10\x00"), "index_out_of_range"),
    ("gap runs past the end", payload(index_bytes=b"\x03\x0c"), "index_out_of_range"),
    ("ALL with nnz < size", payload(index=0, index_bytes=b""), "malformed"),
    ("ALL with index bytes", payload(index=0, nnz=SIZE, rest=F32.pack(0) * SIZE), "malformed"),
    ("bitmap of wrong length", payload(index=2, index_bytes=b"\x10"), "malformed"),
    ("bitmap popcount != nnz", payload(index=2, index_bytes=b"\x10\x81"), "malformed"),
    ("seeded section not 8 bytes", payload(index=3, index_bytes=b"\x01"), "malformed"),
    ("NaN value", payload(rest=F32.pack(1.0) + b"\x00\x00\xc0\x7f"), "non_finite"),
    ("infinite value", payload(rest=F32.pack(1.0) + b"\x00\x00\x80\x7f"), "non_finite"),
    ("fp16 infinity", payload(value=1, rest=b"\x00\x3c\x00\x7c"), "non_finite"),
    ("fp32 with scale groups", payload(groups=1, rest=struct.pack("<I", 4) + F32.pack(1) * 3), "malformed"),
    ("int8 code -128", payload(value=2, groups=1, rest=int8([1, -128])), "malformed"),
    ("NaN scale", payload(value=2, groups=1, rest=BLOCK + b"\x00\x00\xc0\x7f\x01\x02"), "non_finite"),
    ("negative scale", payload(value=2, groups=1, rest=int8([1, 2], scale=-1.0)), "malformed"),
    ("scale that overflows", payload(value=2, groups=1, rest=int8([127, 2], scale=3e37)), "non_finite"),
    ("block size 0", payload(value=2, groups=1, rest=int8([1, 2], block=0)), "malformed"),
    ("block size missing", payload(value=2, groups=1, rest=b"\x01"), "truncated"),
    ("group counts != nnz", payload(value=2, groups=2, rest=struct.pack("<III", 1, 3, 0) + b"\x01\x02"),
     "malformed"),
    ("more groups than size", payload(value=2, groups=2, rest=struct.pack("<I", SIZE + 1)), "malformed"),
    ("group counts cut short", payload(value=2, groups=2, rest=struct.pack("<II", 3, 1)), "truncated"),
    ("int4 nibble 0", payload(value=3, groups=1, rest=BLOCK + F32.pack(1) + b"\x09"), "malformed"),
    ("int4 padding nibble", payload(nnz=1, index_bytes=b"\x03", value=3, groups=1,
                                    rest=BLOCK + F32.pack(1) + b"\x99"), "malformed"),
    ("sign padding bits", payload(value=4, groups=1, rest=BLOCK + F32.pack(1) + b"\xc1"), "malformed"),
    ("zstd without raw length", b"\x01\x01\x00", "truncated"),
    ("zstd garbage", zstd_payload(payload()[2:], frame=b"garbage!"), "decompression"),
    ("zstd size lie", zstd_payload(payload()[2:], declared=len(payload()) - 1), "decompression"),
    ("zstd without content size", zstd_payload(
        payload()[2:], frame=zstandard.ZstdCompressor(write_content_size=False).compress(payload()[2:])),
     "decompression"),
    ("zstd frame cut short", zstd_payload(payload()[2:])[:-2], "truncated"),
    ("bytes after zstd frame", zstd_payload(payload()[2:]) + b"\x00", "trailing_bytes"),
    ("zstd body declared too big", zstd_payload(b"", declared=max_payload_bytes(SIZE) + 1), "too_large"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "data", "reason"), CASES, ids=[case[0] for case in CASES])
def test_bad_payload_raises_protocol_error_with_reason(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_update(data, SIZE, LIMITS)
    assert caught.value.reason == reason, caught.value


def test_payload_longer_than_the_bound_for_its_size_is_too_large() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_update(b"\x01\x00" + b"\x00" * max_payload_bytes(SIZE), SIZE, LIMITS)
    assert caught.value.reason == "too_large"


def test_vector_size_above_the_manifest_limit_is_too_large() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_update(payload(size=SIZE + 1), SIZE + 1, LIMITS)
    assert caught.value.reason == "too_large"


def test_zstd_bomb_is_refused_before_decompressing() -> None:
    # 100 MB of zeros compresses to a few KB; the payload's declared size and the frame's both give it away.
    bomb = zstandard.ZstdCompressor(write_content_size=True).compress(b"\x00" * 100_000_000)
    with pytest.raises(ProtocolError) as caught:
        decode_update(zstd_payload(b"", declared=100_000_000, frame=bomb), SIZE, LIMITS)
    assert caught.value.reason == "too_large"
    with pytest.raises(ProtocolError) as caught:
        decode_update(zstd_payload(b"\x00" * 64, frame=bomb), SIZE, LIMITS)
    assert caught.value.reason == "decompression"


def test_valid_payload_of_every_chain_decodes() -> None:
    delta = np.linspace(-1, 1, SIZE, dtype=np.float32)
    for chain in ["dense", "fp16", "topk:3+int8", "topk:3+int4", "topk:3+sign", "randk:3", "topk:3+zstd"]:
        assert decode_update(UpdateEncoder(chain, SIZE).encode(delta), SIZE, LIMITS).size == SIZE
