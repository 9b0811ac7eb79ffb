/**
 * Error feedback: keep what compression did not send and add it to the next update (Seide et al. 2014,
 * "1-Bit Stochastic Gradient Descent..."; Karimireddy et al. 2019, "Error Feedback Fixes SignSGD...").
 * Mirrors fmfl.protocol.codec.error_feedback: each round p = delta + e (binary64), the encoder sends
 * s = C(p) and keeps e' = p - s, so sum(sent) + e_T = sum(delta) to binary64 rounding.
 *
 * The residual is a Float64Array; `toBytes`/`fromBytes` give its little-endian binary64 bytes for the
 * device's IndexedDB state (the Python device keeps the same values as a float64 .npy).
 */
import { ProtocolError } from "../errors.js";
import { allFinite } from "./numeric.js";

export class ErrorFeedback {
  /** @param {number} size */
  constructor(size) {
    this.residual = new Float64Array(size);
  }

  /** delta + residual as a new binary64 array. @param {Float32Array|Float64Array} delta */
  compensate(delta) {
    const out = new Float64Array(delta.length);
    for (let i = 0; i < delta.length; i++) out[i] = delta[i] + this.residual[i];
    return out;
  }

  /**
   * Make `compensated - sent` (sent at `indices`, or everywhere if null) the new residual; takes
   * ownership of `compensated`.
   * @param {Float64Array} compensated @param {Uint32Array|null} indices @param {Float32Array} sent
   */
  keep(compensated, indices, sent) {
    if (indices === null) for (let i = 0; i < compensated.length; i++) compensated[i] -= sent[i];
    else for (let j = 0; j < indices.length; j++) compensated[indices[j]] -= sent[j];
    this.residual = compensated;
  }

  reset() {
    this.residual = new Float64Array(this.residual.length);
  }

  /** The residual as little-endian binary64 bytes. @returns {Uint8Array} */
  toBytes() {
    const out = new Uint8Array(8 * this.residual.length);
    const dv = new DataView(out.buffer);
    this.residual.forEach((v, i) => dv.setFloat64(8 * i, v, true));
    return out;
  }

  /**
   * Restore a residual saved by toBytes (or a Float64Array); its length must match (`residual_mismatch`)
   * and it must be finite (`non_finite`). Nothing changes on a rejection.
   * @param {Uint8Array|Float64Array} saved
   */
  load(saved) {
    let values;
    if (saved instanceof Float64Array) values = Float64Array.from(saved);
    else {
      if (saved.length !== 8 * this.residual.length) throw new ProtocolError("residual_mismatch", `saved residual of ${saved.length} bytes, expected ${8 * this.residual.length}`);
      const dv = new DataView(saved.buffer, saved.byteOffset, saved.byteLength);
      values = Float64Array.from({ length: this.residual.length }, (_, i) => dv.getFloat64(8 * i, true));
    }
    if (values.length !== this.residual.length) throw new ProtocolError("residual_mismatch", `saved residual of ${values.length} values, expected ${this.residual.length}`);
    if (!allFinite(values)) throw new ProtocolError("non_finite", "saved residual holds NaN or infinity");
    this.residual = values;
  }
}
