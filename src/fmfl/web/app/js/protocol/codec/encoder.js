/**
 * UpdateEncoder: one codec chain (sparsify, quantize, error feedback, index coding, zstd) over float32
 * update vectors of one size (docs/protocol.md, section 6, "The reference encoder"). Mirrors
 * fmfl.protocol.codec.encoder byte for byte, including the random draws of stochastic rounding
 * (numpy_random.js) and the per-call random-k seeds; the only difference is zstd, whose frame here is
 * made of raw blocks (zstd.js): same body, other frame bytes.
 */
import { ProtocolError } from "../errors.js";
import { MAX_VECTOR_SIZE } from "../limits.js";
import { parseCodecSpec } from "./spec.js";
import { RandKSparsifier, TopKSparsifier } from "./topk.js";
import { deriveSeed, MASK64, seededIndices } from "./randk.js";
import { blockCounts, Float16Coder, Float32Coder, LinearQuantizer, SignQuantizer, tensorCounts } from "./values.js";
import { encodeIndices, encodeSeeded, IndexCoding } from "./index_coding.js";
import { ErrorFeedback } from "./error_feedback.js";
import { NumpyGenerator } from "./numpy_random.js";
import { compressRaw } from "./zstd.js";
import { allFinite, range } from "./numeric.js";

export const PAYLOAD_FORMAT = 1;
export const FLAG_ZSTD = 0x01;
export const GroupMode = Object.freeze({ NONE: 0, BLOCK: 1, EXPLICIT: 2 });
const QUANTIZER_CLIP = 1e38;

/**
 * @typedef {object} SparseUpdate what a decoder gets from a payload
 * @property {Uint32Array} indices strictly increasing
 * @property {Float32Array} values
 * @property {number} size
 */

/** @param {import("./spec.js").CodecSpec} spec */
function valueCoder(spec) {
  if (spec.values === "fp32") return Float32Coder;
  if (spec.values === "fp16") return Float16Coder;
  if (spec.values === "sign") return new SignQuantizer({ stochastic: spec.stochastic });
  return new LinearQuantizer(spec.values === "int8" ? 8 : 4, { stochastic: spec.stochastic });
}

export class UpdateEncoder {
  /**
   * @param {string|import("./spec.js").CodecSpec} spec e.g. the task's codec, "topk:0.01+int8+ef"
   * @param {number} size the manifest's trainable floats
   * @param {number[]|null} [tensorSizes] the manifest's tensors in flat order (per_tensor options need them)
   * @param {{seed?: number|bigint}} [options] seeds stochastic rounding and, unless encode() is given one,
   *   the per-call random-k seeds (the reference device uses CRC-32 of "{client_id}:{round}" for both)
   */
  constructor(spec, size, tensorSizes = null, { seed = 0 } = {}) {
    this.spec = typeof spec === "string" ? parseCodecSpec(spec) : spec;
    if (!Number.isInteger(size) || size < 1 || size > MAX_VECTOR_SIZE) throw new RangeError(`size must be in [1, ${MAX_VECTOR_SIZE}], got ${size}`);
    if (tensorSizes !== null) {
      tensorSizes = tensorSizes.map(Number);
      if (tensorSizes.some((n) => !(n >= 1)) || tensorSizes.reduce((a, b) => a + b, 0) !== size) throw new RangeError(`tensorSizes must be positive and sum to size ${size}`);
    }
    if (this.spec.needsTensorSizes && tensorSizes === null) throw new RangeError("this codec has a per_tensor option: pass tensorSizes");
    this.size = size;
    this.tensorSizes = tensorSizes;
    this.seed = BigInt(seed);
    this.calls = 0;
    this.rng = new NumpyGenerator(this.seed);
    const s = this.spec;
    this.sparsifier =
      s.sparsification === "topk" ? new TopKSparsifier(size, { fraction: s.fraction, count: s.count, tensorSizes: s.perTensorK ? tensorSizes : null })
      : s.sparsification === "randk" ? new RandKSparsifier(size, { fraction: s.fraction, count: s.count })
      : null; // prettier-ignore
    this.coder = valueCoder(s);
    this.feedback = s.errorFeedback ? new ErrorFeedback(size) : null;
  }

  /** The error-feedback residual (zeros when the spec has no ef). */
  get residual() {
    return this.feedback ? this.feedback.residual : new Float64Array(this.size);
  }

  /**
   * The payload for `delta` (size finite floats), and the SparseUpdate the receiver will decode from it,
   * bit for bit; updates the residual. A non-finite delta is refused (`non_finite`), nothing changed.
   * @param {Float32Array} delta
   * @param {{seed?: number|bigint|null}} [options] the random-k seed of this call
   * @returns {{payload: Uint8Array, sent: SparseUpdate}}
   */
  encode(delta, { seed = null } = {}) {
    if (delta.length !== this.size) throw new RangeError(`update of ${delta.length} values, expected ${this.size}`);
    if (!allFinite(delta)) throw new ProtocolError("non_finite", "the update holds NaN or infinity; nothing was encoded");
    const seeded = this.sparsifier !== null && this.sparsifier.seeded;
    let roundSeed = 0n;
    if (seed !== null) roundSeed = BigInt(seed) & MASK64;
    else if (seeded) roundSeed = deriveSeed(this.seed, this.calls);
    this.calls++;
    const compensated = this.feedback ? this.feedback.compensate(delta) : Float64Array.from(delta);

    /** @type {Uint32Array|null} */
    let indices = null;
    let chosen = compensated;
    if (this.sparsifier !== null) {
      indices = this.sparsifier instanceof RandKSparsifier ? seededIndices(roundSeed, this.size, this.sparsifier.k()) : this.sparsifier.select(compensated);
      if (indices.length < this.size) chosen = Float64Array.from(indices, (i) => compensated[i]);
      else indices = null;
    }
    const nnz = indices === null ? this.size : indices.length;
    const [groupMode, groupSection, counts] = this.groups(indices, nnz);
    if (this.coder.grouped) chosen = chosen.map((v) => Math.min(QUANTIZER_CLIP, Math.max(-QUANTIZER_CLIP, v)));
    const { scaleBytes, valueBytes, decoded } = this.coder.encode(chosen, counts, this.rng);

    let indexCoding;
    let indexBytes;
    if (seeded) [indexCoding, indexBytes] = encodeSeeded(roundSeed);
    else if (indices === null) [indexCoding, indexBytes] = [IndexCoding.ALL, new Uint8Array(0)];
    else [indexCoding, indexBytes] = encodeIndices(indices, this.size);

    const head = new Uint8Array(16);
    const hv = new DataView(head.buffer);
    hv.setUint32(0, this.size, true);
    hv.setUint32(4, nnz, true);
    head[8] = indexCoding;
    head[9] = this.coder.code;
    head[10] = groupMode;
    hv.setUint32(12, indexBytes.length, true);
    const body = join([head, indexBytes, groupSection, scaleBytes, valueBytes]);
    let payload;
    if (this.spec.zstdLevel !== null) {
      const rawLength = new Uint8Array(4);
      new DataView(rawLength.buffer).setUint32(0, body.length, true);
      payload = join([Uint8Array.of(PAYLOAD_FORMAT, FLAG_ZSTD), rawLength, compressRaw(body)]);
    } else payload = join([Uint8Array.of(PAYLOAD_FORMAT, 0), body]);

    if (this.feedback) this.feedback.keep(compensated, indices, decoded);
    const sentIndices = indices === null ? range(this.size) : indices;
    return { payload, sent: { indices: sentIndices, values: decoded, size: this.size } };
  }

  /** @param {Uint32Array|null} indices @param {number} nnz @returns {[number, Uint8Array, number[]]} */
  groups(indices, nnz) {
    if (!this.coder.grouped) return [GroupMode.NONE, new Uint8Array(0), []];
    if (this.spec.block !== null) {
      const section = new Uint8Array(4);
      new DataView(section.buffer).setUint32(0, this.spec.block, true);
      return [GroupMode.BLOCK, section, blockCounts(nnz, this.spec.block)];
    }
    const sizes = /** @type {number[]} */ (this.tensorSizes);
    const counts = indices === null ? sizes.slice() : tensorCounts(indices, sizes);
    const section = new Uint8Array(4 + 4 * counts.length);
    const dv = new DataView(section.buffer);
    dv.setUint32(0, counts.length, true);
    counts.forEach((c, g) => dv.setUint32(4 + 4 * g, c, true));
    return [GroupMode.EXPLICIT, section, counts];
  }
}

/** @param {Uint8Array[]} parts */
function join(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
