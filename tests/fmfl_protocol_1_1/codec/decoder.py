"""decode_update: payload bytes from an untrusted peer to a :class:`SparseUpdate`, or ProtocolError.

Every section length is checked against the bytes present and against ``size`` before anything of that
length is allocated; peak memory is ``O(size)`` whatever the input (about ``40 * size`` bytes at worst).
"""

from __future__ import annotations

import numpy as np

from fmfl_protocol_1_1.codec import compression
from fmfl_protocol_1_1.codec.base import ValueCoding
from fmfl_protocol_1_1.codec.dense import decode_dense, dense_value_bytes
from fmfl_protocol_1_1.codec.groups import block_counts
from fmfl_protocol_1_1.codec.index_coding import IndexCoding, decode_indices
from fmfl_protocol_1_1.codec.linear_quant import decode_int, int_value_bytes
from fmfl_protocol_1_1.codec.payload import (
    BODY_HEADER,
    FLAG_ZSTD,
    PAYLOAD_FORMAT,
    PREFIX,
    RAW_LENGTH,
    U32,
    GroupMode,
)
from fmfl_protocol_1_1.codec.sign import decode_sign, sign_value_bytes
from fmfl_protocol_1_1.codec.sparse import SparseUpdate
from fmfl_protocol_1_1.errors import ProtocolError, Reason
from fmfl_protocol_1_1.limits import Limits, max_payload_bytes

_INDEX_CODINGS = frozenset(int(c) for c in IndexCoding)
_VALUE_CODINGS = frozenset(int(c) for c in ValueCoding)


def decode_update(payload: bytes | bytearray | memoryview, size: int, limits: Limits) -> SparseUpdate:
    """Decode an update payload for a vector of ``size`` floats.

    Raises :class:`ProtocolError` (and nothing else) for any payload that is not exactly a valid encoding:
    wrong format, truncated, trailing bytes, size mismatch, out-of-range indices, NaN/Inf, bombs.
    """
    if not 1 <= size <= limits.max_vector_size:
        raise ProtocolError(Reason.TOO_LARGE, f"vector size {size} outside [1, {limits.max_vector_size}]")
    view = memoryview(payload).cast("B")
    bound = max_payload_bytes(size)
    if view.nbytes > bound:
        raise ProtocolError(Reason.TOO_LARGE, f"payload of {view.nbytes} bytes > {bound} for size {size}")
    if view.nbytes < PREFIX.size:
        raise ProtocolError(Reason.TRUNCATED, "payload shorter than its 2-byte prefix")
    fmt, flags = PREFIX.unpack_from(view)
    if fmt != PAYLOAD_FORMAT:
        raise ProtocolError(Reason.VERSION, f"payload format {fmt}, this decoder reads {PAYLOAD_FORMAT}")
    if flags & ~FLAG_ZSTD:
        raise ProtocolError(Reason.MALFORMED, f"unknown payload flags {flags:#04x}")
    if flags & FLAG_ZSTD:
        if view.nbytes < PREFIX.size + RAW_LENGTH.size:
            raise ProtocolError(Reason.TRUNCATED, "zstd payload without its raw length")
        (raw_length,) = RAW_LENGTH.unpack_from(view, PREFIX.size)
        body = memoryview(compression.decompress(view[PREFIX.size + RAW_LENGTH.size :], raw_length, bound))
    else:
        body = view[PREFIX.size :]
    # Overflow to infinity is detected and reported below; never let np.seterr turn it into an exception.
    with np.errstate(all="ignore"):
        return _decode_body(body, size)


def _decode_body(body: memoryview, size: int) -> SparseUpdate:
    if body.nbytes < BODY_HEADER.size:
        raise ProtocolError(Reason.TRUNCATED, "payload body shorter than its 16-byte header")
    header = BODY_HEADER.unpack_from(body)
    declared, nnz, index_coding, value_coding, group_mode, reserved, index_length = header
    if declared != size:
        raise ProtocolError(Reason.SIZE_MISMATCH, f"payload is for size {declared}, expected {size}")
    if nnz > size:
        raise ProtocolError(Reason.MALFORMED, f"nnz {nnz} > size {size}")
    if reserved:
        raise ProtocolError(Reason.MALFORMED, "reserved header byte is not zero")
    if index_coding not in _INDEX_CODINGS:
        raise ProtocolError(Reason.UNKNOWN_TYPE, f"unknown index coding {index_coding}")
    if value_coding not in _VALUE_CODINGS:
        raise ProtocolError(Reason.UNKNOWN_TYPE, f"unknown value coding {value_coding}")
    cursor = BODY_HEADER.size
    index_section = _take(body, cursor, index_length, "index section")
    cursor += index_length

    grouped = value_coding in (ValueCoding.INT8, ValueCoding.INT4, ValueCoding.SIGN)
    if not grouped:
        if group_mode != GroupMode.NONE:
            raise ProtocolError(Reason.MALFORMED, "fp32/fp16 values take no scale groups")
        counts = np.zeros(0, dtype=np.int64)
    elif group_mode == GroupMode.BLOCK:
        (block,) = U32.unpack(_take(body, cursor, U32.size, "block size"))
        cursor += U32.size
        if block == 0:
            raise ProtocolError(Reason.MALFORMED, "block size 0")
        counts = block_counts(nnz, block)
    elif group_mode == GroupMode.EXPLICIT:
        (groups,) = U32.unpack(_take(body, cursor, U32.size, "group count"))
        cursor += U32.size
        if groups > size:
            raise ProtocolError(Reason.MALFORMED, f"{groups} scale groups for a vector of {size}")
        raw_counts = _take(body, cursor, 4 * groups, "group counts")
        cursor += 4 * groups
        counts = np.frombuffer(raw_counts, dtype="<u4").astype(np.int64)
        if int(counts.sum()) != nnz:
            raise ProtocolError(Reason.MALFORMED, f"group counts sum to {int(counts.sum())}, nnz is {nnz}")
    else:
        raise ProtocolError(Reason.UNKNOWN_TYPE, f"group mode {group_mode} for a quantized coding")

    scales = np.frombuffer(_take(body, cursor, 4 * counts.size, "scales"), dtype="<f4").astype(np.float32)
    cursor += 4 * counts.size
    if not np.isfinite(scales).all():
        raise ProtocolError(Reason.NON_FINITE, "a scale is NaN or infinite")
    if np.any(scales < 0):
        raise ProtocolError(Reason.MALFORMED, "a scale is negative")

    if value_coding in (ValueCoding.FP32, ValueCoding.FP16):
        value_length = dense_value_bytes(value_coding, nnz)
    elif value_coding == ValueCoding.SIGN:
        value_length = sign_value_bytes(nnz)
    else:
        value_length = int_value_bytes(value_coding, nnz)
    value_section = _take(body, cursor, value_length, "values")
    if cursor + value_length != body.nbytes:
        extra = body.nbytes - cursor - value_length
        raise ProtocolError(Reason.TRAILING_BYTES, f"{extra} bytes after the values")

    indices = decode_indices(index_coding, index_section, size, nnz)
    if value_coding in (ValueCoding.FP32, ValueCoding.FP16):
        values = decode_dense(value_coding, value_section, nnz)
    elif value_coding == ValueCoding.SIGN:
        values = decode_sign(value_section, nnz, scales, counts)
    else:
        values = decode_int(value_coding, value_section, nnz, scales, counts)
    if not np.isfinite(values).all():
        raise ProtocolError(Reason.NON_FINITE, "a value is NaN or infinite")
    indices.flags.writeable = False
    values.flags.writeable = False
    return SparseUpdate(indices=indices, values=values, size=size)


def _take(body: memoryview, start: int, length: int, what: str) -> memoryview:
    if start + length > body.nbytes:
        raise ProtocolError(Reason.TRUNCATED, f"{what} runs past the end of the payload")
    return body[start : start + length]
