/**
 * decodeUpdatePayload: payload bytes from an untrusted peer to a SparseUpdate, or ProtocolError
 * (docs/protocol.md, section 6; the decoding rules are normative). Mirrors
 * fmfl.protocol.codec.decoder: every section length is checked against the bytes present and against
 * `size` before anything of that length is allocated, in the reference's order of checks, so a bad
 * payload gets the same reason here as in Python.
 */
import { ProtocolError } from "../errors.js";
import { asBytes } from "../bytes.js";
import { maxPayloadBytes } from "../limits.js";
import { decodeIndices } from "./index_coding.js";
import { blockCounts, decodeValues, ValueCoding, valueBytesLength } from "./values.js";
import { decompressBounded } from "./zstd.js";
import { FLAG_ZSTD, GroupMode, PAYLOAD_FORMAT } from "./encoder.js";
import { allFinite } from "./numeric.js";

/**
 * Decode an update payload for a vector of `size` floats.
 * @param {Uint8Array|ArrayBuffer} data
 * @param {number} size the manifest's trainable floats
 * @param {import("../limits.js").Limits} limits
 * @returns {import("./encoder.js").SparseUpdate}
 */
export function decodeUpdatePayload(data, size, limits) {
  if (!(size >= 1 && size <= limits.maxVectorSize)) throw new ProtocolError("too_large", `vector size ${size} outside [1, ${limits.maxVectorSize}]`);
  const payload = asBytes(data);
  const bound = maxPayloadBytes(size);
  if (payload.length > bound) throw new ProtocolError("too_large", `payload of ${payload.length} bytes > ${bound} for size ${size}`);
  if (payload.length < 2) throw new ProtocolError("truncated", "payload shorter than its 2-byte prefix");
  const [format, flags] = payload;
  if (format !== PAYLOAD_FORMAT) throw new ProtocolError("version", `payload format ${format}, this decoder reads ${PAYLOAD_FORMAT}`);
  if (flags & ~FLAG_ZSTD) throw new ProtocolError("malformed", `unknown payload flags 0x${flags.toString(16).padStart(2, "0")}`);
  let body;
  if (flags & FLAG_ZSTD) {
    if (payload.length < 6) throw new ProtocolError("truncated", "zstd payload without its raw length");
    const rawLength = new DataView(payload.buffer, payload.byteOffset + 2, 4).getUint32(0, true);
    body = decompressBounded(payload.subarray(6), rawLength, bound);
  } else body = payload.subarray(2);
  return decodeBody(body, size);
}

/** @param {Uint8Array} body @param {number} start @param {number} length @param {string} what */
function take(body, start, length, what) {
  if (start + length > body.length) throw new ProtocolError("truncated", `${what} runs past the end of the payload`);
  return body.subarray(start, start + length);
}

/** @param {Uint8Array} body @param {number} size */
function decodeBody(body, size) {
  if (body.length < 16) throw new ProtocolError("truncated", "payload body shorter than its 16-byte header");
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const declared = dv.getUint32(0, true);
  const nnz = dv.getUint32(4, true);
  const [indexCoding, valueCoding, groupMode, reserved] = body.subarray(8, 12);
  const indexLength = dv.getUint32(12, true);
  if (declared !== size) throw new ProtocolError("size_mismatch", `payload is for size ${declared}, expected ${size}`);
  if (nnz > size) throw new ProtocolError("malformed", `nnz ${nnz} > size ${size}`);
  if (reserved) throw new ProtocolError("malformed", "reserved header byte is not zero");
  if (indexCoding > 3) throw new ProtocolError("unknown_type", `unknown index coding ${indexCoding}`);
  if (valueCoding > 4) throw new ProtocolError("unknown_type", `unknown value coding ${valueCoding}`);
  let cursor = 16;
  const indexSection = take(body, cursor, indexLength, "index section");
  cursor += indexLength;

  const grouped = valueCoding === ValueCoding.INT8 || valueCoding === ValueCoding.INT4 || valueCoding === ValueCoding.SIGN;
  /** @type {number[]} */
  let counts = [];
  if (!grouped) {
    if (groupMode !== GroupMode.NONE) throw new ProtocolError("malformed", "fp32/fp16 values take no scale groups");
  } else if (groupMode === GroupMode.BLOCK) {
    const block = dv.getUint32(take(body, cursor, 4, "block size").byteOffset - body.byteOffset, true);
    cursor += 4;
    if (block === 0) throw new ProtocolError("malformed", "block size 0");
    counts = blockCounts(nnz, block);
  } else if (groupMode === GroupMode.EXPLICIT) {
    take(body, cursor, 4, "group count");
    const groups = dv.getUint32(cursor, true);
    cursor += 4;
    if (groups > size) throw new ProtocolError("malformed", `${groups} scale groups for a vector of ${size}`);
    take(body, cursor, 4 * groups, "group counts");
    counts = Array.from({ length: groups }, (_, g) => dv.getUint32(cursor + 4 * g, true));
    cursor += 4 * groups;
    const sum = counts.reduce((a, b) => a + b, 0);
    if (sum !== nnz) throw new ProtocolError("malformed", `group counts sum to ${sum}, nnz is ${nnz}`);
  } else throw new ProtocolError("unknown_type", `group mode ${groupMode} for a quantized coding`);

  take(body, cursor, 4 * counts.length, "scales");
  const scales = Float32Array.from(counts, (_, g) => dv.getFloat32(cursor + 4 * g, true));
  cursor += 4 * counts.length;
  if (!allFinite(scales)) throw new ProtocolError("non_finite", "a scale is NaN or infinite");
  if (scales.some((s) => s < 0)) throw new ProtocolError("malformed", "a scale is negative");

  const valueLength = valueBytesLength(valueCoding, nnz);
  const valueSection = take(body, cursor, valueLength, "values");
  if (cursor + valueLength !== body.length) throw new ProtocolError("trailing_bytes", `${body.length - cursor - valueLength} bytes after the values`);

  const indices = decodeIndices(indexCoding, indexSection, size, nnz);
  const values = decodeValues(valueCoding, valueSection, nnz, scales, counts);
  if (!allFinite(values)) throw new ProtocolError("non_finite", "a value is NaN or infinite");
  return { indices, values, size };
}

/**
 * A decoded update as a dense float32 vector of its size.
 * @param {import("./encoder.js").SparseUpdate} update
 */
export function toDense(update) {
  const out = new Float32Array(update.size);
  update.indices.forEach((i, j) => (out[i] = update.values[j]));
  return out;
}
