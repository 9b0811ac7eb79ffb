/**
 * Splitting a message into MQTT payloads of at most `maxPacketBytes`, and reassembling them with bounded
 * memory (docs/protocol.md, section 3). Mirrors fmfl.protocol.chunking.
 *
 *     0   4   magic "FMFC"        4  1  chunk major (1)     5  1  chunk minor (0; 1 = run-tagged id, 1.2)
 *     6   2   flags (0)           8  16 message id: minor 0, SHA-256[:16]; minor 1, run u64 LE + SHA-256[:8]
 *     24  4   index i             28 4  count                32 4  total length T
 *     36  4   offset i*D, D = ceil(T / count)                40 32 SHA-256 of the whole message
 *     72  n   data                72+n 4 CRC-32 of bytes [0, 72+n)
 *
 * A bare frame (1.2): an MQTT payload starting with the frame magic "FMFL" is a whole message.
 */
import { ProtocolError } from "./errors.js";
import { asBytes, bytesEqual, concat, toHex, view } from "./bytes.js";
import { crc32 } from "./crc32.js";
import { sha256 } from "./sha256.js";
import { startsWithMagic } from "./framing.js";

export const CHUNK_MAGIC = Uint8Array.of(0x46, 0x4d, 0x46, 0x43); // "FMFC"
export const CHUNK_MAJOR = 1;
export const CHUNK_MINOR_RUN = 1;
export const CHUNK_HEADER_BYTES = 72;
export const CHUNK_OVERHEAD = 76;
export const DEFAULT_MAX_PACKET_BYTES = 128 * 1024;
export const MIN_PACKET_BYTES = CHUNK_OVERHEAD + 1;
export const MAX_MESSAGE_BYTES = 2 ** 32 - 1;

/**
 * @typedef {object} Chunk one parsed, CRC-checked chunk
 * @property {Uint8Array} messageId 16 bytes
 * @property {number} index
 * @property {number} count
 * @property {number} total
 * @property {Uint8Array} digest 32 bytes
 * @property {Uint8Array} data
 * @property {number} minor
 * @property {number|null} run the sender's run (chunk minor >= 1), else null
 */

/** The 1.2 message id of a run's message: the run (u64 LE), then SHA-256[:8]. @param {number} run @param {Uint8Array} digest */
export function runMessageId(run, digest) {
  if (!Number.isSafeInteger(run) || run < 1) throw new RangeError(`run ${run} outside [1, 2**53)`);
  const id = new Uint8Array(16);
  view(id).setBigUint64(0, BigInt(run), true);
  id.set(digest.subarray(0, 8), 8);
  return id;
}

/**
 * `data` as chunks of at most `maxPacketBytes` each (balanced: all but the last are equal).
 * `run`: tag every chunk with the sender's run (chunk minor 1). `bare`: a message that fits one packet
 * goes out as the bare frame itself (a compact ClientUpdate to a 1.2 gateway).
 * @param {Uint8Array} data a framed message
 * @param {number} [maxPacketBytes]
 * @param {{messageId?: Uint8Array, run?: number, bare?: boolean}} [options]
 * @returns {Uint8Array[]}
 */
export function splitMessage(data, maxPacketBytes = DEFAULT_MAX_PACKET_BYTES, { messageId, run, bare = false } = {}) {
  if (bare && data.length <= maxPacketBytes) {
    if (!startsWithMagic(data)) throw new TypeError("only a framed message can go out bare");
    return [data];
  }
  if (maxPacketBytes < MIN_PACKET_BYTES) throw new RangeError(`maxPacketBytes must be >= ${MIN_PACKET_BYTES}, got ${maxPacketBytes}`);
  if (data.length > MAX_MESSAGE_BYTES) throw new RangeError(`message of ${data.length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
  const digest = sha256(data);
  let minor = 0;
  if (run !== undefined && run !== null) {
    if (messageId !== undefined) throw new TypeError("give run or messageId, not both");
    messageId = runMessageId(run, digest);
    minor = CHUNK_MINOR_RUN;
  }
  if (messageId === undefined) messageId = digest.subarray(0, 16);
  if (messageId.length !== 16) throw new RangeError("messageId must be 16 bytes");
  const capacity = maxPacketBytes - CHUNK_OVERHEAD;
  const count = Math.max(1, Math.ceil(data.length / capacity));
  const step = Math.ceil(data.length / count);
  const chunks = [];
  for (let index = 0; index < count; index++) {
    const start = index * step;
    const piece = data.subarray(start, start + step);
    const head = new Uint8Array(CHUNK_HEADER_BYTES);
    const dv = view(head);
    head.set(CHUNK_MAGIC, 0);
    head[4] = CHUNK_MAJOR;
    head[5] = minor;
    head.set(messageId, 8);
    dv.setUint32(24, index, true);
    dv.setUint32(28, count, true);
    dv.setUint32(32, data.length, true);
    dv.setUint32(36, start, true);
    head.set(digest, 40);
    const chunk = concat([head, piece, new Uint8Array(4)]);
    view(chunk).setUint32(chunk.length - 4, crc32(chunk.subarray(0, chunk.length - 4)), true);
    chunks.push(chunk);
  }
  return chunks;
}

/** @param {Uint8Array} a @param {Uint8Array} b */
const startsWith = (a, b) => a.length >= b.length && b.every((x, i) => a[i] === x);

/**
 * A chunk whose CRC and layout are valid, or ProtocolError (section 3, rule 1).
 * @param {Uint8Array|ArrayBuffer} packet
 * @param {number} [maxTotalBytes]
 * @returns {Chunk}
 */
export function parseChunk(packet, maxTotalBytes = MAX_MESSAGE_BYTES) {
  const bytes = asBytes(packet);
  if (bytes.length < CHUNK_OVERHEAD) throw new ProtocolError("truncated", `chunk of ${bytes.length} bytes is shorter than ${CHUNK_OVERHEAD}`);
  if (!startsWith(bytes, CHUNK_MAGIC)) throw new ProtocolError("bad_magic", "chunk magic is not \"FMFC\"");
  const major = bytes[4];
  if (major !== CHUNK_MAJOR) throw new ProtocolError("version", `chunk major version ${major}; this peer speaks ${CHUNK_MAJOR}`);
  const dv = view(bytes);
  if (crc32(bytes.subarray(0, bytes.length - 4)) !== dv.getUint32(bytes.length - 4, true)) throw new ProtocolError("checksum", "chunk CRC-32 mismatch");
  const flags = dv.getUint16(6, true);
  if (flags) throw new ProtocolError("malformed", `reserved chunk flags 0x${flags.toString(16).padStart(4, "0")} are set`);
  const index = dv.getUint32(24, true);
  const count = dv.getUint32(28, true);
  const total = dv.getUint32(32, true);
  const offset = dv.getUint32(36, true);
  if (total > maxTotalBytes) throw new ProtocolError("too_large", `message of ${total} bytes > ${maxTotalBytes}`);
  if (count < 1 || index >= count) throw new ProtocolError("malformed", `chunk index ${index} of count ${count}`);
  const step = Math.ceil(total / count);
  if (total && (count - 1) * step >= total) throw new ProtocolError("malformed", `${count} chunks for ${total} bytes leave empty chunks`);
  if (!total && count !== 1) throw new ProtocolError("malformed", "an empty message is one chunk");
  const expected = Math.min(step, total - index * step);
  const data = bytes.slice(CHUNK_HEADER_BYTES, bytes.length - 4);
  if (offset !== index * step || data.length !== expected) throw new ProtocolError("malformed", `chunk ${index}/${count} has ${data.length} bytes at ${offset}, expected ${expected}`);
  const minor = bytes[5];
  const messageId = bytes.slice(8, 24);
  const run = minor >= CHUNK_MINOR_RUN ? Number(dv.getBigUint64(8, true)) : null;
  return { messageId, index, count, total, digest: bytes.slice(40, 72), data, minor, run };
}

/**
 * The run a chunk's header names (chunk minor >= 1), read without any check; null otherwise. Only a hint
 * for dropping an older run's chunks before buffering them (section 2a, rule 2).
 * @param {Uint8Array|ArrayBuffer} packet
 * @returns {number|null}
 */
export function chunkRun(packet) {
  const bytes = asBytes(packet);
  if (bytes.length < CHUNK_OVERHEAD || !startsWith(bytes, CHUNK_MAGIC) || bytes[5] < CHUNK_MINOR_RUN) return null;
  return Number(view(bytes).getBigUint64(8, true));
}

/** @param {Uint8Array} digest @param {Uint8Array} message */
function verified(digest, message) {
  if (!bytesEqual(sha256(message), digest)) throw new ProtocolError("hash_mismatch", "reassembled message does not match its SHA-256");
  return message;
}

/**
 * Collects chunks into messages with bounded memory (section 3, rules 2-4). `add` returns the message
 * when its last missing chunk arrives and its SHA-256 matches, else null. Chunks are keyed by
 * (source, message id): pass Topics.source(topic) (`.../global` for every model chunk). A message sent
 * again in full is returned again: deduplicate at the message level.
 */
export class Reassembler {
  /** @param {number} maxTotalBytes @param {number} [maxPendingMessages] */
  constructor(maxTotalBytes, maxPendingMessages = 16) {
    if (!(maxTotalBytes >= 1) || !(maxPendingMessages >= 1)) throw new RangeError("maxTotalBytes and maxPendingMessages must be positive");
    this.maxTotalBytes = maxTotalBytes;
    this.maxPendingMessages = maxPendingMessages;
    /** @type {Map<string, {count: number, total: number, digest: Uint8Array, parts: Map<number, Uint8Array>}>} insertion order = least recently active first */
    this.pending = new Map();
    this.reservedBytes = 0;
    this.evicted = 0;
  }

  get pendingMessages() {
    return this.pending.size;
  }

  /** @param {Uint8Array} messageId @param {string} source */
  static key(messageId, source) {
    return `${source}\u0000${toHex(messageId)}`;
  }

  /** Chunk indices not yet received for a pending message ([] if unknown). @param {Uint8Array} messageId @param {string} [source] */
  missing(messageId, source = "") {
    const p = this.pending.get(Reassembler.key(messageId, source));
    if (!p) return [];
    const out = [];
    for (let i = 0; i < p.count; i++) if (!p.parts.has(i)) out.push(i);
    return out;
  }

  /** @param {Uint8Array} messageId @param {string} [source] */
  discard(messageId, source = "") {
    this.drop(Reassembler.key(messageId, source));
  }

  /**
   * Take one MQTT payload; the whole message once complete and verified, else null. A bare frame is
   * returned as it is after the size bound (its CRC-32 is the framing layer's to check).
   * @param {Uint8Array|ArrayBuffer} packet
   * @param {string} [source]
   * @returns {Uint8Array|null}
   */
  add(packet, source = "") {
    const bytes = asBytes(packet);
    if (startsWithMagic(bytes)) {
      if (bytes.length > this.maxTotalBytes) throw new ProtocolError("too_large", `message of ${bytes.length} bytes > ${this.maxTotalBytes}`);
      return bytes;
    }
    const chunk = parseChunk(bytes, this.maxTotalBytes);
    const key = Reassembler.key(chunk.messageId, source);
    let p = this.pending.get(key);
    if (p === undefined) {
      if (chunk.count === 1) return verified(chunk.digest, chunk.data);
      this.makeRoom(chunk.total);
      p = { count: chunk.count, total: chunk.total, digest: chunk.digest, parts: new Map() };
      this.reservedBytes += chunk.total;
    } else if (p.count !== chunk.count || p.total !== chunk.total || !bytesEqual(p.digest, chunk.digest)) {
      throw new ProtocolError("chunk_mismatch", "chunk disagrees with earlier chunks of its message id");
    }
    this.pending.delete(key); // re-insert: most recently active last
    this.pending.set(key, p);
    const held = p.parts.get(chunk.index);
    if (held !== undefined) {
      if (!bytesEqual(held, chunk.data)) throw new ProtocolError("chunk_mismatch", `chunk ${chunk.index} arrived with other data`);
      return null;
    }
    p.parts.set(chunk.index, chunk.data);
    if (p.parts.size < p.count) return null;
    this.drop(key);
    const parts = [];
    for (let i = 0; i < p.count; i++) parts.push(/** @type {Uint8Array} */ (p.parts.get(i)));
    return verified(p.digest, concat(parts));
  }

  /** @param {number} total */
  makeRoom(total) {
    while (this.pending.size && (this.reservedBytes + total > this.maxTotalBytes || this.pending.size >= this.maxPendingMessages)) {
      const oldest = /** @type {string} */ (this.pending.keys().next().value);
      this.drop(oldest);
      this.evicted++;
    }
  }

  /** @param {string} key */
  drop(key) {
    const p = this.pending.get(key);
    if (p !== undefined) {
      this.pending.delete(key);
      this.reservedBytes -= p.total;
    }
  }
}
