"""The protocol's golden vectors (docs/protocol.md section 9) through the web device's JavaScript protocol, in
node: the JS encoder writes every golden byte, the JS decoder reads every golden payload to its recorded values,
and the 1.2 message vectors (task, chunked global model, Ack, compact updates) come out byte for byte."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import Any

from support.web_protocol_node import run_protocol_js

from fmfl.protocol import Limits, decode_update

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "protocol"
GOLDEN = json.loads((GOLDEN_DIR / "golden_vectors.json").read_text())
GOLDEN_1_2 = json.loads((GOLDEN_DIR / "golden_1_2.json").read_text())

ENCODE_AND_DECODE = """
const out = [];
for (const v of input.vectors) {
  const delta = Float32Array.from(v.input);
  const encoder = new P.UpdateEncoder(v.chain, delta.length, v.tensor_sizes, { seed: 7 });
  const { payload, sent } = encoder.encode(delta, { seed: v.seed });
  const decoded = attempt(() => {
    const u = P.decodeUpdatePayload(unhex(v.payload_hex), delta.length, P.Limits.forVectorSize(delta.length));
    return { indices: Array.from(u.indices), values: f32hex(u.values) };
  });
  out.push({ payload: hex(payload), sent_indices: Array.from(sent.indices), sent_values: f32hex(sent.values),
             decoded });
}
output(out);
"""


def _vectors_1_1() -> list[dict[str, Any]]:
    return [
        {**v, "input": GOLDEN["inputs"][v["input"]], "tensor_sizes": GOLDEN["tensor_sizes"][v["input"]],
         "seed": GOLDEN["seed"]}
        for v in GOLDEN["vectors"]
    ]


def test_golden_payloads_1_1_encode_to_their_bytes_and_decode_to_their_values() -> None:
    # Prepare
    vectors = _vectors_1_1()
    # Execute
    results = run_protocol_js(ENCODE_AND_DECODE, {"vectors": vectors})
    # Assert: every vector, both directions.
    assert len(results) == len(vectors) == 15
    for vector, got in zip(vectors, results, strict=True):
        want = {"indices": vector["indices"], "values": vector["values_f32_hex"]}
        assert got["decoded"] == {"ok": want}, vector["chain"]
        assert got["sent_indices"] == vector["indices"]
        assert got["sent_values"] == vector["values_f32_hex"]
        if "zstd" in vector["chain"]:
            # zstd frames may differ (the browser writes raw blocks): the reference decoder reads ours to the values.
            size = len(vector["input"])
            theirs = decode_update(bytes.fromhex(got["payload"]), size, Limits.for_vector_size(size))
            assert theirs.values.astype("<f4").tobytes().hex() == vector["values_f32_hex"]
            assert got["payload"][:12] == vector["payload_hex"][:12]  # format, zstd flag, raw length
        else:
            assert got["payload"] == vector["payload_hex"], vector["chain"]


def test_golden_payloads_1_2_pin_ties_and_binary64_int8() -> None:
    vectors = [{**v, "tensor_sizes": None, "seed": 1234} for v in GOLDEN_1_2["payloads"]]
    results = run_protocol_js(ENCODE_AND_DECODE, {"vectors": vectors})
    for vector, got in zip(vectors, results, strict=True):
        assert got["payload"] == vector["payload_hex"], vector["name"]
        assert got["decoded"]["ok"] == {"indices": vector["indices"], "values": vector["values_f32_hex"]}
    by_name = {v["name"]: got for v, got in zip(vectors, results, strict=True)}
    assert by_name["ties_top2"]["sent_indices"] == [3, 7]  # ties at the cut go to the higher index
    assert by_name["int8_binary64"]["payload"].endswith("0065811b")  # codes 0, 101, -127, 27 (binary64)


MESSAGES = """
const RUN = input.run;
const t = P.topics("fmfl", "default");
const task = P.encodeTask({
  federation: "default", bundleId: "b1", round: 12, modelVersion: 11, selected: ["dev-1", "dev-2"], batchSize: 16,
  lr: 0.01, codec: "topk:0.01+int8+ef", deadline: 1767225900.0, seed: 42, localEpochs: 1, run: RUN });
const weights = Float32Array.from(input.weights);
const model = P.encodeGlobalModel({ bundleId: "b1", modelVersion: 11, baseVersion: null, run: RUN,
  payload: new P.UpdateEncoder("dense", weights.length).encode(weights).payload });
const ack = P.encodeAck({ clientId: "dev-1", round: 12, updateId: "00112233445566778899aabbccddeeff", accepted: false,
  reason: "wrong_version", detail: "model_version 10, round 12 trains version 11", run: RUN });
const update = { federation: "default", bundleId: "b1", round: 12, modelVersion: 11, clientId: "dev-1", numSamples: 480,
  updateId: "00112233445566778899aabbccddeeff", payload: unhex("0102"),
  metrics: { train_loss: 0.5, eval_accuracy: 0.75, my_metric: -1.0 }, run: RUN };
const signed = { ...update, nonce: "ffeeddccbbaa99887766554433221100",
                 signature: Uint8Array.from({ length: 64 }, (_, i) => i) };
// The device's side of the same vectors: reassemble the model's chunks in reverse order, grouped by stream.
const limits = P.Limits.forVectorSize(64);
const reassembler = new P.Reassembler(1 << 20);
const steps = input.packets.slice().reverse().map((p) => reassembler.add(unhex(p.hex), t.source(p.topic)));
const whole = steps[steps.length - 1];
const received = P.decodeGlobalModel(whole, limits);
const dense = P.toDense(P.decodeUpdatePayload(received.payload, 12, limits));
const gotTask = P.decodeTask(unhex(input.task_hex), limits);
const gotAck = P.decodeAck(unhex(input.ack_hex), limits);
const context = { federation: "default", clientId: "dev-1", bundleId: "b1" };
const compact = P.decodeUpdate(unhex(input.compact_hex), limits, context);
output({
  task: { topic: t.task, message_hex: hex(task), packets_hex: P.splitMessage(task, undefined, { run: RUN }).map(hex) },
  global_model: { weights: input.weights, max_packet_bytes: 120, message_hex: hex(model),
    packets: P.splitMessage(model, 120, { run: RUN }).map((p, i) => ({ topic: t.globalModelChunk(i), hex: hex(p) })) },
  ack: { message_hex: hex(ack), packets_hex: P.splitMessage(ack, undefined, { run: RUN }).map(hex) },
  compact_update: { topic: t.update("dev-1"), packet_hex: hex(P.encodeUpdate(update, { compact: true })),
    json_form_hex: hex(P.encodeUpdate(update, { compact: false })) },
  compact_signed_update: { topic: t.update("dev-1"), packet_hex: hex(P.encodeUpdate(signed)) },
  device: {
    pending: steps.slice(0, -1), whole: hex(whole), model_version: received.modelVersion, run: received.run,
    weights: Array.from(dense), chunk_runs: input.packets.map((p) => P.chunkRun(unhex(p.hex))),
    task: { ...gotTask }, ack: { ...gotAck },
    compact: { ...compact, payload: hex(compact.payload), signature: null },
  },
});
"""


def test_golden_messages_1_2_are_written_byte_for_byte_and_read_back() -> None:
    # Prepare
    m = GOLDEN_1_2["messages"]
    run = GOLDEN_1_2["run"]
    payload = {
        "run": run, "weights": m["global_model"]["weights"], "packets": m["global_model"]["packets"],
        "task_hex": m["task"]["message_hex"], "ack_hex": m["ack"]["message_hex"],
        "compact_hex": m["compact_update"]["packet_hex"],
    }
    # Execute
    got = run_protocol_js(MESSAGES, payload)
    device = got.pop("device")
    # Assert: the sender's side, every byte.
    assert got == m
    # The receiver's side: chunks fed last first group by ".../global" and make the message.
    assert device["pending"] == [None, None, None]
    assert device["whole"] == m["global_model"]["message_hex"]
    assert (device["model_version"], device["run"], device["weights"]) == (11, run, m["global_model"]["weights"])
    assert device["chunk_runs"] == [run] * 4
    assert device["task"]["run"] == run
    assert device["task"]["codec"] == "topk:0.01+int8+ef"
    assert device["task"]["selected"] == ["dev-1", "dev-2"]
    assert device["task"]["localSteps"] is None
    assert device["ack"] == {"clientId": "dev-1", "round": 12, "updateId": "00112233445566778899aabbccddeeff",
                             "accepted": False, "reason": "wrong_version",
                             "detail": "model_version 10, round 12 trains version 11", "run": run}
    compact = device["compact"]
    assert (compact["run"], compact["round"], compact["modelVersion"], compact["numSamples"]) == (run, 12, 11, 480)
    assert compact["metrics"] == {"train_loss": 0.5, "eval_accuracy": 0.75, "my_metric": -1.0}
    assert compact["payload"] == "0102"
    assert compact["nonce"] is None


SIGNING = """
const update = P.makeUpdate({ federation: "default", bundleId: "b1", round: 3, modelVersion: 2, clientId: "dev-1",
  numSamples: 480, updateId: "00112233445566778899aabbccddeeff", nonce: "ffeeddccbbaa99887766554433221100",
  metrics: { train_loss: 0.5, eval_accuracy: 0.1 }, payload: Uint8Array.of(1, 2, 3) });
const key = await P.importSigningKey(Uint8Array.from({ length: 32 }, (_, i) => i));
const signature = await P.sign(key, P.signingInput(update));
const signed = await P.signUpdate({ ...update, nonce: null }, key);
output({ input: new TextDecoder().decode(P.signingInput(update)), signature: hex(signature),
         fresh_nonce: signed.nonce, fresh_sig_len: signed.signature.length,
         fresh_wire: hex(P.encodeUpdate({ ...signed, run: 5 })) });
"""


def test_signed_update_golden_vector_signs_to_the_documented_signature() -> None:
    # Execute: the docs' vector (docs/protocol.md, "Signed updates"), signed with WebCrypto Ed25519.
    got = run_protocol_js(SIGNING)
    # Assert
    assert got["input"] == (
        "fmfl-update-sig/1\n"
        '{"bundle_id":"b1","client_id":"dev-1","federation":"default","metrics":{"eval_accuracy":"3fb999999999999a",'
        '"train_loss":"3fe0000000000000"},"model_version":2,"nonce":"ffeeddccbbaa99887766554433221100",'
        '"num_samples":480,"payload_sha256":"039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81",'
        '"round":3,"update_id":"00112233445566778899aabbccddeeff"}'
    )
    expected = "W8102BEHZZJKi8J0s8mNYNg6W3Z3XdCwOCLw2d19Sjeq0sr31dMcKXfN9mbBH8IbkS8sU0cFc/7PiXEwWtLYDg=="
    assert base64.b64encode(bytes.fromhex(got["signature"])).decode() == expected
    # A fresh nonce per signed update; the reference verifier accepts the compact form it went out in.
    assert len(got["fresh_nonce"]) == 32
    assert got["fresh_nonce"] != "ffeeddccbbaa99887766554433221100"
    assert got["fresh_sig_len"] == 64
    _verify_with_reference(bytes.fromhex(got["fresh_wire"]))


def _verify_with_reference(wire: bytes) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from fmfl.protocol import ClientUpdate

    update = ClientUpdate.decode(wire, Limits.for_vector_size(64), federation="default", client_id="dev-1",
                                 bundle_id="b1")
    assert update.run == 5
    assert update.signature is not None
    Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key().verify(update.signature, update.signing_input())


CHECKSUMS = """
output(input.map((h) => { const b = unhex(h); return [P.crc32(b), hex(P.sha256(b))]; }));
"""


def test_crc32_and_sha256_match_zlib_and_hashlib() -> None:
    # Lengths around the SHA-256 block and padding boundaries, and a multi-block message.
    blobs = [os.urandom(n) for n in (0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 70_000)]
    blobs.append(b"123456789")
    got = run_protocol_js(CHECKSUMS, [b.hex() for b in blobs])
    assert got == [[zlib.crc32(b), hashlib.sha256(b).hexdigest()] for b in blobs]
    assert got[-1][0] == 0xCBF43926


PEM_SIGNING = """
const key = await P.importSigningKey(input.pem);
const update = P.makeUpdate({ federation: "default", bundleId: "b1", round: 4, modelVersion: 3, clientId: "dev-7",
  numSamples: 12, updateId: P.newUpdateId(), payload: Uint8Array.of(1, 0, 9), metrics: { train_loss: 0.1 + 0.2 },
  run: 1767225600000 });
const signed = await P.signUpdate(update, key);
const wrongPem = await P.importSigningKey(input.public_pem).then(() => "accepted", (e) => e.message);
output({ wire: hex(P.encodeUpdate(signed)), json: hex(P.encodeUpdate(signed, { compact: false })), wrongPem });
"""


def test_a_provisioned_pkcs8_key_signs_updates_the_reference_verifies() -> None:
    # Prepare: an Ed25519 key in the PKCS#8 PEM form `fmfl provision` writes to devices/ID/signing.key.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from fmfl.protocol import ClientUpdate

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    # Execute
    got = run_protocol_js(PEM_SIGNING, {"pem": pem, "public_pem": public_pem})
    # Assert: both forms decode and verify under the device's public key (compact first, as the device sends).
    for wire in (got["wire"], got["json"]):
        update = ClientUpdate.decode(bytes.fromhex(wire), Limits.for_vector_size(64), federation="default",
                                     client_id="dev-7", bundle_id="b1")
        assert update.signature is not None
        assert update.nonce is not None
        key.public_key().verify(update.signature, update.signing_input())
    assert bytes.fromhex(got["wire"])[7] == 1
    assert len(bytes.fromhex(got["wire"])) < len(bytes.fromhex(got["json"]))
    assert got["wrongPem"] == 'expected a PKCS#8 "PRIVATE KEY" PEM, got "PUBLIC KEY"'
