// golden.html: runs the protocol's golden vectors (docs/protocol.md section 9) through js/protocol in this
// browser and publishes {ok, checks, passed, failures, kinds, userAgent} as window.__goldenResult. Each
// ?vectors=URL names one golden file; its kind is told by its keys: golden_vectors.json (1.1 payloads),
// golden_1_2.json (1.2 payloads and messages), golden_downlink.json (a downlink delta). ?oracle=URL names
// encoder cases the Python reference wrote (tests/web/test_protocol_browser.py): chain, seeds, the deltas of
// each round and the reference's payloads, sent values and final residual, checked here bit for bit.
import * as P from "./protocol/index.js";

const hex = P.toHex;
const unhex = P.fromHex;
/** @param {ArrayLike<number>} a */
const f32hex = (a) => hex(new Uint8Array(Float32Array.from(a).buffer));
/** @param {string} h */
const f32 = (h) => new Float32Array(unhex(h).slice().buffer);

class Checks {
  constructor() {
    this.count = 0;
    /** @type {string[]} */
    this.failures = [];
  }

  /** @param {string} name @param {unknown} got @param {unknown} want */
  equal(name, got, want) {
    this.count++;
    const g = JSON.stringify(got);
    const w = JSON.stringify(want);
    if (g !== w) this.failures.push(`${name}: got ${g.slice(0, 300)}, want ${w.slice(0, 300)}`);
  }

  /** @param {string} name @param {() => unknown | Promise<unknown>} fn */
  async run(name, fn) {
    try {
      await fn();
    } catch (error) {
      this.count++;
      this.failures.push(`${name}: threw ${/** @type {Error} */ (error).stack || error}`);
    }
  }
}

/** @param {Checks} c @param {string} name @param {any} v @param {number[]|null} tensorSizes @param {number} seed */
function payloadVector(c, name, v, tensorSizes, seed) {
  const delta = Float32Array.from(v.input);
  const { payload, sent } = new P.UpdateEncoder(v.chain, delta.length, tensorSizes, { seed: 7 }).encode(delta, { seed });
  const decoded = P.decodeUpdatePayload(unhex(v.payload_hex), delta.length, P.Limits.forVectorSize(delta.length));
  c.equal(`${name} decodes`, [Array.from(decoded.indices), f32hex(decoded.values)], [v.indices, v.values_f32_hex]);
  c.equal(`${name} sent values`, [Array.from(sent.indices), f32hex(sent.values)], [v.indices, v.values_f32_hex]);
  if (v.chain.includes("zstd")) {
    // The browser writes zstd as raw blocks: same body, so its own payload decodes to the same values.
    const mine = P.decodeUpdatePayload(payload, delta.length, P.Limits.forVectorSize(delta.length));
    c.equal(`${name} own zstd payload`, f32hex(mine.values), v.values_f32_hex);
  } else c.equal(`${name} bytes`, hex(payload), v.payload_hex);
}

/** @param {Checks} c @param {any} g golden_vectors.json */
function goldenPayloads11(c, g) {
  g.vectors.forEach((v, i) => payloadVector(c, `1.1 #${i} ${v.chain}`, { ...v, input: g.inputs[v.input] }, g.tensor_sizes[v.input], g.seed));
}

/** @param {Checks} c @param {any} g golden_1_2.json */
function golden12(c, g) {
  for (const v of g.payloads) payloadVector(c, `1.2 ${v.name}`, v, null, 1234);
  const m = g.messages;
  const RUN = g.run;
  const t = P.topics("fmfl", "default");
  const limits = P.Limits.forVectorSize(64);
  const task = P.encodeTask({ federation: "default", bundleId: "b1", round: 12, modelVersion: 11, selected: ["dev-1", "dev-2"],
    batchSize: 16, lr: 0.01, codec: "topk:0.01+int8+ef", deadline: 1767225900.0, seed: 42, localEpochs: 1, run: RUN });
  c.equal("task bytes", hex(task), m.task.message_hex);
  c.equal("task chunks", P.splitMessage(task, undefined, { run: RUN }).map(hex), m.task.packets_hex);
  const ack = P.encodeAck({ clientId: "dev-1", round: 12, updateId: "00112233445566778899aabbccddeeff", accepted: false,
    reason: "wrong_version", detail: "model_version 10, round 12 trains version 11", run: RUN });
  c.equal("ack bytes", hex(ack), m.ack.message_hex);
  c.equal("ack chunks", P.splitMessage(ack, undefined, { run: RUN }).map(hex), m.ack.packets_hex);
  const weights = Float32Array.from(m.global_model.weights);
  const model = P.encodeGlobalModel({ bundleId: "b1", modelVersion: 11, baseVersion: null, run: RUN,
    payload: new P.UpdateEncoder("dense", weights.length).encode(weights).payload });
  c.equal("global model bytes", hex(model), m.global_model.message_hex);
  c.equal("global model chunks", P.splitMessage(model, m.global_model.max_packet_bytes, { run: RUN }).map(hex), m.global_model.packets.map((p) => p.hex));
  const r = new P.Reassembler(1 << 20);
  const steps = m.global_model.packets.slice().reverse().map((p) => r.add(unhex(p.hex), t.source(p.topic)));
  const received = P.decodeGlobalModel(/** @type {Uint8Array} */ (steps[steps.length - 1]), limits);
  c.equal("global model reassembled in reverse", [steps.slice(0, -1), received.run, Array.from(P.denseWeights(received, 12, limits))],
    [[null, null, null], RUN, m.global_model.weights]);
  const update = { federation: "default", bundleId: "b1", round: 12, modelVersion: 11, clientId: "dev-1", numSamples: 480,
    updateId: "00112233445566778899aabbccddeeff", payload: unhex("0102"), metrics: { train_loss: 0.5, eval_accuracy: 0.75, my_metric: -1.0 }, run: RUN };
  c.equal("compact update", hex(P.encodeUpdate(update, { compact: true })), m.compact_update.packet_hex);
  c.equal("JSON update", hex(P.encodeUpdate(update, { compact: false })), m.compact_update.json_form_hex);
  const signed = { ...update, nonce: "ffeeddccbbaa99887766554433221100", signature: Uint8Array.from({ length: 64 }, (_, i) => i) };
  c.equal("signed compact update", hex(P.encodeUpdate(signed)), m.compact_signed_update.packet_hex);
  const gotTask = P.decodeTask(unhex(m.task.message_hex), limits);
  c.equal("task decodes", [gotTask.run, gotTask.round, gotTask.codec, gotTask.selected], [RUN, 12, "topk:0.01+int8+ef", ["dev-1", "dev-2"]]);
  const gotAck = P.decodeAck(unhex(m.ack.message_hex), limits);
  c.equal("ack decodes", [gotAck.accepted, gotAck.reason, gotAck.detail, gotAck.run], [false, "wrong_version", "model_version 10, round 12 trains version 11", RUN]);
}

/** @param {Checks} c @param {any} g golden_downlink.json */
function goldenDownlink(c, g) {
  const t = P.topics("fmfl", "default");
  const limits = P.Limits.forVectorSize(12);
  const r = new P.Reassembler(1 << 20);
  const steps = g.delta_packets.slice().reverse().map((p) => r.add(unhex(p.hex), t.source(p.topic)));
  const delta = P.decodeGlobalModel(/** @type {Uint8Array} */ (steps[steps.length - 1]), limits);
  const base = f32(g.base_f32_hex);
  const weights = P.applyDelta(base, delta, limits);
  c.equal("downlink delta applied", [f32hex(weights), P.weightsSha256(weights)], [g.weights_f32_hex, g.weights_sha256]);
  c.equal("downlink base untouched", f32hex(base), g.base_f32_hex);
  const dense = P.denseWeights(P.decodeGlobalModel(unhex(g.dense_message_hex), limits), 12, limits);
  c.equal("downlink dense copy", f32hex(dense), g.weights_f32_hex);
  let refused = null;
  try {
    P.applyDelta(f32(g.wrong_base_f32_hex), delta, limits);
  } catch (error) {
    refused = /** @type {any} */ (error).reason;
  }
  c.equal("downlink wrong base refused", refused, "hash_mismatch");
}

/** @param {ArrayLike<number>} a */
const f64hex = (a) => hex(new Uint8Array(Float64Array.from(a).buffer));

/** @param {Checks} c @param {any[]} cases encoder cases written by the reference */
function oracleCases(c, cases) {
  cases.forEach((k, n) => {
    const name = `oracle #${n} ${k.spec}`;
    const encoder = new P.UpdateEncoder(k.spec, k.size, k.tensor_sizes, { seed: BigInt(k.encoder_seed) });
    k.rounds.forEach((r, i) => {
      const { payload, sent } = encoder.encode(f32(r.delta), { seed: r.seed === null ? null : BigInt(r.seed) });
      c.equal(`${name} round ${i} sent`, [Array.from(sent.indices), f32hex(sent.values)], [r.indices, r.values]);
      if (k.spec.includes("zstd")) {
        const mine = P.decodeUpdatePayload(payload, k.size, P.Limits.forVectorSize(k.size));
        c.equal(`${name} round ${i} own zstd payload`, f32hex(mine.values), r.values);
      } else c.equal(`${name} round ${i} bytes`, hex(payload), r.payload);
    });
    c.equal(`${name} residual`, f64hex(encoder.residual), k.residual);
  });
}

/** The signed-update vector of docs/protocol.md ("Signed updates"), signed with this browser's WebCrypto. @param {Checks} c */
async function signedUpdate(c) {
  const update = P.makeUpdate({ federation: "default", bundleId: "b1", round: 3, modelVersion: 2, clientId: "dev-1", numSamples: 480,
    updateId: "00112233445566778899aabbccddeeff", nonce: "ffeeddccbbaa99887766554433221100",
    metrics: { train_loss: 0.5, eval_accuracy: 0.1 }, payload: Uint8Array.of(1, 2, 3) });
  const key = await P.importSigningKey(Uint8Array.from({ length: 32 }, (_, i) => i));
  const signature = await P.sign(key, P.signingInput(update));
  c.equal("signed update signature", btoa(String.fromCharCode(...signature)), "W8102BEHZZJKi8J0s8mNYNg6W3Z3XdCwOCLw2d19Sjeq0sr31dMcKXfN9mbBH8IbkS8sU0cFc/7PiXEwWtLYDg==");
  // SHA-256 here is plain JS (sync); check it against this browser's WebCrypto on a few lengths.
  for (const n of [0, 55, 64, 1000]) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 31) & 255);
    c.equal(`sha256 of ${n} bytes`, hex(P.sha256(bytes)), hex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))));
  }
}

async function main() {
  const c = new Checks();
  const kinds = [];
  for (const url of new URLSearchParams(location.search).getAll("vectors")) {
    await c.run(url, async () => {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
      const g = await response.json();
      if (g.vectors && g.inputs) (kinds.push("1.1"), goldenPayloads11(c, g));
      else if (g.payloads && g.messages) (kinds.push("1.2"), golden12(c, g));
      else if (g.delta_packets) (kinds.push("downlink"), goldenDownlink(c, g));
      else throw new Error(`${url}: not a golden vector file`);
    });
  }
  for (const url of new URLSearchParams(location.search).getAll("oracle")) {
    await c.run(url, async () => {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
      kinds.push("oracle");
      oracleCases(c, await response.json());
    });
  }
  await c.run("signed update", () => signedUpdate(c));
  const result = { ok: c.failures.length === 0 && kinds.length > 0, checks: c.count, passed: c.count - c.failures.length,
    failures: c.failures, kinds, userAgent: navigator.userAgent };
  /** @type {any} */ (window).__goldenResult = result;
  const summary = /** @type {HTMLElement} */ (document.getElementById("summary"));
  summary.textContent = `${result.passed} of ${result.checks} checks passed (${kinds.join(", ") || "no vectors given"})`;
  summary.className = result.ok ? "pass" : "fail";
  const list = /** @type {HTMLElement} */ (document.getElementById("failures"));
  for (const f of c.failures) list.appendChild(Object.assign(document.createElement("li"), { textContent: f }));
}

main();
