/**
 * The device's local data set: model-ready input arrays and labels, with the deterministic train/eval split
 * and the shuffled mini-batches of src/fmfl/edge_client/data/dataset.py (same numpy permutations, rng.js).
 * @module device/dataset
 */

import { permutation } from "./rng.js";

/** @typedef {import("./index.js").Tensor} Tensor */

/**
 * @typedef {Object} Batch
 * @property {Object<string, Tensor>} inputs
 * @property {BigInt64Array|null} labels
 * @property {Int32Array} indices
 */

/** Python's round(): halves to the even neighbour. @param {number} x */
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Rows ``index`` of a tensor whose first axis is the sample.
 * @param {Tensor} t
 * @param {ArrayLike<number>} index
 * @returns {Tensor}
 */
export function takeRows(t, index) {
  const row = t.shape.slice(1).reduce((a, b) => a * b, 1);
  const Ctor = /** @type {any} */ (t.data.constructor);
  const out = new Ctor(index.length * row);
  for (let i = 0; i < index.length; i++) out.set(t.data.subarray(index[i] * row, (index[i] + 1) * row), i * row);
  return { data: out, shape: [index.length, ...t.shape.slice(1)] };
}

export class LocalDataset {
  /**
   * @param {Object<string, Tensor>} inputs  input name -> [N, ...] tensor (pixel_values float32 NCHW, features ...)
   * @param {BigInt64Array|null} labels  int64 [N] indices into labelNames, or null
   * @param {string[]} labelNames
   * @param {string} source
   */
  constructor(inputs, labels, labelNames = [], source = "") {
    const sizes = Object.entries(inputs).map(([name, t]) => [name, t.shape[0]]);
    if (sizes.length === 0) throw new Error("a LocalDataset needs at least one input array");
    if (labels !== null) sizes.push(["labels", labels.length]);
    if (new Set(sizes.map(([, n]) => n)).size !== 1) {
      throw new Error(`inputs and labels disagree on the number of samples: ${JSON.stringify(Object.fromEntries(sizes))}`);
    }
    this.inputs = inputs;
    this.labels = labels;
    this.labelNames = labelNames;
    this.source = source;
    this.size = /** @type {number} */ (sizes[0][1]);
  }

  get length() { return this.size; }

  /** The samples at ``indices``, in that order. @param {ArrayLike<number>} indices */
  subset(indices) {
    /** @type {Object<string, Tensor>} */
    const inputs = {};
    for (const [name, t] of Object.entries(this.inputs)) inputs[name] = takeRows(t, indices);
    const labels = this.labels === null ? null : BigInt64Array.from(Array.from(indices, (i) => /** @type {BigInt64Array} */ (this.labels)[i]));
    return new LocalDataset(inputs, labels, this.labelNames, this.source);
  }

  /**
   * The same samples with other inputs (the suffix's features instead of the raw pixels).
   * @param {Object<string, Tensor>} inputs
   */
  withInputs(inputs) { return new LocalDataset(inputs, this.labels, this.labelNames, this.source); }

  /**
   * A deterministic random split into [train, eval], as LocalDataset.split: round(evalFraction * n) samples go
   * to eval (at least one when evalFraction > 0, at most n - 1), both parts in sample order.
   * @param {number} evalFraction
   * @param {number|bigint} seed
   * @returns {[LocalDataset, LocalDataset]}
   */
  split(evalFraction, seed) {
    if (!(evalFraction >= 0 && evalFraction < 1)) throw new RangeError(`evalFraction must be in [0, 1), got ${evalFraction}`);
    const n = this.size;
    let nEval = Math.min(roundHalfEven(evalFraction * n), Math.max(n - 1, 0));
    if (evalFraction > 0 && n >= 2) nEval = Math.max(nEval, 1);
    const order = permutation(seed, n);
    const sorted = (/** @type {Int32Array} */ a) => Int32Array.from(a).sort();
    return [this.subset(sorted(order.subarray(nEval))), this.subset(sorted(order.subarray(0, nEval)))];
  }

  /**
   * One pass over the data in mini-batches, in a ``seed``-determined order when ``shuffle``.
   * @param {number} batchSize
   * @param {number|bigint} seed
   * @param {boolean} shuffle
   * @returns {Generator<Batch>}
   */
  *batches(batchSize, seed = 0, shuffle = true) {
    if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new RangeError(`batch_size must be >= 1, got ${batchSize}`);
    const n = this.size;
    const order = shuffle ? permutation(seed, n) : Int32Array.from({ length: n }, (_, i) => i);
    for (let start = 0; start < n; start += batchSize) {
      const index = order.subarray(start, Math.min(start + batchSize, n));
      /** @type {Object<string, Tensor>} */
      const inputs = {};
      for (const [name, t] of Object.entries(this.inputs)) inputs[name] = takeRows(t, index);
      const labels = this.labels === null ? null : BigInt64Array.from(Array.from(index, (i) => /** @type {BigInt64Array} */ (this.labels)[i]));
      yield { inputs, labels, indices: Int32Array.from(index) };
    }
  }
}
