"""Random and half-valid bytes into every decoder of the web device's JavaScript protocol: nothing but a
ProtocolError may come out (docs/protocol.md section 8: any other exception escaping a decoder is a bug), and
every refusal carries a reason of section 8. 60,000 inputs from a seeded generator, in node."""

from __future__ import annotations

from support.web_protocol_node import run_protocol_js

FUZZ = """
let state = 0x9e3779b9 ^ input.seed;
const next = () => { state ^= state << 13; state ^= state >>> 17; state ^= state << 5; return state >>> 0; };
const bytes = (n) => Uint8Array.from({ length: n }, () => next() & 255);
const limits = P.Limits.forVectorSize(300);
// Valid starts, so the decoders get past their first checks: payloads of several chains, frames, chunks.
const deltas = Float32Array.from({ length: 300 }, (_, i) => Math.sin(i) * (i % 7));
const payloads = ["topk:0.1+int8", "randk:30+sign", "fp16", "topk:5+int4:block=3+zstd", "dense", "int8:per_tensor"]
  .map((spec) => new P.UpdateEncoder(spec, 300, [100, 200], { seed: 1 }).encode(deltas).payload);
const frames = [
  P.encodeTask({ federation: "f", bundleId: "b", round: 1, modelVersion: 0, selected: ["a"], batchSize: 2, lr: 0.1,
    codec: "topk:0.1+int8+ef", deadline: 1e9, seed: 3, localSteps: 1, run: 5 }),
  P.encodeGlobalModel({ bundleId: "b", modelVersion: 2, baseVersion: 1, payload: payloads[0], run: 5 }),
  P.encodeAck({ clientId: "a", round: 1, updateId: "u1", accepted: false, reason: "norm", detail: "x", run: 5 }),
  P.encodeUpdate({ federation: "f", bundleId: "b", round: 1, modelVersion: 0, clientId: "a", numSamples: 3,
    updateId: "00112233445566778899aabbccddeeff", payload: payloads[1], metrics: { train_loss: 1.5, odd: 2 }, run: 5 }),
];
const chunks = frames.flatMap((f) => P.splitMessage(f, 100, { run: 5 }));
const mutate = (base) => {
  const out = base.slice(0, base.length + (next() % 9) - 4 > 0 ? base.length + (next() % 9) - 4 : 0);
  for (let j = next() % 4; j >= 0; j--) if (out.length) out[next() % out.length] = next() & 255;
  return out;
};
// Half the time the CRC is made right again, so the checks behind it (metadata, layout) get the input.
const recrc = (b) => {
  if (b.length >= 8 && next() % 2) {
    new DataView(b.buffer, b.byteOffset).setUint32(b.length - 4, P.crc32(b.subarray(0, b.length - 4)), true);
  }
  return b;
};
const targets = {
  payload: (b) => P.decodeUpdatePayload(b, 300, limits),
  message: (b) => P.decodeMessage(b, limits),
  update: (b) => P.decodeUpdate(b, limits, { federation: "f", clientId: "a", bundleId: "b" }),
  chunk: (b) => P.parseChunk(b, 1 << 20),
};
const bases = { payload: payloads, message: frames, update: frames.slice(3), chunk: chunks };
const reasons = {};
const crashes = [];
let accepted = 0;
for (const [name, decode] of Object.entries(targets)) {
  for (let i = 0; i < input.per_target; i++) {
    const list = bases[name];
    let data = i % 3 === 0 ? bytes(next() % 200) : mutate(list[next() % list.length]);
    if (name !== "payload") data = recrc(data);
    try {
      decode(data);
      accepted++;
    } catch (e) {
      if (e instanceof P.ProtocolError && P.REASONS.includes(e.reason) && e.message.length > e.reason.length + 2) {
        reasons[e.reason] = (reasons[e.reason] ?? 0) + 1;
      } else if (crashes.length < 5) crashes.push(`${name} ${hex(data)}: ${e && e.stack}`);
      else crashes.push("...");
    }
  }
}
output({ reasons, crashes, accepted });
"""


def test_js_decoders_raise_nothing_but_protocol_errors_on_random_input() -> None:
    got = run_protocol_js(FUZZ, {"seed": 20261205, "per_target": 15_000})
    assert got["crashes"] == []
    assert sum(got["reasons"].values()) + got["accepted"] == 60_000
    assert got["accepted"] > 100  # mutations that keep a valid input (e.g. a flipped value byte)
    assert set(got["reasons"]) >= {"truncated", "bad_magic", "checksum", "malformed", "trailing_bytes", "version",
                                   "bad_metadata", "decompression", "index_out_of_range", "size_mismatch"}
