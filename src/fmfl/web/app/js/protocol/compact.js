/**
 * Binary ClientUpdate metadata (protocol 1.2; docs/protocol.md, section 5, "Compact ClientUpdate"):
 * the uplink's metadata in a few dozen bytes instead of ~400 of JSON. Mirrors fmfl.protocol.compact.
 *
 *     run, round, model_version, num_samples   4 canonical unsigned LEB128 varints (<= 8 bytes, < 2^53)
 *     update_id                                16 bytes (the id is their 32 lowercase hex digits)
 *     flags                                    u8: bit 0 = signed
 *     [nonce, sig]                             16 + 64 bytes when signed
 *     metric count                             u8
 *     per metric                               tag u8 (1..8 well-known, 0 = u8 length + ASCII name), f64 LE
 */
import { ProtocolError } from "./errors.js";
import { concat, fromHex, toHex, view } from "./bytes.js";
import { checkFloat, checkKey, MAX_SAFE_INT, putOwn } from "./fields.js";

export const FLAG_BINARY_METADATA = 0x01;
const SIGNED = 0x01;
const UPDATE_ID_BYTES = 16;
const NONCE_BYTES = 16;
const SIGNATURE_BYTES = 64;
const MAX_VARINT_BYTES = 8;
/** Tag i (1-based) stands for WELL_KNOWN_METRICS[i - 1]; fixed forever (new names use tag 0). */
export const WELL_KNOWN_METRICS = Object.freeze([
  "train_loss", "train_seconds", "steps", "eval_loss", "eval_accuracy", "eval_samples", "local_dp_epsilon", "local_dp_releases",
]);

/**
 * @typedef {object} CompactFields
 * @property {number} run
 * @property {number} round
 * @property {number} modelVersion
 * @property {number} numSamples
 * @property {string} updateId 32 lowercase hex digits
 * @property {Record<string, number>} metrics
 * @property {string|null} nonce 32 lowercase hex digits, when signed
 * @property {Uint8Array|null} signature 64 bytes, when signed
 */

/** @param {string|null|undefined} text @param {number} nbytes */
function isHex(text, nbytes) {
  return typeof text === "string" && text.length === 2 * nbytes && /^[0-9a-f]*$/.test(text);
}

/**
 * True if these values fit the compact form (32-hex-digit update id and nonce, <= 255 metrics).
 * @param {string} updateId @param {string|null} nonce @param {Record<string, number>} metrics
 */
export function canEncodeCompact(updateId, nonce, metrics) {
  return isHex(updateId, UPDATE_ID_BYTES) && (nonce === null || isHex(nonce, NONCE_BYTES)) && Object.keys(metrics).length < 256;
}

/** @param {number} value */
function varint(value) {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${value} outside [0, 2**53 - 1]`);
  const out = [];
  let v = value;
  for (;;) {
    const byte = v % 128;
    v = Math.floor(v / 128); // not >>>: values reach 2^53
    if (v) out.push(byte | 0x80);
    else {
      out.push(byte);
      return Uint8Array.from(out);
    }
  }
}

/** Python's sorted() on str keys: code-point order. @param {string} a @param {string} b */
function cmp(a, b) {
  return a < b ? -1 : a > b ? 1 : 0; // metric names are ASCII (section 5's key rule), so UTF-16 order is code-point order
}

/**
 * The binary metadata of `f` (RangeError if it does not fit the compact form).
 * @param {CompactFields} f
 * @returns {Uint8Array}
 */
export function encodeCompact(f) {
  if (!canEncodeCompact(f.updateId, f.nonce, f.metrics)) throw new RangeError("the compact form needs 32-hex-digit update ids and nonces and at most 255 metrics");
  if ((f.signature === null) !== (f.nonce === null)) throw new RangeError("the compact form carries a nonce only with its signature, and vice versa");
  const parts = [varint(f.run), varint(f.round), varint(f.modelVersion), varint(f.numSamples), fromHex(f.updateId)];
  if (f.signature !== null && f.nonce !== null) parts.push(Uint8Array.of(SIGNED), fromHex(f.nonce), f.signature);
  else parts.push(Uint8Array.of(0));
  const names = Object.keys(f.metrics).sort(cmp);
  parts.push(Uint8Array.of(names.length));
  for (const name of names) {
    const tag = WELL_KNOWN_METRICS.indexOf(name) + 1;
    if (tag > 0) parts.push(Uint8Array.of(tag));
    else {
      const raw = Uint8Array.from(name, (c) => c.charCodeAt(0));
      parts.push(Uint8Array.of(0, raw.length), raw);
    }
    const value = new Uint8Array(8);
    view(value).setFloat64(0, f.metrics[name], true);
    parts.push(value);
  }
  return concat(parts);
}

class Reader {
  /** @param {Uint8Array} data */
  constructor(data) {
    this.data = data;
    this.at = 0;
  }

  /** @param {number} n @param {string} what */
  take(n, what) {
    if (this.at + n > this.data.length) throw new ProtocolError("truncated", `compact metadata ends inside ${what}`);
    const out = this.data.slice(this.at, this.at + n);
    this.at += n;
    return out;
  }

  /** @param {string} what */
  varint(what) {
    let value = 0n;
    for (let shift = 0n; shift < 7n * BigInt(MAX_VARINT_BYTES); shift += 7n) {
      const byte = this.take(1, what)[0];
      value |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) {
        if (byte === 0 && shift) throw new ProtocolError("bad_metadata", `${what}: a non-canonical varint`);
        if (value > BigInt(MAX_SAFE_INT)) throw new ProtocolError("bad_metadata", `${what}: ${value} > 2**53 - 1`);
        return Number(value);
      }
    }
    throw new ProtocolError("bad_metadata", `${what}: a varint longer than ${MAX_VARINT_BYTES} bytes`);
  }
}

/**
 * The fields of binary metadata, or ProtocolError (`truncated`, `bad_metadata`, `trailing_bytes`, ...).
 * @param {Uint8Array} data
 * @returns {CompactFields}
 */
export function decodeCompact(data) {
  const r = new Reader(data);
  const run = r.varint("run");
  if (run < 1) throw new ProtocolError("bad_metadata", "field 'run': 0 outside [1, 2**53 - 1]");
  const round = r.varint("round");
  const modelVersion = r.varint("model_version");
  const numSamples = r.varint("num_samples");
  const updateId = toHex(r.take(UPDATE_ID_BYTES, "update_id"));
  const flags = r.take(1, "flags")[0];
  if (flags & ~SIGNED) throw new ProtocolError("bad_metadata", `compact update flags 0x${flags.toString(16).padStart(2, "0")}: unknown bits`);
  let nonce = null;
  let signature = null;
  if (flags & SIGNED) {
    nonce = toHex(r.take(NONCE_BYTES, "nonce"));
    signature = r.take(SIGNATURE_BYTES, "sig");
  }
  /** @type {Record<string, number>} */
  const metrics = {};
  const count = r.take(1, "metric count")[0];
  for (let i = 0; i < count; i++) {
    const tag = r.take(1, "metric tag")[0];
    let name;
    if (tag === 0) {
      const raw = r.take(r.take(1, "metric name length")[0], "metric name");
      // Python decodes with "replace": a non-ASCII byte becomes U+FFFD, which the key rule then refuses.
      name = checkKey("metrics", Array.from(raw, (b) => (b < 0x80 ? String.fromCharCode(b) : "\ufffd")).join(""));
    } else if (tag <= WELL_KNOWN_METRICS.length) name = WELL_KNOWN_METRICS[tag - 1];
    else throw new ProtocolError("bad_metadata", `metric tag ${tag} is not defined`);
    if (Object.prototype.hasOwnProperty.call(metrics, name)) throw new ProtocolError("bad_metadata", `metric '${name}' repeats`);
    putOwn(metrics, name, checkFloat(`metrics.${name}`, view(r.take(8, "metric value")).getFloat64(0, true)));
  }
  if (r.at !== data.length) throw new ProtocolError("trailing_bytes", `${data.length - r.at} bytes after the compact metadata`);
  return { run, round, modelVersion, numSamples, updateId, metrics, nonce, signature };
}
