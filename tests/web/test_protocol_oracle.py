"""Randomized oracle tests: the web device's JavaScript protocol against the Python reference (fmfl.protocol) on
the same inputs. pytest draws random updates and codec chains, runs the reference encoder and the JS encoder (in
node), and asserts identical bytes (for zstd: identical bodies, since the browser writes raw-block frames),
identical sent values and identical error-feedback residuals; the JS decoder must read the reference's payloads
to the same values, and the reference must read the browser's."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import numpy as np
import zstandard
from support.web_protocol_cases import reference_cases
from support.web_protocol_node import PROTOCOL_JS, run_protocol_js

from fmfl.protocol import Limits, ProtocolError, UpdateEncoder, decode_update
from fmfl.protocol.codec.randk import seeded_indices

ENCODE = """
const out = [];
for (const c of input) {
  const result = attempt(() => {
    const encoder = new P.UpdateEncoder(c.spec, c.size, c.tensor_sizes, { seed: BigInt(c.encoder_seed) });
    const limits = P.Limits.forVectorSize(c.size);
    const rounds = c.rounds.map((r) => {
      const { payload, sent } = encoder.encode(f32(r.delta), { seed: r.seed === null ? null : BigInt(r.seed) });
      const theirs = P.decodeUpdatePayload(unhex(r.payload), c.size, limits);
      return { payload: hex(payload), indices: Array.from(sent.indices), values: f32hex(sent.values),
               their_indices: Array.from(theirs.indices), their_values: f32hex(theirs.values) };
    });
    return { rounds, residual: f64hex(encoder.residual) };
  });
  out.push(result);
}
output(out);
"""


def _body(payload: bytes) -> bytes:
    """The payload body: after the prefix, or decompressed (zstd frames may differ, bodies may not)."""
    if payload[1] & 1:
        return zstandard.ZstdDecompressor().decompress(payload[6:])
    return payload[2:]


def test_js_encoder_writes_the_reference_bytes_for_random_chains_and_updates() -> None:
    # Prepare: 160 random chains (every sparsifier, value coding, group mode, sr, ef, zstd), 1-3 rounds each.
    cases = reference_cases(seed=20261205, count=160)
    # Execute
    results = run_protocol_js(ENCODE, cases)
    # Assert
    compared = 0
    for case, got in zip(cases, results, strict=True):
        assert "ok" in got, (case["spec"], got)
        for want, have in zip(case["rounds"], got["ok"]["rounds"], strict=True):
            mine, ref = bytes.fromhex(have["payload"]), bytes.fromhex(want["payload"])
            if "zstd" in case["spec"]:
                assert _body(mine) == _body(ref), case["spec"]
                assert mine[:6] == ref[:6]
            else:
                assert mine == ref, case["spec"]
            assert (have["indices"], have["values"]) == (want["indices"], want["values"]), case["spec"]
            assert (have["their_indices"], have["their_values"]) == (want["indices"], want["values"])
            # The reference decoder reads the browser's payload to the same values.
            back = decode_update(mine, case["size"], Limits.for_vector_size(case["size"]))
            assert back.values.astype("<f4").tobytes().hex() == want["values"]
            compared += 1
        assert got["ok"]["residual"] == case["residual"], case["spec"]
    assert compared >= 300
    specs = " ".join(c["spec"] for c in cases)
    for stage in ("topk", "randk", "per_tensor", "fp16", "int8", "int4", "sign", "sr", "ef", "zstd", "block="):
        assert stage in specs


def test_default_chain_on_the_vision_bundle_size_matches_over_rounds() -> None:
    # The demo's default chain at the default vision bundle's trainable size (12,810 floats), 4 rounds of
    # error feedback with the reference device's per-round seed, as the browser device runs it.
    rng = np.random.default_rng(7)
    size, seed = 12_810, 2_953_344_123
    encoder = UpdateEncoder("topk:0.01+int8+ef", size, [12_800, 10], seed=seed)
    rounds = []
    for _ in range(4):
        delta = rng.normal(scale=1e-3, size=size).astype(np.float32)
        payload, sent = encoder.encode_sparse(delta, seed=seed)
        rounds.append({"delta": delta.tobytes().hex(), "seed": str(seed), "payload": payload.hex(),
                       "indices": sent.indices.tolist(), "values": sent.values.astype("<f4").tobytes().hex()})
    case = {"spec": "topk:0.01+int8+ef", "size": size, "tensor_sizes": [12_800, 10], "encoder_seed": str(seed),
            "rounds": rounds, "residual": encoder.residual.astype("<f8").tobytes().hex()}
    (got,) = run_protocol_js(ENCODE, [case])
    assert [r["payload"] for r in got["ok"]["rounds"]] == [r["payload"] for r in rounds]
    assert got["ok"]["residual"] == case["residual"]
    assert len(bytes.fromhex(rounds[0]["payload"])) < 400  # 129 of 12,810 values sent, int8


def _reference_decode(payload: bytes, size: int) -> dict[str, Any]:
    try:
        update = decode_update(payload, size, Limits.for_vector_size(size))
    except ProtocolError as error:
        return {"error": str(error.reason)}
    return {"ok": {"indices": update.indices.tolist(), "values": update.values.astype("<f4").tobytes().hex()}}


def _mutations(rng: np.random.Generator, payload: bytes) -> list[bytes]:
    out = []
    for _ in range(6):
        data = bytearray(payload)
        kind = int(rng.integers(6))
        if kind == 0:  # flip one byte
            data[int(rng.integers(len(data)))] ^= int(rng.integers(1, 256))
        elif kind == 1:  # truncate
            del data[int(rng.integers(len(data))):]
        elif kind == 2:  # trailing bytes
            data += bytes(rng.integers(0, 256, size=int(rng.integers(1, 5)), dtype=np.uint8))
        elif kind == 3:  # a header field (size, nnz, codings, index length) set to an edge value
            offset = int(rng.choice([2, 6, 10, 11, 12, 13, 14]))
            value = int(rng.choice([0, 1, 2, 3, 4, 5, 255]))
            if offset < len(data):
                data[offset] = value
        elif kind == 4:  # a byte in the index/group/scale region
            data[min(len(data) - 1, 18 + int(rng.integers(12)))] ^= 0x80
        else:  # delete one byte from the middle
            del data[int(rng.integers(len(data)))]
        out.append(bytes(data))
    return out


def _sections(payload: bytes) -> dict[str, tuple[int, int]]:
    """Byte ranges of an uncompressed payload's sections (payload offsets), read from its header."""
    _size, nnz, _index, _value, mode, _, index_length = struct.unpack_from("<IIBBBBI", payload, 2)
    at = 18 + index_length
    groups = 0
    if mode == 1:
        groups = -(-nnz // struct.unpack_from("<I", payload, at)[0])
        at += 4
    elif mode == 2:
        groups = struct.unpack_from("<I", payload, at)[0]
        at += 4 + 4 * groups
    values = at + 4 * groups
    return {"index": (18, 18 + index_length), "scales": (at, values), "values": (values, len(payload))}


def _targeted(rng: np.random.Generator, payload: bytes) -> list[bytes]:
    """Mutations aimed at each section's rules: varint gaps, bitmap padding, scales, value codes."""
    out = []
    sections = _sections(payload)
    for name, (start, end) in sections.items():
        if end <= start:
            continue
        for value in (b"\xff\xff\xff\xff\x0f", b"\x80", b"\x00", b"\xff", b"\x00\x00\x80\x7f", b"\x00\x00\x80\xbf"):
            data = bytearray(payload)
            at = int(rng.integers(start, end)) if name != "values" else int(rng.choice([start, end - 1]))
            if name == "scales":
                at = start + 4 * int(rng.integers((end - start) // 4))
            data[at : at + len(value)] = value[: max(1, min(len(value), end - at))]
            out.append(bytes(data[: len(payload)]) if name != "index" else bytes(data))
    return out


DECODE = """
output(input.map((c) => attempt(() => {
  const u = P.decodeUpdatePayload(unhex(c.payload), c.size, P.Limits.forVectorSize(c.size));
  return { indices: Array.from(u.indices), values: f32hex(u.values) };
})));
"""


def test_js_decoder_accepts_and_rejects_exactly_as_the_reference_on_mutated_payloads() -> None:
    # Prepare: reference payloads of random chains (no zstd: see the zstd test below), each mutated six ways.
    rng = np.random.default_rng(99)
    inputs: list[dict[str, Any]] = []
    for case in reference_cases(seed=4242, count=120):
        if "zstd" in case["spec"]:
            continue
        for r in case["rounds"][:1]:
            payload = bytes.fromhex(r["payload"])
            mutated = [payload, *_mutations(rng, payload), *_targeted(rng, payload)]
            inputs += [{"payload": m.hex(), "size": case["size"]} for m in mutated]
    # Execute
    got = run_protocol_js(DECODE, inputs)
    # Assert: same values or the same reason, for every input; never anything but a ProtocolError.
    reasons: dict[str, int] = {}
    for item, have in zip(inputs, got, strict=True):
        want = _reference_decode(bytes.fromhex(item["payload"]), item["size"])
        assert {k: v for k, v in have.items() if k != "message"} == want, item
        if "error" in want:
            reasons[want["error"]] = reasons.get(want["error"], 0) + 1
    assert len(inputs) > 500
    print(reasons)
    for reason in ("truncated", "trailing_bytes", "size_mismatch", "malformed", "unknown_type", "version",
                   "index_out_of_range", "non_finite"):
        assert reasons.get(reason, 0) > 0, reasons


def test_js_decoder_reads_zstd_payloads_and_refuses_broken_frames_as_the_reference() -> None:
    # Prepare: reference zstd payloads (real compressed blocks), and frames broken in the ways section 6 names.
    rng = np.random.default_rng(5)
    size = 3000
    inputs = []
    for spec in ("topk:0.2+int8+zstd", "fp16+zstd:level=19", "dense+zstd", "topk:0.05+sign+zstd:level=1"):
        delta = (rng.integers(-3, 4, size=size) * 0.5).astype(np.float32)  # compressible
        payload = UpdateEncoder(spec, size).encode(delta)
        raw_length = int.from_bytes(payload[2:6], "little")
        frame = payload[6:]
        no_size = zstandard.ZstdCompressor(write_content_size=False).compress(_body(payload))
        inputs += [
            payload,
            payload[:-3],  # the frame ends early
            payload + b"\x00",  # bytes after the frame
            payload[:2] + (raw_length + 1).to_bytes(4, "little") + frame,  # content size disagrees
            payload[:6] + no_size,  # no content size declared
            payload[:6] + b"\x00" * len(frame),  # not a zstd frame
            payload[:2] + (16 * size + 4097).to_bytes(4, "little") + frame,  # raw length above the bound
            payload[:6] + frame + frame,  # two frames
        ]
    # Execute
    got = run_protocol_js(DECODE, [{"payload": p.hex(), "size": size} for p in inputs])
    # Assert
    for payload, have in zip(inputs, got, strict=True):
        assert {k: v for k, v in have.items() if k != "message"} == _reference_decode(payload, size)
    assert sum("ok" in g for g in got) == 4
    assert all("message" in g for g in got if "error" in g)


SEEDED = """
const { seededIndices } = await import(input.module);
output(input.cases.map(([s, n, k]) => hex(P.sha256(new Uint8Array(seededIndices(BigInt(s), n, k).buffer)))));
"""


def test_random_k_indices_match_the_reference_at_large_sizes() -> None:
    # The browser picks the k smallest hashes by a radix select over 65,536 buckets; the reference by
    # np.partition. Same sets at sizes where many buckets are filled, and at k = 1 and k = size - 1.
    cases = [(2**64 - 1, 500_000, 5_000), (12_345, 300_000, 299_999), (0, 70_000, 1), (99, 2_000_000, 20_000)]
    module = (PROTOCOL_JS.parent / "codec" / "randk.js").as_uri()
    got = run_protocol_js(SEEDED, {"module": module, "cases": [[str(s), n, k] for s, n, k in cases]})
    want = [hashlib.sha256(seeded_indices(s, n, k).astype("<u4").tobytes()).hexdigest() for s, n, k in cases]
    assert got == want
