/**
 * The six messages between devices and gateways (docs/protocol.md, section 5), as plain validated objects
 * with encode and decode functions. Mirrors fmfl.protocol.messages: every object is checked where it is
 * built (locally or from bytes) and anything invalid is a ProtocolError.
 *
 * Field names are the wire keys in camelCase (`model_version` -> `modelVersion`). Optional keys that are
 * absent are `null`. Integers are Numbers (all below 2^53); floats are Numbers.
 */
import { ProtocolError } from "./errors.js";
import { checkBundleId, checkId } from "./ids.js";
import { checkFloat, checkInt, checkKey, Fields } from "./fields.js";
import { frame, MessageType, TYPE_NAMES, unframe } from "./framing.js";
import { canEncodeCompact, encodeCompact } from "./compact.js";
import { PyFloat } from "./json.js";
import { parseCodecSpec } from "./codec/spec.js";
import { utf8Length } from "./bytes.js";

const MAX_REASON_CHARS = 256;
const SIGNATURE_BYTES = 64;
const NONCE = /^[0-9a-f]{32,128}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const COMPACT_NEEDS_CONTEXT = "a compact ClientUpdate is read with its topic's context (decodeUpdate)";

/**
 * @typedef {object} ClientHello
 * @property {string} clientId
 * @property {Record<string, string|number|boolean|string[]|PyFloat>} capabilities (1.2: `protocol: "1.2"`)
 * @property {string|null} bundleId
 * @property {number|null} modelVersion
 *
 * @typedef {object} ClientStatus
 * @property {string} clientId
 * @property {boolean} online
 *
 * @typedef {object} RoundTask
 * @property {string} federation
 * @property {string} bundleId
 * @property {number} round
 * @property {number} modelVersion the global version devices must train from
 * @property {string[]} selected
 * @property {number} batchSize
 * @property {number} lr
 * @property {string} codec a codec spec (section 7)
 * @property {number} deadline Unix seconds, the gateway's clock
 * @property {number} seed
 * @property {number|null} localSteps
 * @property {number|null} localEpochs
 * @property {number|null} run (1.2)
 *
 * @typedef {object} GlobalModel
 * @property {string} bundleId
 * @property {number} modelVersion
 * @property {number|null} baseVersion null: dense weights; else the delta from that version
 * @property {Uint8Array} payload an update payload (section 6)
 * @property {number|null} run (1.2)
 * @property {string|null} weightsSha256 (1.2, downlink deltas) SHA-256 of the weights of modelVersion as
 *   float32 little-endian, 64 lowercase hex digits (section 2b)
 * @property {boolean|null} deltas (1.2) true on a dense model whose run publishes later versions as deltas
 *
 * @typedef {object} ClientUpdate
 * @property {string} federation
 * @property {string} bundleId
 * @property {number} round
 * @property {number} modelVersion the version the device trained from
 * @property {string} clientId
 * @property {number} numSamples
 * @property {string} updateId
 * @property {Uint8Array} payload
 * @property {Record<string, number>} metrics
 * @property {string|null} nonce (1.1) set with the signature
 * @property {Uint8Array|null} signature (1.1) 64-byte Ed25519 signature over signingInput()
 * @property {number|null} run (1.2) the task's run, echoed
 *
 * @typedef {object} Ack
 * @property {string} clientId
 * @property {number} round
 * @property {string} updateId
 * @property {boolean} accepted
 * @property {string} reason "" when accepted
 * @property {string} detail (1.2) "" when absent
 * @property {number|null} run (1.2)
 */

/** @param {number|null|undefined} run */
function checkRun(run) {
  if (run !== null && run !== undefined) checkInt("run", run, 1);
}

/** @param {number|null|undefined} run */
const runKey = (run) => (run === null || run === undefined ? {} : { run });

/** @param {unknown} value @returns {string} */
export function checkNonce(value) {
  if (typeof value !== "string" || !NONCE.test(value)) throw new ProtocolError("bad_metadata", `nonce ${JSON.stringify(value)?.slice(0, 80)} must be 32..128 lowercase hex digits`);
  return value;
}

// ---------------------------------------------------------------------------------------------- builders

/** @param {Partial<ClientHello> & {clientId: string}} h @returns {ClientHello} */
export function makeHello({ clientId, capabilities = {}, bundleId = null, modelVersion = null }) {
  checkId(clientId);
  if (bundleId !== null) checkBundleId(bundleId);
  if (modelVersion !== null) checkInt("model_version", modelVersion);
  for (const [key, value] of Object.entries(capabilities)) {
    checkKey("capabilities", key);
    if (value instanceof PyFloat) checkFloat(`capabilities.${key}`, value.value);
    else if (typeof value === "number") checkFloat(`capabilities.${key}`, value);
    else if (Array.isArray(value)) {
      if (!value.every((v) => typeof v === "string")) throw new ProtocolError("bad_metadata", `capability '${key}': a list holds strings only`);
    } else if (typeof value !== "string" && typeof value !== "boolean") throw new ProtocolError("bad_metadata", `capability '${key}': ${typeof value}`);
  }
  return { clientId, capabilities, bundleId, modelVersion };
}

/** @param {ClientStatus} s @returns {ClientStatus} */
export function makeStatus({ clientId, online }) {
  checkId(clientId);
  if (typeof online !== "boolean") throw new ProtocolError("bad_metadata", "field 'online': expected true or false");
  return { clientId, online };
}

/** @param {Omit<RoundTask, "localSteps"|"localEpochs"|"run"> & Partial<RoundTask>} t @returns {RoundTask} */
export function makeTask({ federation, bundleId, round, modelVersion, selected, batchSize, lr, codec, deadline, seed, localSteps = null, localEpochs = null, run = null }) {
  checkId(federation, "federation");
  checkRun(run);
  checkBundleId(bundleId);
  checkInt("round", round);
  checkInt("model_version", modelVersion);
  selected = selected.map((c) => checkId(c));
  if (new Set(selected).size !== selected.length) throw new ProtocolError("bad_metadata", "selected clients repeat");
  checkInt("batch_size", batchSize, 1);
  if (checkFloat("lr", lr) <= 0) throw new ProtocolError("bad_metadata", `lr must be positive, got ${lr}`);
  parseCodecSpec(codec);
  if (checkFloat("deadline", deadline) < 0) throw new ProtocolError("bad_metadata", "deadline must be a Unix time >= 0");
  checkInt("seed", seed);
  if ((localSteps === null) === (localEpochs === null)) throw new ProtocolError("bad_metadata", "set exactly one of local_steps and local_epochs");
  if (localSteps !== null) checkInt("local_steps", localSteps, 1);
  if (localEpochs !== null) checkInt("local_epochs", localEpochs, 1);
  return { federation, bundleId, round, modelVersion, selected, batchSize, lr, codec, deadline, seed, localSteps, localEpochs, run };
}

/** @param {Omit<GlobalModel, "run"|"weightsSha256"|"deltas"> & Partial<GlobalModel>} m @returns {GlobalModel} */
export function makeGlobalModel({ bundleId, modelVersion, baseVersion = null, payload, run = null, weightsSha256 = null, deltas = null }) {
  checkBundleId(bundleId);
  checkRun(run);
  if (weightsSha256 !== null && !SHA256_HEX.test(weightsSha256)) throw new ProtocolError("bad_metadata", `weights_sha256 ${JSON.stringify(weightsSha256.slice(0, 80))} must be 64 lowercase hex digits`);
  checkInt("model_version", modelVersion);
  if (baseVersion !== null && checkInt("base_version", baseVersion) >= modelVersion) throw new ProtocolError("bad_metadata", "base_version must be older than model_version");
  return { bundleId, modelVersion, baseVersion, payload, run, weightsSha256, deltas };
}

/**
 * @param {Omit<ClientUpdate, "metrics"|"nonce"|"signature"|"run"> & Partial<ClientUpdate>} u
 * @returns {ClientUpdate}
 */
export function makeUpdate({ federation, bundleId, round, modelVersion, clientId, numSamples, updateId, payload, metrics = {}, nonce = null, signature = null, run = null }) {
  checkId(federation, "federation");
  checkRun(run);
  checkBundleId(bundleId);
  checkInt("round", round);
  checkInt("model_version", modelVersion);
  checkId(clientId);
  checkInt("num_samples", numSamples);
  checkId(updateId, "update id");
  for (const [key, value] of Object.entries(metrics)) {
    checkKey("metrics", key);
    checkFloat(`metrics.${key}`, value);
  }
  if (nonce !== null) checkNonce(nonce);
  if (signature !== null) {
    if (nonce === null) throw new ProtocolError("bad_metadata", "a signed update carries a nonce");
    if (signature.length !== SIGNATURE_BYTES) throw new ProtocolError("bad_metadata", `signature of ${signature.length} bytes, expected ${SIGNATURE_BYTES}`);
  }
  return { federation, bundleId, round, modelVersion, clientId, numSamples, updateId, payload, metrics, nonce, signature, run };
}

/** @param {Omit<Ack, "reason"|"detail"|"run"> & Partial<Ack>} a @returns {Ack} */
export function makeAck({ clientId, round, updateId, accepted, reason = "", detail = "", run = null }) {
  checkId(clientId);
  checkInt("round", round);
  checkId(updateId, "update id");
  checkRun(run);
  if (typeof accepted !== "boolean") throw new ProtocolError("bad_metadata", "field 'accepted': expected true or false");
  if (reason.length > MAX_REASON_CHARS) throw new ProtocolError("too_large", `ack reason longer than ${MAX_REASON_CHARS} characters`);
  if (utf8Length(detail) > MAX_REASON_CHARS) throw new ProtocolError("too_large", `ack detail longer than ${MAX_REASON_CHARS} bytes`);
  return { clientId, round, updateId, accepted, reason, detail, run };
}

// ---------------------------------------------------------------------------------------------- encoders

/** @param {Record<string, number>} metrics */
const floatMap = (metrics) => Object.fromEntries(Object.entries(metrics).map(([k, v]) => [k, new PyFloat(v)]));

/** The framed ClientHello. @param {Parameters<typeof makeHello>[0]} h */
export function encodeHello(h) {
  const m = makeHello(h);
  return frame(MessageType.HELLO, { client_id: m.clientId, capabilities: m.capabilities, bundle_id: m.bundleId, model_version: m.modelVersion });
}

/** The framed ClientStatus. @param {ClientStatus} s */
export function encodeStatus(s) {
  const m = makeStatus(s);
  return frame(MessageType.STATUS, { client_id: m.clientId, online: m.online });
}

/** The framed RoundTask (the gateway's message; here for tests and tools). @param {Parameters<typeof makeTask>[0]} t */
export function encodeTask(t) {
  const m = makeTask(t);
  return frame(MessageType.TASK, {
    federation: m.federation, bundle_id: m.bundleId, round: m.round, model_version: m.modelVersion, selected: m.selected,
    batch_size: m.batchSize, lr: new PyFloat(m.lr), codec: m.codec, deadline: new PyFloat(m.deadline), seed: m.seed,
    local_steps: m.localSteps, local_epochs: m.localEpochs, ...runKey(m.run),
  });
}

/** The framed GlobalModel (the gateway's message). @param {Parameters<typeof makeGlobalModel>[0]} g */
export function encodeGlobalModel(g) {
  const m = makeGlobalModel(g);
  const meta = { bundle_id: m.bundleId, model_version: m.modelVersion, base_version: m.baseVersion, ...runKey(m.run) };
  if (m.weightsSha256 !== null) Object.assign(meta, { weights_sha256: m.weightsSha256 });
  if (m.deltas !== null) Object.assign(meta, { deltas: m.deltas });
  return frame(MessageType.GLOBAL_MODEL, meta, m.payload);
}

/** The framed Ack (the gateway's message). @param {Parameters<typeof makeAck>[0]} a */
export function encodeAck(a) {
  const m = makeAck(a);
  return frame(MessageType.ACK, {
    client_id: m.clientId, round: m.round, update_id: m.updateId, accepted: m.accepted, reason: m.reason,
    ...runKey(m.run), ...(m.detail ? { detail: m.detail } : {}),
  });
}

/** @param {Uint8Array} bytes */
function base64(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/**
 * True if the update can go out in the compact form (1.2): it names a run, its update id and nonce are
 * 32 hex digits, and a nonce comes only with a signature.
 * @param {ClientUpdate} u
 */
export function compactOk(u) {
  return u.run !== null && (u.nonce === null) === (u.signature === null) && canEncodeCompact(u.updateId, u.nonce, u.metrics);
}

/**
 * The framed ClientUpdate. `compact: true` writes the binary metadata (1.2; RangeError unless compactOk),
 * `false` the JSON form; by default what a 1.2 device sends: compact when it can (the task named a run),
 * else JSON (a 1.1 gateway).
 * @param {Parameters<typeof makeUpdate>[0]} u
 * @param {{compact?: boolean}} [options]
 */
export function encodeUpdate(u, { compact } = {}) {
  const m = makeUpdate(u);
  const useCompact = compact ?? compactOk(m);
  if (useCompact) {
    if (!compactOk(m)) throw new RangeError("this update cannot use the compact form (no run, or ids that are not 32 hex digits)");
    const meta = encodeCompact({
      run: /** @type {number} */ (m.run), round: m.round, modelVersion: m.modelVersion, numSamples: m.numSamples,
      updateId: m.updateId, metrics: m.metrics, nonce: m.nonce, signature: m.signature,
    });
    return frame(MessageType.UPDATE, meta, m.payload);
  }
  /** @type {Record<string, unknown>} */
  const meta = {
    federation: m.federation, bundle_id: m.bundleId, round: m.round, model_version: m.modelVersion, client_id: m.clientId,
    num_samples: m.numSamples, update_id: m.updateId, metrics: floatMap(m.metrics),
  };
  if (m.nonce !== null) meta.nonce = m.nonce;
  if (m.signature !== null) meta.sig = base64(m.signature);
  Object.assign(meta, runKey(m.run));
  return frame(MessageType.UPDATE, meta, m.payload);
}

// ---------------------------------------------------------------------------------------------- decoders

/** @typedef {import("./framing.js").Unframed} Unframed */

/**
 * The checks every `decodeX` makes after unframing, in the reference's order.
 * @param {Unframed} parts @param {import("./limits.js").Limits} limits @param {number} want
 * @returns {Fields}
 */
function fieldsOf(parts, limits, want) {
  if (parts.type !== want) throw new ProtocolError("wrong_type", `expected ${TYPE_NAMES[want]}, got ${TYPE_NAMES[parts.type]}`);
  if (parts.payload.length && want !== MessageType.GLOBAL_MODEL && want !== MessageType.UPDATE) throw new ProtocolError("trailing_bytes", `${TYPE_NAMES[want]} carries no payload`);
  if (parts.json === null) throw new ProtocolError("bad_metadata", COMPACT_NEEDS_CONTEXT);
  return new Fields(parts.json, limits);
}

/** @param {Fields} f @returns {ClientHello} */
function helloFrom(f) {
  const caps = f.capabilities("capabilities");
  // A float capability stays a PyFloat, so that writing the hello again gives the same bytes (2.0, not 2).
  const capabilities = Object.fromEntries(Object.entries(caps.values).map(([k, v]) => [k, caps.floats.has(k) ? new PyFloat(/** @type {number} */ (v)) : v]));
  return makeHello({ clientId: f.string("client_id"), capabilities, bundleId: f.optionalString("bundle_id"), modelVersion: f.optionalInteger("model_version") });
}

/** @param {Fields} f @returns {ClientStatus} */
function statusFrom(f) {
  return makeStatus({ clientId: f.string("client_id"), online: f.boolean("online") });
}

/** @param {Fields} f @returns {RoundTask} */
function taskFrom(f) {
  return makeTask({
    federation: f.string("federation"), bundleId: f.string("bundle_id"), round: f.integer("round"),
    modelVersion: f.integer("model_version"), selected: f.stringList("selected"), batchSize: f.integer("batch_size", 1),
    lr: f.number("lr"), codec: f.string("codec"), deadline: f.number("deadline"), seed: f.integer("seed"),
    localSteps: f.optionalInteger("local_steps", 1), localEpochs: f.optionalInteger("local_epochs", 1), run: f.optionalInteger("run", 1),
  });
}

/** @param {Fields} f @param {Uint8Array} payload @returns {GlobalModel} */
function globalModelFrom(f, payload) {
  return makeGlobalModel({
    bundleId: f.string("bundle_id"), modelVersion: f.integer("model_version"), baseVersion: f.optionalInteger("base_version"),
    payload, run: f.optionalInteger("run", 1), weightsSha256: f.optionalString("weights_sha256"),
    deltas: f.optional("deltas") ? f.boolean("deltas") : null,
  });
}

/** @param {Fields} f @returns {Ack} */
function ackFrom(f) {
  return makeAck({
    clientId: f.string("client_id"), round: f.integer("round"), updateId: f.string("update_id"), accepted: f.boolean("accepted"),
    reason: f.string("reason"), detail: f.optional("detail") ? f.string("detail") : "", run: f.optionalInteger("run", 1),
  });
}

/** @param {string} text */
function signatureBytes(text) {
  // Python's b64decode(validate=True): only the base64 alphabet, and padding that completes a quantum.
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4) throw new ProtocolError("bad_metadata", "field 'sig': not base64");
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    throw new ProtocolError("bad_metadata", "field 'sig': not base64");
  }
}

/** @param {Fields} f @param {Uint8Array} payload @returns {ClientUpdate} */
function updateFrom(f, payload) {
  return makeUpdate({
    federation: f.string("federation"), bundleId: f.string("bundle_id"), round: f.integer("round"), modelVersion: f.integer("model_version"),
    clientId: f.string("client_id"), numSamples: f.integer("num_samples"), updateId: f.string("update_id"), payload,
    metrics: f.numberMap("metrics"), nonce: f.optionalString("nonce"), signature: f.optional("sig") ? signatureBytes(f.string("sig")) : null,
    run: f.optionalInteger("run", 1),
  });
}

/** @param {Uint8Array|ArrayBuffer} data @param {import("./limits.js").Limits} limits @returns {ClientHello} */
export function decodeHello(data, limits) {
  return helloFrom(fieldsOf(unframe(data, limits), limits, MessageType.HELLO));
}

/** @param {Uint8Array|ArrayBuffer} data @param {import("./limits.js").Limits} limits @returns {ClientStatus} */
export function decodeStatus(data, limits) {
  return statusFrom(fieldsOf(unframe(data, limits), limits, MessageType.STATUS));
}

/** @param {Uint8Array|ArrayBuffer} data @param {import("./limits.js").Limits} limits @returns {RoundTask} */
export function decodeTask(data, limits) {
  return taskFrom(fieldsOf(unframe(data, limits), limits, MessageType.TASK));
}

/** @param {Uint8Array|ArrayBuffer} data @param {import("./limits.js").Limits} limits @returns {GlobalModel} */
export function decodeGlobalModel(data, limits) {
  const parts = unframe(data, limits);
  return globalModelFrom(fieldsOf(parts, limits, MessageType.GLOBAL_MODEL), parts.payload);
}

/** @param {Uint8Array|ArrayBuffer} data @param {import("./limits.js").Limits} limits @returns {Ack} */
export function decodeAck(data, limits) {
  return ackFrom(fieldsOf(unframe(data, limits), limits, MessageType.ACK));
}

/**
 * Either form of a ClientUpdate that arrived on `update/{clientId}` of `federation`; a compact one takes
 * federation, client id and bundle id from `context` (the gateway's own run's bundle).
 * @param {Uint8Array|ArrayBuffer} data @param {import("./limits.js").Limits} limits
 * @param {{federation: string, clientId: string, bundleId: string}} context
 * @returns {ClientUpdate}
 */
export function decodeUpdate(data, limits, context) {
  const parts = unframe(data, limits);
  if (parts.type !== MessageType.UPDATE) throw new ProtocolError("wrong_type", `expected UPDATE, got ${TYPE_NAMES[parts.type]}`);
  const c = parts.compact;
  if (c === null) return updateFrom(new Fields(/** @type {Record<string, unknown>} */ (parts.json), limits), parts.payload);
  return makeUpdate({
    federation: context.federation, bundleId: context.bundleId, round: c.round, modelVersion: c.modelVersion,
    clientId: context.clientId, numSamples: c.numSamples, updateId: c.updateId, payload: parts.payload, metrics: c.metrics,
    nonce: c.nonce, signature: c.signature, run: c.run,
  });
}

/**
 * Any framed message with JSON metadata, as `{type, message}` with type one of "hello", "status", "task",
 * "global_model", "update", "ack". A compact ClientUpdate needs decodeUpdate and its topic's context.
 * @param {Uint8Array|ArrayBuffer} data @param {import("./limits.js").Limits} limits
 */
export function decodeMessage(data, limits) {
  const parts = unframe(data, limits);
  const f = fieldsOf(parts, limits, parts.type);
  switch (parts.type) {
    case MessageType.HELLO: return { type: "hello", message: helloFrom(f) };
    case MessageType.STATUS: return { type: "status", message: statusFrom(f) };
    case MessageType.TASK: return { type: "task", message: taskFrom(f) };
    case MessageType.GLOBAL_MODEL: return { type: "global_model", message: globalModelFrom(f, parts.payload) };
    case MessageType.ACK: return { type: "ack", message: ackFrom(f) };
    default: return { type: "update", message: updateFrom(f, parts.payload) };
  }
}
