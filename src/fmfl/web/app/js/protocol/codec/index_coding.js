/**
 * Index codings of an update payload (docs/protocol.md, section 6): ALL, DELTA_VARINT (the first index,
 * then each gap minus one, as unsigned LEB128 varints of at most 5 bytes), BITMAP (ceil(size/8) bytes,
 * most significant bit first) and SEEDED (an 8-byte random-k seed). The encoder keeps the smaller of
 * delta-varint and bitmap (ties to delta-varint). Mirrors fmfl.protocol.codec.index_coding and varint.
 */
import { ProtocolError } from "../errors.js";
import { seededIndices } from "./randk.js";
import { range } from "./numeric.js";

export const IndexCoding = Object.freeze({ ALL: 0, DELTA_VARINT: 1, BITMAP: 2, SEEDED: 3 });
const MAX_VARINT_BYTES = 5;

/** @param {number} v @returns {number} bytes of the varint of v (< 2^35) */
function varintLength(v) {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** @param {number} size */
export function bitmapBytes(size) {
  return Math.ceil(size / 8);
}

/**
 * The coding and index section for sorted unique `indices` of a vector of `size`.
 * @param {Uint32Array} indices @param {number} size
 * @returns {[number, Uint8Array]}
 */
export function encodeIndices(indices, size) {
  if (indices.length === size) return [IndexCoding.ALL, new Uint8Array(0)];
  let total = 0;
  for (let j = 0; j < indices.length; j++) total += varintLength(j ? indices[j] - indices[j - 1] - 1 : indices[0]);
  if (total <= bitmapBytes(size)) {
    const out = new Uint8Array(total);
    let at = 0;
    for (let j = 0; j < indices.length; j++) {
      let v = j ? indices[j] - indices[j - 1] - 1 : indices[0];
      while (v >= 128) {
        out[at++] = (v % 128) | 0x80;
        v = Math.floor(v / 128);
      }
      out[at++] = v;
    }
    return [IndexCoding.DELTA_VARINT, out];
  }
  const out = new Uint8Array(bitmapBytes(size));
  for (const i of indices) out[i >>> 3] |= 0x80 >>> (i & 7);
  return [IndexCoding.BITMAP, out];
}

/** @param {bigint} seed @returns {[number, Uint8Array]} */
export function encodeSeeded(seed) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, seed, true);
  return [IndexCoding.SEEDED, out];
}

/**
 * Exactly `count` canonical varints filling all of `data`, or ProtocolError.
 * @param {Uint8Array} data @param {number} count
 * @returns {Float64Array}
 */
function decodeVarints(data, count) {
  if (count === 0) {
    if (data.length) throw new ProtocolError("malformed", "index section must be empty when nnz is 0");
    return new Float64Array(0);
  }
  if (data.length === 0 || data[data.length - 1] & 0x80) throw new ProtocolError("truncated", "varint stream ends inside a varint");
  let ends = 0;
  for (let i = 0; i < data.length; i++) if (data[i] < 0x80) ends++;
  if (ends !== count) throw new ProtocolError("malformed", `varint stream holds ${ends} values, header says ${count}`);
  const out = new Float64Array(count);
  let start = 0;
  let n = 0;
  let longest = 0;
  let overlong = false;
  for (let i = 0; i < data.length; i++) {
    if (data[i] >= 0x80) continue;
    const length = i - start + 1;
    longest = Math.max(longest, length);
    if (length > 1 && data[i] === 0) overlong = true;
    let v = 0;
    for (let j = i; j >= start; j--) v = v * 128 + (data[j] & 0x7f);
    out[n++] = v;
    start = i + 1;
  }
  // The reference checks every length before any canonical form: keep its order of reasons.
  if (longest > MAX_VARINT_BYTES) throw new ProtocolError("malformed", `varint longer than ${MAX_VARINT_BYTES} bytes`);
  if (overlong) throw new ProtocolError("malformed", "overlong (non-canonical) varint");
  return out;
}

/**
 * Sorted unique indices below `size`, or ProtocolError.
 * @param {number} coding @param {Uint8Array} section @param {number} size @param {number} nnz
 * @returns {Uint32Array}
 */
export function decodeIndices(coding, section, size, nnz) {
  if (coding === IndexCoding.ALL) {
    if (section.length) throw new ProtocolError("malformed", "index coding ALL carries no index bytes");
    if (nnz !== size) throw new ProtocolError("malformed", `index coding ALL needs nnz == size, got ${nnz} != ${size}`);
    return range(size);
  }
  if (coding === IndexCoding.DELTA_VARINT) {
    if (!(nnz <= section.length && section.length <= MAX_VARINT_BYTES * nnz)) throw new ProtocolError("malformed", `${section.length} index bytes cannot hold ${nnz} varints`);
    const gaps = decodeVarints(section, nnz);
    let max = 0;
    for (const g of gaps) if (g > max) max = g;
    if (nnz && max >= size) throw new ProtocolError("index_out_of_range", "an index or gap exceeds the vector size");
    const indices = new Float64Array(nnz);
    let acc = 0;
    for (let j = 0; j < nnz; j++) {
      acc += gaps[j];
      indices[j] = acc + j;
    }
    if (nnz && indices[nnz - 1] >= size) throw new ProtocolError("index_out_of_range", `index ${indices[nnz - 1]} >= size ${size}`);
    return Uint32Array.from(indices);
  }
  if (coding === IndexCoding.BITMAP) {
    if (section.length !== bitmapBytes(size)) throw new ProtocolError("malformed", `bitmap of ${section.length} bytes for size ${size}`);
    for (let i = size; i < 8 * section.length; i++) {
      if (section[i >>> 3] & (0x80 >>> (i & 7))) throw new ProtocolError("index_out_of_range", "bitmap padding bits set past the vector size");
    }
    let count = 0;
    for (let i = 0; i < size; i++) if (section[i >>> 3] & (0x80 >>> (i & 7))) count++;
    if (count !== nnz) throw new ProtocolError("malformed", `bitmap has ${count} bits set, header says ${nnz}`);
    const out = new Uint32Array(count);
    let n = 0;
    for (let i = 0; i < size; i++) if (section[i >>> 3] & (0x80 >>> (i & 7))) out[n++] = i;
    return out;
  }
  if (coding === IndexCoding.SEEDED) {
    if (section.length !== 8) throw new ProtocolError("malformed", `seeded index section of ${section.length} bytes, not 8`);
    const seed = new DataView(section.buffer, section.byteOffset, 8).getBigUint64(0, true);
    return seededIndices(seed, size, nnz);
  }
  throw new ProtocolError("unknown_type", `unknown index coding ${coding}`);
}
