/**
 * fmfl wire protocol 1.2 for the browser device: a faithful JavaScript port of docs/protocol.md (the
 * normative text) and of its Python reference, fmfl.protocol. Plain ES modules, no build step; the only
 * dependency is "fzstd" (zstd decoding), mapped by the page's import map (node: web/tools/
 * register_import_map.mjs). Bytes are Uint8Array; every decoder throws ProtocolError (.reason, .detail)
 * and nothing else for bad input.
 *
 * API (what the web device builds on):
 *
 *   Topics and limits
 *     topics(prefix, federation) / new Topics(federation, prefix="fmfl")
 *         .hello(id) .status(id) .update(id) .ack(id) .task .globalModel ("…/global/+")
 *         .globalDelta ("…/delta/+", 1.2) .globalModelChunk(i) .globalDeltaChunk(i)
 *         .deviceSubscriptions(id) .parse(topic) -> [kind, level] .source(topic) (groups global/i, delta/i)
 *     Limits.forVectorSize(manifestTrainableSize)           decode bounds (section 6, "Bounds")
 *
 *   Messages (section 5; fields in camelCase, absent optional keys are null)
 *     encodeHello({clientId, capabilities, bundleId, modelVersion})   -> framed bytes
 *     encodeStatus({clientId, online})                                -> framed bytes (also the MQTT will)
 *     encodeUpdate(update, {compact?})  compact: true = binary metadata (1.2; needs run + 32-hex ids),
 *                                       false = JSON; default: compact when compactOk(update)
 *     makeUpdate({...}) validates an update; newUpdateId(); compactOk(update)
 *     decodeTask(bytes, limits) decodeGlobalModel(bytes, limits) decodeAck(bytes, limits)
 *     decodeHello / decodeStatus / decodeUpdate(bytes, limits, {federation, clientId, bundleId})
 *     encodeTask / encodeGlobalModel / encodeAck (the gateway's side, for tests and tools)
 *     decodeMessage(bytes, limits) -> {type, message}
 *     isCompact(bytes)
 *
 *   Chunks (section 3)
 *     splitMessage(message, maxPacketBytes=131072, {run?, bare?, messageId?}) -> MQTT payloads
 *         a device sends a compact update with {bare: true}, everything else chunked
 *     new Reassembler(limits.maxMessageBytes, maxPending=4).add(payload, topics.source(topic))
 *         -> the whole message or null; parseChunk(payload); chunkRun(payload) (older-run hint)
 *
 *   Update payloads (sections 6 and 7)
 *     new UpdateEncoder(spec, size, tensorSizes=null, {seed})  spec e.g. task.codec
 *         .encode(delta Float32Array, {seed?}) -> {payload, sent: {indices, values, size}}
 *         .feedback (ErrorFeedback or null): .residual Float64Array, .toBytes(), .load(bytes)
 *         The reference device: seed = crc32("{clientId}:{round}") for both the encoder and encode().
 *     decodeUpdatePayload(payload, size, limits) -> {indices Uint32Array, values Float32Array, size}
 *     toDense(sparse) -> Float32Array
 *     parseCodecSpec(text) -> CodecSpec; codecSpecToString(spec); DEFAULT_CODEC
 *     Every spec the Python parser accepts is parsed and encoded byte for byte (stochastic rounding
 *     included: numpy's PCG64 is ported); zstd is written as raw blocks (same body, other frame bytes).
 *
 *   Downlink and runs (sections 2a, 2b, 5)
 *     new RunFollower().follow(run) -> false for an older run
 *     denseWeights(model, size, limits) -> Float32Array (checks weightsSha256 when present)
 *     applyDelta(baseWeights, deltaModel, limits) -> new Float32Array (only at the decoded indices; throws
 *         the decoder's reason or hash_mismatch, base untouched); weightsSha256(weights); checkWeights
 *     new ModelFeed({weights, version, run, deltaRun, limits}): the device's model intake (a port of the
 *         reference device's): .onTask(task), .onModel(model) -> {outcome: "delta"|"dense"|
 *         "ignored"|"refused", error}, .newRun(), .reset() at reconnect, .wantsDense (subscribe to
 *         topics.globalDelta always, to topics.globalModel while wantsDense); persist .version .weights .run
 *         .deltaRun after a change
 *
 *   Signed updates (section 5, "Signed updates"; WebCrypto Ed25519, secure contexts only)
 *     signingInput(update) -> bytes; importSigningKey(pemOrSeed) -> CryptoKey; sign(key, bytes);
 *     signUpdate(update, key) -> update with nonce and signature (sign before the outbox)
 *
 *   Acks (section 8)
 *     ackAction(ack) -> {dropFromOutbox: true, next, why}: every Ack is final for its update
 *
 *   Low level: crc32(bytes), sha256(bytes) (synchronous), canonicalJson(value), PyFloat, toHex, fromHex.
 */

export { ProtocolError, REASONS } from "./errors.js";
export { toHex, fromHex, concat, bytesEqual, utf8 } from "./bytes.js";
export { crc32 } from "./crc32.js";
export { sha256 } from "./sha256.js";
export { checkId, checkBundleId, isValidId } from "./ids.js";
export { Topics, topics } from "./topics.js";
export { Limits, maxPayloadBytes, MAX_VECTOR_SIZE } from "./limits.js";
export { canonicalJson, parseStrictJson, PyFloat, pyFloatRepr } from "./json.js";
export { frame, unframe, isCompact, MessageType, MAJOR_VERSION, MINOR_VERSION } from "./framing.js";
export { encodeCompact, decodeCompact, WELL_KNOWN_METRICS } from "./compact.js";
export {
  makeHello, makeStatus, makeTask, makeGlobalModel, makeUpdate, makeAck, compactOk,
  encodeHello, encodeStatus, encodeTask, encodeGlobalModel, encodeUpdate, encodeAck,
  decodeHello, decodeStatus, decodeTask, decodeGlobalModel, decodeUpdate, decodeAck, decodeMessage,
} from "./messages.js";
export { splitMessage, parseChunk, chunkRun, Reassembler, DEFAULT_MAX_PACKET_BYTES } from "./chunking.js";
export { parseCodecSpec, codecSpecToString, makeCodecSpec, DEFAULT_CODEC } from "./codec/spec.js";
export { UpdateEncoder } from "./codec/encoder.js";
export { decodeUpdatePayload, toDense } from "./codec/decoder.js";
export { ErrorFeedback } from "./codec/error_feedback.js";
export { RunFollower, weightsSha256, checkWeights, denseWeights, applyDelta, ModelFeed } from "./downlink.js";
export { signingInput, importSigningKey, sign, signUpdate, newUpdateId, newNonce } from "./signing.js";
export { ackAction, KNOWN_REFUSALS } from "./acks.js";
