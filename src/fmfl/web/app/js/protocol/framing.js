/**
 * The binary envelope of every fmfl message (docs/protocol.md, section 4). Mirrors fmfl.protocol.framing.
 *
 *     0       4  magic "FMFL"            4  1  major version (1)     5  1  minor version (2)
 *     6       1  message type            7  1  flags: bit 0 = binary metadata (ClientUpdate only, 1.2)
 *     8       4  metadata length M       12 4  payload length P
 *     16      M  metadata (JSON, or compact binary)     16+M  P  payload
 *     16+M+P  4  CRC-32 of bytes [0, 16+M+P)
 */
import { ProtocolError } from "./errors.js";
import { asBytes, concat, utf8, view } from "./bytes.js";
import { crc32 } from "./crc32.js";
import { canonicalJson, parseStrictJson } from "./json.js";
import { decodeCompact, FLAG_BINARY_METADATA } from "./compact.js";
import { isJsonObject } from "./fields.js";

export const MAGIC = Uint8Array.of(0x46, 0x4d, 0x46, 0x4c); // "FMFL"
export const MAJOR_VERSION = 1;
export const MINOR_VERSION = 2;
export const HEADER_BYTES = 16;
export const OVERHEAD = 20;

/** Message type codes (byte 6). */
export const MessageType = Object.freeze({ HELLO: 1, STATUS: 2, TASK: 3, GLOBAL_MODEL: 4, UPDATE: 5, ACK: 6 });
export const TYPE_NAMES = Object.freeze({ 1: "HELLO", 2: "STATUS", 3: "TASK", 4: "GLOBAL_MODEL", 5: "UPDATE", 6: "ACK" });

/**
 * The framed message. `metadata` as an object is written as canonical JSON; as bytes it is the binary
 * metadata of a compact ClientUpdate (flags bit 0).
 * @param {number} type a MessageType
 * @param {object|Uint8Array} metadata
 * @param {Uint8Array} [payload]
 * @returns {Uint8Array}
 */
export function frame(type, metadata, payload = new Uint8Array(0)) {
  let flags = 0;
  let meta;
  if (metadata instanceof Uint8Array) {
    if (type !== MessageType.UPDATE) throw new TypeError("binary metadata exists for ClientUpdate only");
    meta = metadata;
    flags = FLAG_BINARY_METADATA;
  } else {
    meta = utf8(canonicalJson(metadata)); // ASCII only, so UTF-8 is the identity
  }
  const head = new Uint8Array(HEADER_BYTES);
  head.set(MAGIC, 0);
  head[4] = MAJOR_VERSION;
  head[5] = MINOR_VERSION;
  head[6] = type;
  head[7] = flags;
  view(head).setUint32(8, meta.length, true);
  view(head).setUint32(12, payload.length, true);
  const out = concat([head, meta, payload, new Uint8Array(4)]);
  view(out).setUint32(out.length - 4, crc32(out.subarray(0, out.length - 4)), true);
  return out;
}

/** True for a framed ClientUpdate with binary metadata (1.2), judged by its header alone. @param {Uint8Array} data */
export function isCompact(data) {
  return data.length >= OVERHEAD && startsWithMagic(data) && data[6] === MessageType.UPDATE && (data[7] & FLAG_BINARY_METADATA) !== 0;
}

/** @param {Uint8Array} data */
export function startsWithMagic(data) {
  return data.length >= 4 && data[0] === MAGIC[0] && data[1] === MAGIC[1] && data[2] === MAGIC[2] && data[3] === MAGIC[3];
}

/**
 * @typedef {object} Unframed
 * @property {number} type the MessageType code
 * @property {Record<string, unknown>|null} json the JSON metadata (null for binary metadata)
 * @property {import("./compact.js").CompactFields|null} compact the binary metadata fields (1.2)
 * @property {Uint8Array} payload
 */

/**
 * `{type, json|compact, payload}` of a framed message, or ProtocolError, checked in section 4's order.
 * @param {Uint8Array|ArrayBuffer} data
 * @param {import("./limits.js").Limits} limits
 * @returns {Unframed}
 */
export function unframe(data, limits) {
  const bytes = asBytes(data);
  if (bytes.length > limits.maxMessageBytes) throw new ProtocolError("too_large", `message of ${bytes.length} bytes > ${limits.maxMessageBytes}`);
  if (bytes.length < OVERHEAD) throw new ProtocolError("truncated", `message of ${bytes.length} bytes is shorter than ${OVERHEAD}`);
  if (!startsWithMagic(bytes)) throw new ProtocolError("bad_magic", `magic ${JSON.stringify(String.fromCharCode(...bytes.subarray(0, 4)))} is not "FMFL"`);
  const major = bytes[4];
  if (major !== MAJOR_VERSION) throw new ProtocolError("version", `major version ${major}; this peer speaks ${MAJOR_VERSION}`);
  const dv = view(bytes);
  const metaLength = dv.getUint32(8, true);
  const payloadLength = dv.getUint32(12, true);
  if (metaLength > limits.maxMetadataBytes) throw new ProtocolError("too_large", `metadata of ${metaLength} bytes > ${limits.maxMetadataBytes}`);
  const expected = OVERHEAD + metaLength + payloadLength;
  if (bytes.length < expected) throw new ProtocolError("truncated", `message of ${bytes.length} bytes, header declares ${expected}`);
  if (bytes.length > expected) throw new ProtocolError("trailing_bytes", `${bytes.length - expected} bytes after the checksum`);
  if (crc32(bytes.subarray(0, expected - 4)) !== dv.getUint32(expected - 4, true)) throw new ProtocolError("checksum", "CRC-32 mismatch");
  const flags = bytes[7];
  if (flags & ~FLAG_BINARY_METADATA) throw new ProtocolError("bad_metadata", `reserved flags 0x${flags.toString(16).padStart(2, "0")} are set`);
  const type = bytes[6];
  if (!(type in TYPE_NAMES)) throw new ProtocolError("unknown_type", `unknown message type ${type}`);
  const metaEnd = HEADER_BYTES + metaLength;
  const rawMeta = bytes.subarray(HEADER_BYTES, metaEnd);
  const payload = bytes.slice(metaEnd, metaEnd + payloadLength);
  if (flags & FLAG_BINARY_METADATA) {
    if (type !== MessageType.UPDATE) throw new ProtocolError("bad_metadata", `binary metadata on a ${TYPE_NAMES[type]} message`);
    return { type, json: null, compact: decodeCompact(rawMeta), payload };
  }
  return { type, json: parseMetadata(rawMeta), compact: null, payload };
}

/**
 * A JSON object from UTF-8 bytes: no NaN/Infinity, no duplicate keys, no overflowing numbers, no BOM.
 * @param {Uint8Array} raw
 * @returns {Record<string, unknown>}
 */
export function parseMetadata(raw) {
  let value;
  try {
    // fatal: invalid UTF-8 is an error, as in Python; ignoreBOM: keep a BOM so that the parser refuses it.
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(raw);
    value = parseStrictJson(text);
  } catch (error) {
    throw new ProtocolError("bad_metadata", `metadata is not valid JSON: ${String(/** @type {Error} */ (error).message).slice(0, 200)}`);
  }
  if (!isJsonObject(value)) throw new ProtocolError("bad_metadata", "metadata must be a JSON object");
  return value;
}
