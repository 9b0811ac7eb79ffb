/**
 * Value codings and their scale groups (docs/protocol.md, section 6, "Value codings" and "Groups"):
 * FP32, FP16 (no groups), INT8/INT4 (QSGD-style uniform quantization, Alistarh et al. 2017; optional
 * stochastic rounding, Gupta et al. 2015) and SIGN (scaled signSGD, Bernstein et al. 2018, Karimireddy
 * et al. 2019), with one float32 scale per group of consecutive sent values (per block, Dettmers et al.
 * 2022, or per tensor). Mirrors fmfl.protocol.codec.{dense,linear_quant,sign,groups}: each coder returns
 * the bytes and exactly the float32 values the decoder will reconstruct (error feedback needs them).
 */
import { ProtocolError } from "../errors.js";
import { fromHalfBits, pairwiseSum, rint, toHalfBits } from "./numeric.js";

export const ValueCoding = Object.freeze({ FP32: 0, FP16: 1, INT8: 2, INT4: 3, SIGN: 4 });
const F32_MAX = 3.4028234663852886e38;
// Typed arrays use the platform's byte order; the wire is little-endian. Every browser and phone CPU in use is
// little-endian, so the fast paths copy bytes; a big-endian platform takes the DataView paths.
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const F16_MAX = 65504;

/**
 * @typedef {object} Encoded
 * @property {Uint8Array} scaleBytes G float32 scales, little-endian
 * @property {Uint8Array} valueBytes
 * @property {Float32Array} decoded what the receiver will reconstruct
 *
 * @typedef {object} ValueCoder
 * @property {number} code the payload's value-coding byte
 * @property {boolean} grouped true if the coder writes one scale per group
 * @property {(values: Float64Array, counts: number[], rng: import("./numpy_random.js").NumpyGenerator) => Encoded} encode
 */

/** Groups of `block` values; the last one holds the remainder. @param {number} nnz @param {number} block */
export function blockCounts(nnz, block) {
  const groups = Math.ceil(nnz / block);
  const counts = new Array(groups).fill(block);
  if (groups) counts[groups - 1] = nnz - block * (groups - 1);
  return counts;
}

/** How many of the sorted `indices` fall in each tensor (counts may be zero). @param {Uint32Array} indices @param {number[]} tensorSizes */
export function tensorCounts(indices, tensorSizes) {
  const counts = new Array(tensorSizes.length).fill(0);
  let t = 0;
  let end = tensorSizes[0];
  for (const i of indices) {
    while (i >= end) end += tensorSizes[++t];
    counts[t]++;
  }
  return counts;
}

/** @param {Float64Array|Float32Array} scales f32 scales @returns {Uint8Array} */
function scaleBytes(scales) {
  const out = new Uint8Array(4 * scales.length);
  const dv = new DataView(out.buffer);
  scales.forEach((s, g) => dv.setFloat32(4 * g, s, true));
  return out;
}

/**
 * max |v| per group (0 for an empty group), or mean |v| as numpy's reduceat sums: the first value,
 * plus the pairwise sum of the rest.
 * @param {Float64Array} values @param {number[]} counts @param {"max"|"mean"} how
 */
function groupAbs(values, counts, how) {
  const out = new Float64Array(counts.length);
  let start = 0;
  counts.forEach((n, g) => {
    if (n > 0) {
      if (how === "max") {
        let m = 0;
        for (let i = start; i < start + n; i++) m = Math.max(m, Math.abs(values[i]));
        out[g] = m;
      } else {
        const abs = new Float64Array(n);
        for (let i = 0; i < n; i++) abs[i] = Math.abs(values[start + i]);
        out[g] = (abs[0] + (n > 1 ? pairwiseSum(abs, 1, n - 1) : 0)) / n;
      }
    }
    start += n;
  });
  return out;
}

/** @param {Float32Array} scales @param {number[]} counts @returns {Float32Array} scale of each value */
function perValue(scales, counts) {
  const out = new Float32Array(counts.reduce((a, b) => a + b, 0));
  let at = 0;
  counts.forEach((n, g) => out.fill(scales[g], at, (at += n)));
  return out;
}

/** 4 bytes a value. @type {ValueCoder} */
export const Float32Coder = {
  code: ValueCoding.FP32,
  grouped: false,
  encode(values) {
    const decoded = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) decoded[i] = Math.min(F32_MAX, Math.max(-F32_MAX, values[i]));
    let valueBytes;
    if (LITTLE_ENDIAN) valueBytes = new Uint8Array(decoded.buffer.slice(0));
    else {
      valueBytes = new Uint8Array(4 * values.length);
      const dv = new DataView(valueBytes.buffer);
      for (let i = 0; i < decoded.length; i++) dv.setFloat32(4 * i, decoded[i], true);
    }
    return { scaleBytes: new Uint8Array(0), valueBytes, decoded };
  },
};

/** 2 bytes a value, clipped to +-65504. @type {ValueCoder} */
export const Float16Coder = {
  code: ValueCoding.FP16,
  grouped: false,
  encode(values) {
    const decoded = new Float32Array(values.length);
    const valueBytes = new Uint8Array(2 * values.length);
    const dv = new DataView(valueBytes.buffer);
    for (let i = 0; i < values.length; i++) {
      const bits = toHalfBits(Math.min(F16_MAX, Math.max(-F16_MAX, values[i])));
      dv.setUint16(2 * i, bits, true);
      decoded[i] = fromHalfBits(bits);
    }
    return { scaleBytes: new Uint8Array(0), valueBytes, decoded };
  },
};

/** int8 (bits 8, L = 127) or int4 (bits 4, L = 7) codes with one scale per group. */
export class LinearQuantizer {
  /** @param {8|4} bits @param {{stochastic?: boolean}} [o] */
  constructor(bits, { stochastic = false } = {}) {
    this.bits = bits;
    this.levels = bits === 8 ? 127 : 7;
    this.code = bits === 8 ? ValueCoding.INT8 : ValueCoding.INT4;
    this.grouped = true;
    this.stochastic = stochastic;
  }

  /** @param {Float64Array} values @param {number[]} counts @param {import("./numpy_random.js").NumpyGenerator} rng @returns {Encoded} */
  encode(values, counts, rng) {
    const L = this.levels;
    // s = float32(max|v| / L): the max and the division in binary64, then one rounding to binary32.
    const scales = Float32Array.from(groupAbs(values, counts, "max"), (m) => m / L);
    const per = perValue(scales, counts);
    const u = this.stochastic ? rng.random(values.length) : null;
    const codes = new Int8Array(values.length); // Int8Array: a rounded -0 becomes code 0, as in numpy
    for (let i = 0; i < values.length; i++) {
      const s = per[i];
      const scaled = s > 0 ? values[i] / s : 0;
      const rounded = u ? Math.floor(scaled + u[i]) : rint(scaled);
      codes[i] = Math.min(L, Math.max(-L, rounded));
    }
    const decoded = dequantize(codes, per);
    return { scaleBytes: scaleBytes(scales), valueBytes: this.bits === 8 ? new Uint8Array(codes.buffer) : packInt4(codes), decoded };
  }
}

/** float32(q) * scale in binary32. @param {Int8Array} codes @param {Float32Array} per */
function dequantize(codes, per) {
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = codes[i] * per[i]; // exact in binary64, rounded once on store
  return out;
}

/** Nibbles q + 8, value 2j in the low nibble of byte j; an odd count pads a zero nibble. @param {Int8Array} codes */
function packInt4(codes) {
  const out = new Uint8Array(Math.ceil(codes.length / 2));
  for (let i = 0; i < codes.length; i++) out[i >>> 1] |= (codes[i] + 8) << (i & 1 ? 4 : 0);
  return out;
}

/** One bit a value: 1 = +scale, 0 = -scale, most significant bit first. */
export class SignQuantizer {
  /** @param {{stochastic?: boolean}} [o] */
  constructor({ stochastic = false } = {}) {
    this.code = ValueCoding.SIGN;
    this.grouped = true;
    this.stochastic = stochastic;
  }

  /** @param {Float64Array} values @param {number[]} counts @param {import("./numpy_random.js").NumpyGenerator} rng @returns {Encoded} */
  encode(values, counts, rng) {
    const n = values.length;
    const bits = new Uint8Array(n);
    let scales;
    if (this.stochastic) {
      scales = Float32Array.from(groupAbs(values, counts, "max"));
      const per = perValue(scales, counts);
      const u = rng.random(n);
      for (let i = 0; i < n; i++) bits[i] = u[i] < (1.0 + (per[i] > 0 ? values[i] / per[i] : 0)) / 2.0 ? 1 : 0;
    } else {
      scales = Float32Array.from(groupAbs(values, counts, "mean"));
      for (let i = 0; i < n; i++) bits[i] = values[i] >= 0 ? 1 : 0;
    }
    const valueBytes = new Uint8Array(Math.ceil(n / 8));
    for (let i = 0; i < n; i++) if (bits[i]) valueBytes[i >>> 3] |= 0x80 >>> (i & 7);
    const per = perValue(scales, counts);
    const decoded = Float32Array.from(bits, (b, i) => (b ? per[i] : -per[i]));
    return { scaleBytes: scaleBytes(scales), valueBytes, decoded };
  }
}

/** Bytes of the value section. @param {number} code @param {number} nnz */
export function valueBytesLength(code, nnz) {
  if (code === ValueCoding.FP32) return 4 * nnz;
  if (code === ValueCoding.FP16) return 2 * nnz;
  if (code === ValueCoding.INT8) return nnz;
  if (code === ValueCoding.INT4) return Math.ceil(nnz / 2);
  return Math.ceil(nnz / 8);
}

/**
 * The values of a value section (of the right length), or ProtocolError for codes outside the coding.
 * @param {number} code @param {Uint8Array} data @param {number} nnz @param {Float32Array} scales @param {number[]} counts
 * @returns {Float32Array}
 */
export function decodeValues(code, data, nnz, scales, counts) {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out = new Float32Array(nnz);
  if (code === ValueCoding.FP32) {
    if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(data.subarray(0, 4 * nnz));
    else for (let i = 0; i < nnz; i++) out[i] = dv.getFloat32(4 * i, true);
    return out;
  }
  if (code === ValueCoding.FP16) {
    for (let i = 0; i < nnz; i++) out[i] = fromHalfBits(data[2 * i] | (data[2 * i + 1] << 8));
    return out;
  }
  const per = perValue(scales, counts);
  if (code === ValueCoding.SIGN) {
    for (let i = nnz; i < 8 * data.length; i++) if (data[i >>> 3] & (0x80 >>> (i & 7))) throw new ProtocolError("malformed", "sign padding bits are not zero");
    for (let i = 0; i < nnz; i++) out[i] = data[i >>> 3] & (0x80 >>> (i & 7)) ? per[i] : -per[i];
    return out;
  }
  const codes = new Int8Array(nnz);
  if (code === ValueCoding.INT8) {
    const raw = new Int8Array(data.buffer, data.byteOffset, nnz);
    if (raw.includes(-128)) throw new ProtocolError("malformed", "int8 code -128 is outside [-127, 127]");
    codes.set(raw);
  } else {
    if (nnz % 2 && data[data.length - 1] >>> 4) throw new ProtocolError("malformed", "int4 padding nibble is not zero");
    for (let i = 0; i < nnz; i++) {
      const nibble = (data[i >>> 1] >>> (i & 1 ? 4 : 0)) & 0x0f;
      if (nibble === 0) throw new ProtocolError("malformed", "int4 nibble 0 (code -8) is outside [-7, 7]");
      codes[i] = nibble - 8;
    }
  }
  return dequantize(codes, per);
}
