"""The binary envelope of every fmfl message: magic, version, type, lengths, JSON metadata, payload, CRC-32.

    offset  size  field
    0       4     magic "FMFL" (46 4D 46 4C)
    4       1     major version (1)
    5       1     minor version (1; 1.1 adds the optional signature keys of ClientUpdate)
    6       1     message type (MessageType)
    7       1     flags (0; reserved)
    8       4     metadata length M (u32 LE)
    12      4     payload length P (u32 LE)
    16      M     metadata: a UTF-8 JSON object (RFC 8259)
    16+M    P     payload: binary (an encoded update, or empty)
    16+M+P  4     CRC-32 (ISO-HDLC, as zlib.crc32 / java.util.zip.CRC32) of bytes [0, 16+M+P), u32 LE

Versioning: a reader rejects another *major* version (reason ``version``); it accepts any *minor* version of
its major, ignoring metadata keys it does not know (minor versions only add optional keys). Senders write
compact JSON with sorted keys; readers accept any JSON that passes the checks below.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from enum import IntEnum
from typing import Any, NoReturn

from fmfl_protocol_1_1.errors import ProtocolError, Reason
from fmfl_protocol_1_1.limits import Limits

MAGIC = b"FMFL"
MAJOR_VERSION = 1
MINOR_VERSION = 1
HEADER = struct.Struct("<4sBBBBII")
CRC = struct.Struct("<I")
OVERHEAD = HEADER.size + CRC.size


class MessageType(IntEnum):
    HELLO = 1
    STATUS = 2
    TASK = 3
    GLOBAL_MODEL = 4
    UPDATE = 5
    ACK = 6


def canonical_json(value: Any) -> bytes:
    """The one JSON form fmfl writes: sorted keys, no spaces, ASCII only, no NaN or infinity."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def frame(message_type: MessageType, metadata: dict[str, Any], payload: bytes = b"") -> bytes:
    """The framed message: canonical JSON metadata (sorted keys, no spaces, ASCII), payload, CRC-32."""
    meta_bytes = canonical_json(metadata)
    head = HEADER.pack(MAGIC, MAJOR_VERSION, MINOR_VERSION, message_type, 0, len(meta_bytes), len(payload))
    body = b"".join((head, meta_bytes, payload))
    return body + CRC.pack(zlib.crc32(body))


def unframe(
    data: bytes | bytearray | memoryview, limits: Limits
) -> tuple[MessageType, dict[str, Any], bytes]:
    """``(type, metadata, payload)`` of a framed message, or :class:`ProtocolError`."""
    view = memoryview(data).cast("B")
    if view.nbytes > limits.max_message_bytes:
        raise ProtocolError(Reason.TOO_LARGE, f"message of {view.nbytes} bytes > {limits.max_message_bytes}")
    if view.nbytes < OVERHEAD:
        raise ProtocolError(Reason.TRUNCATED, f"message of {view.nbytes} bytes is shorter than {OVERHEAD}")
    magic, major, _minor, type_code, flags, meta_length, payload_length = HEADER.unpack_from(view)
    if magic != MAGIC:
        raise ProtocolError(Reason.BAD_MAGIC, f"magic {bytes(magic)!r} is not {MAGIC!r}")
    if major != MAJOR_VERSION:
        raise ProtocolError(Reason.VERSION, f"major version {major}; this peer speaks {MAJOR_VERSION}")
    if meta_length > limits.max_metadata_bytes:
        raise ProtocolError(
            Reason.TOO_LARGE, f"metadata of {meta_length} bytes > {limits.max_metadata_bytes}"
        )
    expected = OVERHEAD + meta_length + payload_length
    if view.nbytes < expected:
        raise ProtocolError(Reason.TRUNCATED, f"message of {view.nbytes} bytes, header declares {expected}")
    if view.nbytes > expected:
        raise ProtocolError(Reason.TRAILING_BYTES, f"{view.nbytes - expected} bytes after the checksum")
    (crc,) = CRC.unpack_from(view, expected - CRC.size)
    if zlib.crc32(view[: expected - CRC.size]) != crc:
        raise ProtocolError(Reason.CHECKSUM, "CRC-32 mismatch")
    if flags:
        raise ProtocolError(Reason.BAD_METADATA, f"reserved flags {flags:#04x} are set")
    try:
        message_type = MessageType(type_code)
    except ValueError:
        raise ProtocolError(Reason.UNKNOWN_TYPE, f"unknown message type {type_code}") from None
    meta_end = HEADER.size + meta_length
    metadata = parse_metadata(view[HEADER.size : meta_end])
    return message_type, metadata, bytes(view[meta_end : meta_end + payload_length])


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} overflows")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return out


def parse_metadata(raw: memoryview) -> dict[str, Any]:
    """A JSON object from UTF-8 bytes: no NaN/Infinity, no duplicate keys, no overflowing numbers."""
    try:
        text = bytes(raw).decode("utf-8")
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ProtocolError(Reason.BAD_METADATA, f"metadata is not valid JSON: {str(error)[:200]}") from None
    if not isinstance(value, dict):
        raise ProtocolError(Reason.BAD_METADATA, "metadata must be a JSON object")
    return value
