"""Every refusal of the web device's JavaScript protocol says what was wrong and changes nothing: a conflicting
chunk leaves the earlier chunks in place, a non-finite update leaves the encoder's residual and seed sequence as
they were, a bad saved residual is not loaded, a bad compact update is refused with the reference's reason."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from support.web_protocol_node import run_protocol_js

from fmfl.protocol import ClientUpdate, Limits, ProtocolError

GOLDEN_1_2 = json.loads((Path(__file__).resolve().parents[1] / "protocol" / "golden_1_2.json").read_text())

REASSEMBLY = """
const message = Uint8Array.from({ length: 500 }, (_, i) => (i * 7) & 255);
const chunks = P.splitMessage(message, 150);
const r = new P.Reassembler(1 << 20);
const first = r.add(chunks[0], "s");
// Chunk 0 again with other data (CRC valid): refused, and the chunk held stays.
const forged = chunks[0].slice(0, -4);
forged[80] ^= 0xff;
const forgedChunk = P.concat([forged, new Uint8Array(4)]);
new DataView(forgedChunk.buffer).setUint32(forgedChunk.length - 4, P.crc32(forged), true);
const conflict = attempt(() => r.add(forgedChunk, "s"));
const missingAfter = r.missing(chunks[0].slice(8, 24), "s");
const rest = chunks.slice(1).map((c) => r.add(c, "s"));
// Chunks whose SHA-256 field lies (consistently, CRC valid): the message is dropped at the end.
const liar = chunks.map((c) => { const b = c.slice(0, -4); b[40] ^= 1; const o = P.concat([b, new Uint8Array(4)]);
  new DataView(o.buffer).setUint32(o.length - 4, P.crc32(b), true); return o; });
const r2 = new P.Reassembler(1 << 20);
const liarSteps = liar.map((c) => attempt(() => r2.add(c, "s")));
// A message above the budget: refused at its first chunk, nothing reserved.
const r3 = new P.Reassembler(400);
const tooBig = attempt(() => r3.add(chunks[0], "s"));
output({ first, conflict, missingAfter, whole: hex(rest[rest.length - 1]) === hex(message),
         restPending: rest.slice(0, -1), liarLast: liarSteps[liarSteps.length - 1], liarPending: r2.pendingMessages,
         tooBig, r3: [r3.pendingMessages, r3.reservedBytes] });
"""


def test_a_conflicting_chunk_is_refused_and_the_transfer_still_completes() -> None:
    got = run_protocol_js(REASSEMBLY)
    assert got["first"] is None
    assert got["conflict"]["error"] == "chunk_mismatch"
    assert "other data" in got["conflict"]["message"]
    assert got["missingAfter"] == [1, 2, 3, 4, 5, 6]  # 500 bytes in 7 chunks of <= 74; chunk 0 is still held
    assert got["restPending"] == [None] * 5
    assert got["whole"]
    assert got["liarLast"]["error"] == "hash_mismatch"
    assert got["liarPending"] == 0
    assert got["tooBig"]["error"] == "too_large"
    assert got["r3"] == [0, 0]


ENCODER = """
const size = 50;
const d1 = Float32Array.from({ length: size }, (_, i) => Math.sin(i) * 0.01);
const d2 = Float32Array.from({ length: size }, (_, i) => Math.cos(i) * 0.02);
const bad = d2.slice(); bad[7] = NaN;
const spec = "randk:0.2+int8:sr+ef";
const a = new P.UpdateEncoder(spec, size, null, { seed: 9 });
const b = new P.UpdateEncoder(spec, size, null, { seed: 9 });
a.encode(d1); b.encode(d1);
const before = f64hex(a.residual);
const refused = attempt(() => a.encode(bad));
const unchanged = f64hex(a.residual) === before;
// The refused call used no seed and no random draw: the next payloads are those of an encoder that never saw it.
const same = hex(a.encode(d2).payload) === hex(b.encode(d2).payload);
// A saved residual of the wrong size or with NaN is not loaded.
const fb = a.feedback; const held = f64hex(fb.residual);
const wrongSize = attempt(() => fb.load(new Uint8Array(8 * (size + 1))));
const nan = new Float64Array(size); nan[3] = NaN;
const nanLoad = attempt(() => fb.load(nan));
const afterLoads = f64hex(fb.residual) === held;
const copy = new P.ErrorFeedback(size);
copy.load(fb.toBytes());
const roundTrip = f64hex(copy.residual) === held;
const misuse = [
  attempt(() => new P.UpdateEncoder("topk:0.1,per_tensor", size)),
  attempt(() => new P.UpdateEncoder("topk:0.1+topk:0.2", size)),
  attempt(() => a.encode(new Float32Array(size + 1))),
].map((r) => r.error ?? r.crash.split("\\n")[0]);
output({ refused, unchanged, same, wrongSize, nanLoad, afterLoads, roundTrip, misuse });
"""


def test_a_non_finite_update_is_refused_and_the_encoder_is_unchanged() -> None:
    got = run_protocol_js(ENCODER)
    assert got["refused"]["error"] == "non_finite"
    assert "nothing was encoded" in got["refused"]["message"]
    assert got["unchanged"]
    assert got["same"]
    assert got["wrongSize"]["error"] == "residual_mismatch"
    assert "expected 400" in got["wrongSize"]["message"]
    assert got["nanLoad"]["error"] == "non_finite"
    assert got["afterLoads"]
    assert got["roundTrip"]
    assert got["misuse"][0] == "RangeError: this codec has a per_tensor option: pass tensorSizes"
    assert got["misuse"][1] == "bad_codec_spec"
    assert got["misuse"][2] == "RangeError: update of 51 values, expected 50"


MISUSE = """
const update = { federation: "f", bundleId: "b", round: 1, modelVersion: 0, clientId: "c", numSamples: 3,
  updateId: "00112233445566778899aabbccddeeff", payload: Uint8Array.of(1), metrics: { train_loss: 0.5 } };
const name = (r) => r.error ?? r.crash.split("\\n")[0];
output([
  attempt(() => P.encodeUpdate(update, { compact: true })),
  attempt(() => P.encodeUpdate({ ...update, nonce: "ABC" })),
  attempt(() => P.encodeUpdate({ ...update, signature: new Uint8Array(64) })),
  attempt(() => P.encodeUpdate({ ...update, metrics: { "bad key": 1 } })),
  attempt(() => P.encodeUpdate({ ...update, metrics: { x: Infinity } })),
  attempt(() => P.encodeUpdate({ ...update, clientId: "a/b" })),
  attempt(() => P.signingInput(P.makeUpdate(update))),
  attempt(() => P.topics("fmfl", "bad federation")),
  attempt(() => P.topics("fmfl", "f").parse("fmfl/f/update/a/b")),
  attempt(() => P.topics("fmfl", "f").parse("other/f/task")),
  attempt(() => P.encodeHello({ clientId: "c", capabilities: { x: { y: 1 } } })),
  attempt(() => P.splitMessage(new Uint8Array(10), 76)),
].map((r) => [name(r), r.message ?? null]));
"""


def test_bad_local_messages_are_refused_with_a_clear_error() -> None:
    got = run_protocol_js(MISUSE)
    assert [g[0] for g in got] == [
        "RangeError: this update cannot use the compact form (no run, or ids that are not 32 hex digits)",
        "bad_metadata", "bad_metadata", "bad_metadata", "non_finite", "invalid_id", "bad_metadata", "invalid_id",
        "invalid_id", "invalid_id", "bad_metadata", "RangeError: maxPacketBytes must be >= 77, got 76",
    ]
    assert "32..128 lowercase hex digits" in got[1][1]
    assert "carries a nonce" in got[2][1]
    assert "set nonce" in got[6][1]
    assert "'bad federation'" not in got[7][1]
    assert "federation" in got[7][1]


COMPACT = """
const limits = P.Limits.forVectorSize(64);
const context = { federation: "default", clientId: "dev-1", bundleId: "b1" };
output(input.map((h) => { const r = attempt(() => { const u = P.decodeUpdate(unhex(h), limits, context);
  return [u.run, u.round, u.modelVersion, u.numSamples, u.updateId, u.metrics, u.nonce, hex(u.payload)]; });
  return "ok" in r ? r : { error: r.error ?? r.crash }; }));
"""


def _reference_compact(data: bytes) -> dict[str, Any]:
    try:
        u = ClientUpdate.decode(data, Limits.for_vector_size(64), federation="default", client_id="dev-1",
                                bundle_id="b1")
    except ProtocolError as error:
        return {"error": str(error.reason)}
    return {"ok": [u.run, u.round, u.model_version, u.num_samples, u.update_id, u.metrics, u.nonce, u.payload.hex()]}


def _reframe(frame: bytes, meta: bytes) -> bytes:
    payload_length = struct.unpack_from("<I", frame, 12)[0]
    payload = frame[len(frame) - 4 - payload_length : len(frame) - 4]
    body = frame[:8] + struct.pack("<II", len(meta), payload_length) + meta + payload
    return body + struct.pack("<I", zlib.crc32(body))


def test_compact_updates_with_broken_metadata_get_the_reference_reason() -> None:
    # Prepare: the golden compact frames (unsigned and signed), their binary metadata cut, extended and
    # rewritten byte by byte (the frame CRC recomputed, so the compact rules decide).
    rng = np.random.default_rng(21)
    frames = []
    for name in ("compact_update", "compact_signed_update"):
        frame = bytes.fromhex(GOLDEN_1_2["messages"][name]["packet_hex"])
        meta_length = struct.unpack_from("<I", frame, 8)[0]
        meta = frame[16 : 16 + meta_length]
        frames.append(frame)
        for cut in range(0, meta_length, 3):
            frames.append(_reframe(frame, meta[:cut]))
        frames.append(_reframe(frame, meta + b"\x00"))
        for _ in range(80):
            mutated = bytearray(meta)
            mutated[int(rng.integers(meta_length))] = int(rng.choice([0, 0x80, 0xFF, 9, 1, 0x7F]))
            frames.append(_reframe(frame, bytes(mutated)))
        inf_metric = bytearray(meta)
        inf_metric[-8:] = struct.pack("<d", float("inf"))
        frames.append(_reframe(frame, bytes(inf_metric)))
    # Execute
    got = run_protocol_js(COMPACT, [f.hex() for f in frames])
    # Assert
    reasons = set()
    for frame, have in zip(frames, got, strict=True):
        want = _reference_compact(frame)
        assert have == want, frame.hex()
        reasons.add(want.get("error"))
    assert reasons >= {None, "truncated", "trailing_bytes", "bad_metadata", "non_finite"}
