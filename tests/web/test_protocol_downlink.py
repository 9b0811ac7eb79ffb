"""Downlink deltas on the web device (docs/protocol.md section 2b) through its JavaScript protocol, in node: the
golden delta's chunks on delta/0..4 reassemble (grouped by ".../delta"), apply to version 11 bit for bit with
the right weights_sha256, the dense copy gives the same bits, and the traps are refused with the held weights
unchanged; DownlinkPolicy follows the section's rules for when a device holds global/+."""

from __future__ import annotations

import json
from pathlib import Path

from protocol_node import run_protocol_js

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "protocol" / "golden_downlink.json").read_text())

APPLY = """
const g = input;
const t = P.topics("fmfl", "default");
const limits = P.Limits.forVectorSize(12);
const reassembler = new P.Reassembler(1 << 20);
const steps = g.delta_packets.slice().reverse().map((p) => reassembler.add(unhex(p.hex), t.source(p.topic)));
const delta = P.decodeGlobalModel(steps[steps.length - 1], limits);
const base = f32(g.base_f32_hex);
const baseBefore = f32hex(base);
const weights = P.applyDelta(base, delta, limits);
const dense = P.denseWeights(P.decodeGlobalModel(unhex(g.dense_message_hex), limits), 12, limits);
const wrong = f32(g.wrong_base_f32_hex);
const wrongBefore = f32hex(wrong);
const refused = attempt(() => P.applyDelta(wrong, delta, limits));
// A delta whose payload is for another size: the decoder's reason, base untouched.
const otherSize = attempt(() => P.applyDelta(new Float32Array(13), delta, P.Limits.forVectorSize(13)));
// The same dense model with a corrupted hash is refused too.
const denseModel = P.decodeGlobalModel(unhex(g.dense_message_hex), limits);
const badHash = P.makeGlobalModel({ ...denseModel, weightsSha256: "0".repeat(64) });
output({
  pending: steps.slice(0, -1), message: hex(steps[steps.length - 1]),
  delta: { modelVersion: delta.modelVersion, baseVersion: delta.baseVersion, run: delta.run, sha: delta.weightsSha256,
           payload: hex(delta.payload) },
  weights: f32hex(weights), sha: P.weightsSha256(weights), base_unchanged: f32hex(base) === baseBefore,
  dense: f32hex(dense), refused, wrong_unchanged: f32hex(wrong) === wrongBefore, other_size: otherSize,
  bad_hash: attempt(() => P.denseWeights(badHash, 12, limits)),
  kinds: g.delta_packets.map((p) => t.parse(p.topic)[0]), source: t.source(g.delta_packets[0].topic),
  encoded_again: hex(P.encodeGlobalModel(delta)),
});
"""


def test_golden_delta_applies_bit_for_bit_and_the_traps_are_refused() -> None:
    # Execute
    got = run_protocol_js(APPLY, GOLDEN)
    # Assert: the chunks fed last first make the delta message.
    assert got["pending"] == [None] * (len(GOLDEN["delta_packets"]) - 1)
    assert got["message"] == GOLDEN["delta_message_hex"] == got["encoded_again"]
    assert got["kinds"] == ["delta"] * len(GOLDEN["delta_packets"]) and got["source"] == "fmfl/default/delta"
    assert got["delta"] == {"modelVersion": 12, "baseVersion": 11, "run": GOLDEN["run"],
                            "sha": GOLDEN["weights_sha256"], "payload": GOLDEN["delta_payload_hex"]}
    # Version 12 bit for bit (index 9 keeps -0.0: not the zeros-added trap), with the gateway's hash.
    assert got["weights"] == GOLDEN["weights_f32_hex"] != GOLDEN["zeros_added_everywhere_f32_hex"]
    assert got["sha"] == GOLDEN["weights_sha256"] and got["base_unchanged"]
    assert got["dense"] == GOLDEN["weights_f32_hex"]
    # A wrong base: hash_mismatch, and the held weights are unchanged.
    assert got["refused"]["error"] == "hash_mismatch"
    assert "global v12 from the delta from v11" in got["refused"]["message"]
    assert got["wrong_unchanged"]
    assert got["other_size"]["error"] == "size_mismatch"
    assert got["bad_hash"]["error"] == "hash_mismatch" and "from dense" in got["bad_hash"]["message"]


POLICY = """
const out = {};
const R = 5;
// A new device: dense at connect; the first delta of the run cannot apply (no model of this run): dense.
let p = new P.DownlinkPolicy(null);
out.fresh = [p.wantsDense];
out.fresh.push(p.onDelta({ run: R, modelVersion: 3, baseVersion: 2 }), p.wantsDense);
p.took(R, 3);  // the dense model of v3 arrived: it holds the newest version and has seen a delta of R
out.fresh.push(p.wantsDense);
out.fresh.push(p.onDelta({ run: R, modelVersion: 4, baseVersion: 3 }));
p.took(R, 4);
out.fresh.push(p.wantsDense, p.onDelta({ run: R, modelVersion: 4, baseVersion: 3 }));
// A task naming a version it does not hold (it missed a delta): dense again until it holds it.
p.onTask({ run: R, modelVersion: 6 });
out.fresh.push(p.wantsDense, p.onDelta({ run: R, modelVersion: 6, baseVersion: 5 }));
p.took(R, 6);
out.fresh.push(p.wantsDense);
// A refused delta (decode failure or hash_mismatch): dense.
out.refused = [p.onDelta({ run: R, modelVersion: 7, baseVersion: 6 })];
p.refused();
out.refused.push(p.wantsDense);
// Reconnect holding v6 of run R after a delta of R: no dense; holding a model of R without a delta seen: dense.
out.reconnect = [new P.DownlinkPolicy({ run: R, version: 6 }, R).wantsDense,
                 new P.DownlinkPolicy({ run: R, version: 6 }, null).wantsDense];
// A new run: its task names its first version; the held model is of another run: dense.
p = new P.DownlinkPolicy({ run: R, version: 6 }, R);
p.onTask({ run: R + 1, modelVersion: 7 });
out.newRun = [p.wantsDense, p.onDelta({ run: R + 1, modelVersion: 8, baseVersion: 7 })];
// A 1.1 gateway (no run, no deltas): dense forever.
p = new P.DownlinkPolicy(null);
p.onTask({ run: null, modelVersion: 1 });
p.took(null, 1);
out.old = [p.wantsDense];
output(out);
"""


def test_downlink_policy_holds_global_only_when_section_2b_says() -> None:
    got = run_protocol_js(POLICY)
    assert got["fresh"] == [True, "dense", True, False, "apply", False, "ignore", True, "dense", False]
    assert got["refused"] == ["apply", True]
    assert got["reconnect"] == [False, True]
    assert got["newRun"] == [True, "dense"]
    assert got["old"] == [True]
