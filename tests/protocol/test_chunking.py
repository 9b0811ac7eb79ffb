"""Chunking: split, reassemble in any order, resume, bounded memory, and every rejection."""

from __future__ import annotations

import hashlib
import os
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmfl.protocol import ProtocolError, Reassembler, parse_chunk, split_message
from fmfl.protocol.chunking import CHUNK_HEADER, CHUNK_OVERHEAD

MESSAGE = os.urandom(10_000)


def test_chunks_respect_the_packet_size_and_are_balanced() -> None:
    chunks = split_message(MESSAGE, 1024)
    assert all(len(c) <= 1024 for c in chunks)
    assert len(chunks) == -(-len(MESSAGE) // (1024 - CHUNK_OVERHEAD))
    sizes = {len(c) for c in chunks[:-1]}
    assert len(sizes) == 1


def test_default_packet_size_is_the_aws_iot_limit() -> None:
    chunks = split_message(os.urandom(300_000))
    assert len(chunks) == 3
    assert max(map(len, chunks)) <= 128 * 1024


def test_empty_and_tiny_messages_are_one_chunk() -> None:
    for message in (b"", b"x"):
        (chunk,) = split_message(message)
        assert Reassembler(100).add(chunk) == message


@given(st.binary(max_size=3000), st.integers(CHUNK_OVERHEAD + 1, 600), st.randoms(use_true_random=False))
@settings(max_examples=50)
def test_any_order_with_duplicates_reassembles(message: bytes, packet: int, rng: object) -> None:
    chunks = split_message(message, packet)
    shuffled = chunks + chunks[: len(chunks) // 2]
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    reassembler = Reassembler(10_000)
    results = [r for r in (reassembler.add(c) for c in shuffled) if r is not None]
    assert results[0] == message
    assert reassembler.pending_messages <= 1  # late duplicates may open a new entry, which eviction bounds


def test_transfer_resumes_after_an_interruption() -> None:
    chunks = split_message(MESSAGE, 1024)
    reassembler = Reassembler(100_000)
    message_id = hashlib.sha256(MESSAGE).digest()[:16]
    for chunk in chunks[:5]:
        assert reassembler.add(chunk) is None
    assert reassembler.missing(message_id) == list(range(5, len(chunks)))
    # The connection drops; the sender (or the retained topic) delivers everything again.
    outputs = [reassembler.add(c) for c in chunks]
    assert outputs[-1] == MESSAGE
    assert reassembler.pending_messages == 0


def test_sources_are_kept_apart() -> None:
    chunks = split_message(MESSAGE, 1024)
    reassembler = Reassembler(100_000)
    for chunk in chunks[:-1]:
        reassembler.add(chunk, source="a")
    assert reassembler.add(chunks[-1], source="b") is None
    assert reassembler.add(chunks[-1], source="a") == MESSAGE


def test_memory_stays_bounded_by_evicting_the_oldest_incomplete_message() -> None:
    reassembler = Reassembler(max_total_bytes=25_000, max_pending_messages=2)
    first, second, third = (split_message(os.urandom(10_000), 1024) for _ in range(3))
    reassembler.add(first[0])
    reassembler.add(second[0])
    reassembler.add(third[0])  # evicts `first`
    assert reassembler.pending_messages == 2
    assert reassembler.evicted == 1
    assert reassembler.reserved_bytes <= 25_000
    for chunk in first[1:]:
        reassembler.add(chunk)  # re-opens `first`, evicting `second`
    assert reassembler.add(first[0]) is not None


def test_message_larger_than_the_bound_is_refused_at_its_first_chunk() -> None:
    with pytest.raises(ProtocolError) as caught:
        Reassembler(max_total_bytes=5_000).add(split_message(MESSAGE, 1024)[3])
    assert caught.value.reason == "too_large"


def _rechunk(chunk: bytes, **changes: object) -> bytes:
    names = ("magic", "major", "minor", "flags", "message_id", "index", "count", "total", "offset", "digest")
    fields = dict(zip(names, CHUNK_HEADER.unpack_from(chunk), strict=True))
    fields.update(changes)
    data = changes.pop("data", chunk[CHUNK_HEADER.size : -4])
    body = CHUNK_HEADER.pack(*(fields[n] for n in names)) + data  # type: ignore[operator]
    return body + struct.pack("<I", zlib.crc32(body))


CHUNKS = split_message(MESSAGE, 1024)
CASES = [
    ("empty", b"", "truncated"),
    ("header only", CHUNKS[0][:CHUNK_OVERHEAD - 1], "truncated"),
    ("bad magic", _rechunk(CHUNKS[0], magic=b"FMFL"), "bad_magic"),
    ("major 2", _rechunk(CHUNKS[0], major=2), "version"),
    ("bit flip", CHUNKS[0][:100] + bytes([CHUNKS[0][100] ^ 4]) + CHUNKS[0][101:], "checksum"),
    ("flags", _rechunk(CHUNKS[0], flags=1), "malformed"),
    ("index >= count", _rechunk(CHUNKS[0], index=len(CHUNKS)), "malformed"),
    ("zero count", _rechunk(CHUNKS[0], count=0), "malformed"),
    ("count leaves empty chunks", _rechunk(CHUNKS[0], count=20_000), "malformed"),
    ("wrong offset", _rechunk(CHUNKS[1], offset=5), "malformed"),
    ("short data", _rechunk(CHUNKS[1], data=CHUNKS[1][CHUNK_HEADER.size : -5]), "malformed"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "packet", "reason"), CASES, ids=[c[0] for c in CASES])
def test_bad_chunks_raise_protocol_error_with_reason(name: str, packet: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_chunk(packet)
    assert caught.value.reason == reason, caught.value


def test_chunks_that_disagree_are_chunk_mismatch_and_keep_the_transfer() -> None:
    reassembler = Reassembler(100_000)
    reassembler.add(CHUNKS[0])
    with pytest.raises(ProtocolError) as caught:
        reassembler.add(_rechunk(CHUNKS[1], digest=b"\x00" * 32))
    assert caught.value.reason == "chunk_mismatch"
    forged = bytearray(CHUNKS[0][CHUNK_HEADER.size : -4])
    forged[0] ^= 1
    with pytest.raises(ProtocolError) as caught:
        reassembler.add(_rechunk(CHUNKS[0], data=bytes(forged)))
    assert caught.value.reason == "chunk_mismatch"
    results = [reassembler.add(c) for c in CHUNKS[1:]]
    assert results[-1] == MESSAGE


def test_hash_mismatch_on_reassembly() -> None:
    forged_data = bytearray(CHUNKS[-1][CHUNK_HEADER.size : -4])
    forged_data[-1] ^= 1
    reassembler = Reassembler(100_000)
    for chunk in CHUNKS[:-1]:
        reassembler.add(chunk)
    with pytest.raises(ProtocolError) as caught:
        reassembler.add(_rechunk(CHUNKS[-1], data=bytes(forged_data)))
    assert caught.value.reason == "hash_mismatch"
    assert reassembler.pending_messages == 0
    assert reassembler.reserved_bytes == 0


def test_split_argument_checks() -> None:
    with pytest.raises(ValueError, match="max_packet_bytes"):
        split_message(b"x", CHUNK_OVERHEAD)
    with pytest.raises(ValueError, match="16 bytes"):
        split_message(b"x", message_id=b"short")
    with pytest.raises(ValueError, match="positive"):
        Reassembler(0)
