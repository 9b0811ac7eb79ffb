"""Property tests over hostile input: only ProtocolError ever escapes, and memory stays O(vector size).

Mutations of valid payloads reach deep into the decoder (past the magic and the checksum), random bytes
cover the shallow paths. Peak memory is measured with tracemalloc, which numpy reports its buffers to.
The million-input coverage-guided run is benchmarks/fuzz_protocol.py (atheris).
"""

from __future__ import annotations

import contextlib
import struct
import tracemalloc

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fmfl.protocol import (
    ClientUpdate,
    Limits,
    ProtocolError,
    Reassembler,
    SparseUpdate,
    UpdateEncoder,
    decode_message,
    decode_update,
    parse_chunk,
    split_message,
)

CHAINS = [
    "dense", "fp16", "topk:0.01+int8+ef", "topk:0.2+int4", "topk:0.05+sign:sr", "randk:0.1+int8",
    "int8:per_tensor", "topk:0.5,per_tensor+int4:per_tensor", "topk:0.02+int8+zstd", "fp16+zstd",
]  # fmt: skip
_HOSTILE_U32 = st.sampled_from([0, 1, 2, 255, 2**16, 2**31 - 1, 2**31, 2**32 - 1])


@st.composite
def encoded(draw: st.DrawFn) -> tuple[bytes, int]:
    size = draw(st.integers(1, 3000))
    chain = draw(st.sampled_from(CHAINS))
    first = draw(st.integers(1, size)) if size > 1 else 1
    tensor_sizes = [first, size - first] if first < size else [size]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    delta = rng.standard_t(3, size).astype(np.float32)
    return UpdateEncoder(chain, size, tensor_sizes, seed=1).encode(delta), size


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, int]:
    payload, size = draw(encoded())
    data = bytearray(payload)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "u32", "delete"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[at] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:  # overwrite a header-sized field with an extreme value (lengths, counts, sizes)
            offset = draw(st.sampled_from([2, 6, 10, 14, 18, at]))
            data[offset : offset + 4] = struct.pack("<I", draw(_HOSTILE_U32))
    return bytes(data), size


def _check_invariants(update: SparseUpdate, size: int) -> None:
    assert update.size == size
    assert update.indices.dtype == np.int64
    assert update.values.dtype == np.float32
    assert update.indices.shape == update.values.shape
    if update.nnz:
        assert update.indices[0] >= 0
        assert update.indices[-1] < size
        assert np.all(np.diff(update.indices) > 0)
    assert np.isfinite(update.values).all()


def _decode_within_memory_bound(payload: bytes, size: int) -> SparseUpdate | None:
    tracemalloc.start()
    try:
        return decode_update(payload, size, Limits.for_vector_size(size))
    except ProtocolError:
        return None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        # The bound documented in docs/protocol.md: O(size), plus a copy of the payload's zstd frame.
        assert peak <= 48 * size + 2 * len(payload) + 256 * 1024, (peak, size, len(payload))


@given(encoded())
@settings(max_examples=60)
def test_valid_payloads_decode_within_the_memory_bound(case: tuple[bytes, int]) -> None:
    payload, size = case
    update = _decode_within_memory_bound(payload, size)
    assert update is not None
    _check_invariants(update, size)


@given(mutated())
@settings(max_examples=400)
def test_mutated_payloads_raise_only_protocol_error(case: tuple[bytes, int]) -> None:
    payload, size = case
    update = _decode_within_memory_bound(payload, size)
    if update is not None:
        _check_invariants(update, size)


@given(st.binary(max_size=600), st.integers(1, 5000))
@settings(max_examples=300)
def test_random_bytes_raise_only_protocol_error(data: bytes, size: int) -> None:
    with contextlib.suppress(ProtocolError):
        _check_invariants(decode_update(data, size, Limits.for_vector_size(size)), size)


def _message() -> bytes:
    return ClientUpdate(
        federation="f", bundle_id="b", round=1, model_version=1, client_id="dev-1", num_samples=3,
        update_id="u1", payload=UpdateEncoder("topk:5+int8", 100).encode(np.ones(100, dtype=np.float32)),
        metrics={"loss": 1.0},
    ).to_bytes()  # fmt: skip


MESSAGE = _message()


@given(st.integers(0, len(MESSAGE) - 1), st.integers(0, 255), st.integers(0, len(MESSAGE)))
@settings(max_examples=300)
def test_mutated_messages_raise_only_protocol_error(at: int, value: int, cut: int) -> None:
    data = bytearray(MESSAGE)
    data[at] = value
    for candidate in (bytes(data), bytes(data[:cut]), MESSAGE[:cut]):
        with contextlib.suppress(ProtocolError):
            decode_message(candidate, Limits.for_vector_size(100))


@given(st.binary(max_size=400))
def test_random_bytes_as_a_message_or_chunk_raise_only_protocol_error(data: bytes) -> None:
    for parse in (lambda: decode_message(data, Limits.for_vector_size(100)), lambda: parse_chunk(data)):
        with contextlib.suppress(ProtocolError):
            parse()


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 200), st.integers(0, 255)), max_size=30))
@settings(max_examples=150)
def test_reassembler_survives_corrupted_streams_with_bounded_memory(
    edits: list[tuple[int, int, int]],
) -> None:
    messages = [bytes([n]) * 900 for n in range(3)]
    chunks = [c for m in messages for c in split_message(m, 300)]
    reassembler = Reassembler(max_total_bytes=2000, max_pending_messages=2)
    for which, at, value in edits:
        packet = bytearray(chunks[which % len(chunks)])
        packet[at % len(packet)] = value
        with contextlib.suppress(ProtocolError):
            reassembler.add(bytes(packet))
        assert reassembler.reserved_bytes <= 2000
        assert reassembler.pending_messages <= 2
    results = [reassembler.add(chunk) for chunk in split_message(messages[0], 300)]
    assert messages[0] in results  # intact chunks still reassemble afterwards
