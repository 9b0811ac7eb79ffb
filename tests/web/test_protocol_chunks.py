"""Chunking and reassembly (docs/protocol.md section 3) of the web device's JavaScript protocol against the
Python reference: identical chunks for random messages and packet sizes, identical verdicts for mutated chunks
(with their CRC recomputed, so every layout rule is reached), and a Reassembler that returns, refuses and evicts
exactly as the reference's over random streams of shuffled, duplicated, conflicting and corrupt chunks."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np
from support.web_protocol_node import run_protocol_js

from fmfl.protocol import ProtocolError, Reassembler, parse_chunk, split_message

SPLIT = """
output(input.map((c) => P.splitMessage(unhex(c.message), c.packet,
  { run: c.run ?? undefined, bare: c.bare, messageId: c.id === null ? undefined : unhex(c.id) }).map(hex)));
"""


def test_js_splits_messages_into_the_reference_chunks() -> None:
    # Prepare
    rng = np.random.default_rng(3)
    cases = []
    for _ in range(120):
        framed = rng.random() < 0.3
        body = rng.bytes(int(rng.choice([0, 1, 5, 76, 200, 1000, 5000])))
        message = (b"FMFL" + body) if framed else body
        run = int(rng.integers(1, 2**53)) if rng.random() < 0.4 else None
        message_id = rng.bytes(16) if run is None and rng.random() < 0.2 else None
        packet = int(rng.choice([77, 78, 100, 150, 1024, 131072]))
        cases.append({"message": message.hex(), "packet": packet, "run": run, "bare": framed and rng.random() < 0.5,
                      "id": None if message_id is None else message_id.hex()})
    # Execute
    got = run_protocol_js(SPLIT, cases)
    # Assert
    for case, chunks in zip(cases, got, strict=True):
        want = split_message(bytes.fromhex(case["message"]), case["packet"],
                             None if case["id"] is None else bytes.fromhex(case["id"]), run=case["run"],
                             bare=case["bare"])
        assert chunks == [c.hex() for c in want], case
    assert sum(len(c) > 1 for c in got) > 30


def _with_crc(head_and_data: bytes) -> bytes:
    return head_and_data + struct.pack("<I", zlib.crc32(head_and_data))


def _mutated_chunks(rng: np.random.Generator) -> list[bytes]:
    out = []
    for _ in range(60):
        message = rng.bytes(int(rng.integers(0, 400)))
        chunks = split_message(message, int(rng.choice([80, 120, 500])), run=int(rng.integers(1, 2**40)))
        chunk = chunks[int(rng.integers(len(chunks)))]
        body = bytearray(chunk[:-4])
        out.append(chunk)
        out.append(chunk[:-1] + bytes([chunk[-1] ^ 1]))  # CRC wrong
        out.append(chunk[:75])
        for offset, fmt, value in [(0, "<4s", b"FMFX"), (4, "<B", 2), (5, "<B", 7), (6, "<H", 1), (24, "<I", 99),
                                   (28, "<I", 0), (28, "<I", len(chunks) + 1), (32, "<I", 2**31),
                                   (32, "<I", len(message) + 1), (36, "<I", 1)]:
            mutated = bytearray(body)
            struct.pack_into(fmt, mutated, offset, value)
            out.append(_with_crc(bytes(mutated)))
        out.append(_with_crc(bytes(body) + b"\x00"))  # a byte more data than the layout allows
    return out


PARSE = """
output(input.map((h) => attempt(() => { const c = P.parseChunk(unhex(h), 1 << 20);
  return [hex(c.messageId), c.index, c.count, c.total, hex(c.data), c.minor, c.run]; })));
"""


def _reference_parse(packet: bytes) -> dict[str, Any]:
    try:
        c = parse_chunk(packet, 1 << 20)
    except ProtocolError as error:
        return {"error": str(error.reason)}
    return {"ok": [c.message_id.hex(), c.index, c.count, c.total, c.data.hex(), c.minor, c.run]}


def test_js_parses_and_refuses_chunks_as_the_reference() -> None:
    packets = _mutated_chunks(np.random.default_rng(8))
    got = run_protocol_js(PARSE, [p.hex() for p in packets])
    reasons = set()
    for packet, have in zip(packets, got, strict=True):
        want = _reference_parse(packet)
        assert {k: v for k, v in have.items() if k != "message"} == want, packet[:72].hex()
        reasons.add(want.get("error"))
    assert reasons >= {None, "truncated", "bad_magic", "version", "checksum", "malformed", "too_large"}


def _stream(rng: np.random.Generator) -> list[tuple[str, bytes]]:
    """(source, packet) arrivals: several messages' chunks shuffled, duplicated, contradicted and corrupted."""
    arrivals: list[tuple[str, bytes]] = []
    for m in range(8):
        message = rng.bytes(int(rng.integers(1, 600)))
        source = ["fmfl/f/global", "fmfl/f/task", "fmfl/f/ack/c"][m % 3]
        chunks = split_message(message, int(rng.choice([80, 150, 400])))
        arrivals += [(source, c) for c in chunks]
        if rng.random() < 0.5:  # a duplicate
            arrivals.append((source, chunks[int(rng.integers(len(chunks)))]))
        if len(chunks) > 1 and rng.random() < 0.5:  # same message id and index, other data (CRC valid)
            body = bytearray(chunks[0][:-4])
            body[72] ^= 0xFF
            arrivals.append((source, _with_crc(bytes(body))))
        if len(chunks) > 1 and rng.random() < 0.3:  # same id, another total
            body = bytearray(chunks[1][:-4])
            struct.pack_into("<I", body, 32, struct.unpack_from("<I", body, 32)[0] + 1)
            arrivals.append((source, _with_crc(bytes(body))))
        if rng.random() < 0.3:  # a corrupt chunk
            arrivals.append((source, chunks[0][:-1] + b"\x00"))
        if rng.random() < 0.2:  # a bare frame passes through
            arrivals.append((source, b"FMFL" + rng.bytes(30)))
    order = rng.permutation(len(arrivals))
    return [arrivals[i] for i in order]


REASSEMBLE = """
output(input.map((s) => {
  const r = new P.Reassembler(s.budget, s.pending);
  const steps = s.arrivals.map(([source, h]) => { const x = attempt(() => r.add(unhex(h), source));
    return "ok" in x ? (x.ok === null ? null : hex(x.ok)) : (x.error ?? x.crash); });
  return { steps, pending: r.pendingMessages, evicted: r.evicted, reserved: r.reservedBytes };
}));
"""


def test_js_reassembler_returns_refuses_and_evicts_as_the_reference() -> None:
    # Prepare: 30 streams, half with budgets small enough to evict.
    rng = np.random.default_rng(12)
    streams = []
    for i in range(30):
        budget, pending = (1 << 20, 16) if i % 2 else (int(rng.integers(300, 1500)), int(rng.integers(1, 4)))
        streams.append({"budget": budget, "pending": pending,
                        "arrivals": [(s, p.hex()) for s, p in _stream(rng)]})
    # Execute
    got = run_protocol_js(REASSEMBLE, streams)
    # Assert
    outcomes = set()
    for stream, have in zip(streams, got, strict=True):
        reference = Reassembler(stream["budget"], stream["pending"])
        steps: list[str | None] = []
        for source, packet in stream["arrivals"]:
            try:
                out = reference.add(bytes.fromhex(packet), source)
                steps.append(None if out is None else out.hex())
            except ProtocolError as error:
                steps.append(str(error.reason))
        assert have["steps"] == steps
        assert (have["pending"], have["evicted"], have["reserved"]) == (
            reference.pending_messages, reference.evicted, reference.reserved_bytes)
        outcomes |= {s if s is None or len(s) < 20 else "message" for s in steps}
        outcomes.add("evicted" if reference.evicted else "kept")
    assert outcomes >= {None, "message", "chunk_mismatch", "checksum", "evicted", "kept"}
