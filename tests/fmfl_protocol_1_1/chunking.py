"""Splitting any message into packets of at most ``max_packet_bytes``, and reassembling them safely.

Broker limits: AWS IoT Core accepts 128 KB per MQTT message, Mosquitto 2.1 2 MB by default. Each chunk:

    offset  size  field
    0       4     magic "FMFC" (46 4D 46 43)
    4       1     major version (1)
    5       1     minor version (0)
    6       2     flags (0; reserved), u16 LE
    8       16    message id (the first 16 bytes of the message's SHA-256, unless the sender chose one)
    24      4     chunk index i (u32 LE), 0 <= i < count
    28      4     chunk count (u32 LE), >= 1
    32      4     total message length T (u32 LE)
    36      4     offset of this chunk's data = i * D, where D = ceil(T / count) (u32 LE)
    40      32    SHA-256 of the whole message
    72      n     data: message bytes [i * D, min((i + 1) * D, T)); every chunk holds at least one byte
                  (count = 1 and n = 0 only for an empty message)
    72+n    4     CRC-32 (zlib) of bytes [0, 72+n), u32 LE

A receiver keeps chunks per (source, message id) in any order, ignores duplicates, and returns the message
once every index has arrived and the SHA-256 matches. Memory is bounded: a message longer than
``max_total_bytes`` is refused at its first chunk, and when the buffered bytes or the number of incomplete
messages would pass their bounds the least recently active incomplete message is dropped (its sender resends;
MQTT QoS 1 or a retained topic makes the transfer resumable, because chunks already held are kept).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

from fmfl_protocol_1_1.errors import ProtocolError, Reason

CHUNK_MAGIC = b"FMFC"
CHUNK_MAJOR = 1
CHUNK_MINOR = 0
CHUNK_HEADER = struct.Struct("<4sBBH16sIIII32s")
CHUNK_CRC = struct.Struct("<I")
CHUNK_OVERHEAD = CHUNK_HEADER.size + CHUNK_CRC.size
DEFAULT_MAX_PACKET_BYTES = 128 * 1024
MIN_PACKET_BYTES = CHUNK_OVERHEAD + 1
MAX_MESSAGE_BYTES = 2**32 - 1


def split_message(
    data: bytes, max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES, message_id: bytes | None = None
) -> list[bytes]:
    """``data`` as chunks of at most ``max_packet_bytes`` each (balanced, so all but the last are equal)."""
    if max_packet_bytes < MIN_PACKET_BYTES:
        raise ValueError(f"max_packet_bytes must be >= {MIN_PACKET_BYTES}, got {max_packet_bytes}")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    digest = hashlib.sha256(data).digest()
    if message_id is None:
        message_id = digest[:16]
    if len(message_id) != 16:
        raise ValueError("message_id must be 16 bytes")
    capacity = max_packet_bytes - CHUNK_OVERHEAD
    count = max(1, -(-len(data) // capacity))
    step = -(-len(data) // count)
    chunks = []
    for index in range(count):
        start = index * step
        piece = data[start : start + step]
        head = CHUNK_HEADER.pack(
            CHUNK_MAGIC, CHUNK_MAJOR, CHUNK_MINOR, 0, message_id, index, count, len(data), start, digest
        )
        body = head + piece
        chunks.append(body + CHUNK_CRC.pack(zlib.crc32(body)))
    return chunks


@dataclass(frozen=True)
class Chunk:
    """One parsed, CRC-checked chunk."""

    message_id: bytes
    index: int
    count: int
    total: int
    digest: bytes
    data: bytes


def parse_chunk(packet: bytes | bytearray | memoryview, max_total_bytes: int = MAX_MESSAGE_BYTES) -> Chunk:
    """A chunk whose CRC and layout are valid, or :class:`ProtocolError`."""
    view = memoryview(packet).cast("B")
    if view.nbytes < CHUNK_OVERHEAD:
        raise ProtocolError(
            Reason.TRUNCATED, f"chunk of {view.nbytes} bytes is shorter than {CHUNK_OVERHEAD}"
        )
    magic, major, _minor, flags, message_id, index, count, total, offset, digest = CHUNK_HEADER.unpack_from(
        view
    )
    if magic != CHUNK_MAGIC:
        raise ProtocolError(Reason.BAD_MAGIC, f"chunk magic {bytes(magic)!r} is not {CHUNK_MAGIC!r}")
    if major != CHUNK_MAJOR:
        raise ProtocolError(Reason.VERSION, f"chunk major version {major}; this peer speaks {CHUNK_MAJOR}")
    (crc,) = CHUNK_CRC.unpack_from(view, view.nbytes - CHUNK_CRC.size)
    if zlib.crc32(view[: view.nbytes - CHUNK_CRC.size]) != crc:
        raise ProtocolError(Reason.CHECKSUM, "chunk CRC-32 mismatch")
    if flags:
        raise ProtocolError(Reason.MALFORMED, f"reserved chunk flags {flags:#06x} are set")
    if total > max_total_bytes:
        raise ProtocolError(Reason.TOO_LARGE, f"message of {total} bytes > {max_total_bytes}")
    if count < 1 or index >= count:
        raise ProtocolError(Reason.MALFORMED, f"chunk index {index} of count {count}")
    step = -(-total // count)
    if total and (count - 1) * step >= total:
        raise ProtocolError(Reason.MALFORMED, f"{count} chunks for {total} bytes leave empty chunks")
    if not total and count != 1:
        raise ProtocolError(Reason.MALFORMED, "an empty message is one chunk")
    expected = min(step, total - index * step)
    data = bytes(view[CHUNK_HEADER.size : view.nbytes - CHUNK_CRC.size])
    if offset != index * step or len(data) != expected:
        raise ProtocolError(
            Reason.MALFORMED, f"chunk {index}/{count} has {len(data)} bytes at {offset}, expected {expected}"
        )
    return Chunk(bytes(message_id), index, count, total, bytes(digest), data)


def _verified(digest: bytes, message: bytes) -> bytes:
    if hashlib.sha256(message).digest() != digest:
        raise ProtocolError(Reason.HASH_MISMATCH, "reassembled message does not match its SHA-256")
    return message


@dataclass
class _Pending:
    count: int
    total: int
    digest: bytes
    parts: dict[int, bytes] = field(default_factory=dict)


class Reassembler:
    """Collects chunks into messages with bounded memory (see the module docstring).

    ``add`` returns the message when its last missing chunk arrives and its SHA-256 matches, else None.
    Chunks are keyed by ``(source, message id)``; pass the MQTT topic as ``source`` so that one client cannot
    interfere with another's transfer. A message sent again in full is returned again (QoS 1 may duplicate,
    and a sender whose ack was lost resends): deduplicate at the message level (``update_id``).
    """

    def __init__(self, max_total_bytes: int, max_pending_messages: int = 16) -> None:
        if max_total_bytes < 1 or max_pending_messages < 1:
            raise ValueError("max_total_bytes and max_pending_messages must be positive")
        self.max_total_bytes = max_total_bytes
        self.max_pending_messages = max_pending_messages
        self._pending: OrderedDict[tuple[str, bytes], _Pending] = OrderedDict()
        self._reserved = 0
        self.evicted = 0

    @property
    def pending_messages(self) -> int:
        return len(self._pending)

    @property
    def reserved_bytes(self) -> int:
        """Bytes reserved for incomplete messages (their declared totals); never above ``max_total_bytes``."""
        return self._reserved

    def missing(self, message_id: bytes, source: str = "") -> list[int]:
        """Chunk indices not yet received for a pending message ([] if unknown)."""
        pending = self._pending.get((source, message_id))
        if pending is None:
            return []
        return [i for i in range(pending.count) if i not in pending.parts]

    def discard(self, message_id: bytes, source: str = "") -> None:
        self._drop((source, message_id))

    def add(self, packet: bytes | bytearray | memoryview, source: str = "") -> bytes | None:
        """Take one chunk; the whole message once complete and verified, else None."""
        chunk = parse_chunk(packet, self.max_total_bytes)
        key = (source, chunk.message_id)
        pending = self._pending.get(key)
        if pending is None:
            if chunk.count == 1:
                return _verified(chunk.digest, chunk.data)
            self._make_room(chunk.total)
            pending = _Pending(chunk.count, chunk.total, chunk.digest)
            self._pending[key] = pending
            self._reserved += chunk.total
        elif (pending.count, pending.total, pending.digest) != (chunk.count, chunk.total, chunk.digest):
            raise ProtocolError(
                Reason.CHUNK_MISMATCH, "chunk disagrees with earlier chunks of its message id"
            )
        self._pending.move_to_end(key)
        held = pending.parts.get(chunk.index)
        if held is not None:
            if held != chunk.data:
                raise ProtocolError(Reason.CHUNK_MISMATCH, f"chunk {chunk.index} arrived with other data")
            return None
        pending.parts[chunk.index] = chunk.data
        if len(pending.parts) < pending.count:
            return None
        self._drop(key)
        return _verified(pending.digest, b"".join(pending.parts[i] for i in range(pending.count)))

    def _make_room(self, total: int) -> None:
        while self._pending and (
            self._reserved + total > self.max_total_bytes or len(self._pending) >= self.max_pending_messages
        ):
            oldest = next(iter(self._pending))
            self._drop(oldest)
            self.evicted += 1

    def _drop(self, key: tuple[str, bytes]) -> None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            self._reserved -= pending.total
