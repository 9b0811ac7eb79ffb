/**
 * Top-k sparsification (Aji & Heafield 2017, "Sparse Communication for Distributed Gradient Descent"):
 * the k coordinates of largest |p|, over the whole vector or per tensor (each tensor keeps
 * ceil(fraction * n_t), at least one). Ties at the cut go to the HIGHER index, |p| compared as held in
 * binary64 (protocol 1.2, docs/protocol.md section 6). Mirrors fmfl.protocol.codec.topk.
 */

/** ceil(fraction * n) clamped to [1, n] ([0, 0] for an empty tensor). @param {number} fraction @param {number} n */
export function ceilFraction(fraction, n) {
  if (n === 0) return 0;
  return Math.min(n, Math.max(1, Math.ceil(fraction * n)));
}

/**
 * The k-th smallest value of `a` (0-based rank `rank`), by quickselect on a copy: O(n) on average.
 * @param {Float64Array} a @param {number} rank
 */
function select(a, rank) {
  const v = a.slice();
  let lo = 0;
  let hi = v.length - 1;
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    // median of three as the pivot, so sorted or constant input stays linear on average
    const x = v[lo], y = v[mid], z = v[hi];
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (v[i] < pivot) i++;
      while (v[j] > pivot) j--;
      if (i <= j) {
        const t = v[i];
        v[i] = v[j];
        v[j] = t;
        i++;
        j--;
      }
    }
    if (rank <= j) hi = j;
    else if (rank >= i) lo = i;
    else return v[rank];
  }
  return v[rank];
}

/**
 * Sorted indices (offset by `offset`) of the k largest |values[lo, lo + n)|; ties at the cut go to the higher index.
 * @param {Float64Array} values @param {number} lo @param {number} n @param {number} k
 * @returns {number[]}
 */
function topKRange(values, lo, n, k) {
  if (k >= n) return Array.from({ length: n }, (_, i) => lo + i);
  if (k <= 0) return [];
  const magnitude = new Float64Array(n);
  for (let i = 0; i < n; i++) magnitude[i] = Math.abs(values[lo + i]);
  const threshold = select(magnitude, n - k);
  let above = 0;
  for (let i = 0; i < n; i++) if (magnitude[i] > threshold) above++;
  let ties = k - above; // the LAST `ties` positions equal to the threshold
  const keep = new Uint8Array(n);
  for (let i = n - 1; i >= 0 && ties > 0; i--) {
    if (magnitude[i] === threshold) {
      keep[i] = 1;
      ties--;
    }
  }
  const out = [];
  for (let i = 0; i < n; i++) if (keep[i] || magnitude[i] > threshold) out.push(lo + i);
  return out;
}

/** Keeps the largest-magnitude coordinates: `count` of them, or ceil(fraction * n); optionally per tensor. */
export class TopKSparsifier {
  /**
   * @param {number} size
   * @param {{fraction: number|null, count: number|null, tensorSizes?: number[]|null}} o
   */
  constructor(size, { fraction, count, tensorSizes = null }) {
    if ((fraction === null) === (count === null)) throw new RangeError("give exactly one of fraction and count");
    this.size = size;
    // A count becomes a fraction for per-tensor splitting, so each tensor keeps its share.
    this.fraction = fraction !== null ? fraction : Math.min(1.0, /** @type {number} */ (count) / size);
    this.count = count;
    this.tensorSizes = tensorSizes;
    this.seeded = false;
  }

  /** How many coordinates one call keeps. */
  k() {
    if (this.tensorSizes !== null) return this.tensorSizes.reduce((s, n) => s + ceilFraction(this.fraction, n), 0);
    if (this.count !== null) return Math.min(this.count, this.size);
    return ceilFraction(this.fraction, this.size);
  }

  /** @param {Float64Array} values @returns {Uint32Array} */
  select(values) {
    if (this.tensorSizes === null) return Uint32Array.from(topKRange(values, 0, values.length, this.k()));
    const parts = [];
    let offset = 0;
    for (const n of this.tensorSizes) {
      for (const i of topKRange(values, offset, n, ceilFraction(this.fraction, n))) parts.push(i);
      offset += n;
    }
    return Uint32Array.from(parts);
  }
}

/** Keeps `count` or ceil(fraction * size) positions chosen by the seed (randk.js). */
export class RandKSparsifier {
  /** @param {number} size @param {{fraction: number|null, count: number|null}} o */
  constructor(size, { fraction, count }) {
    if ((fraction === null) === (count === null)) throw new RangeError("give exactly one of fraction and count");
    this.kValue = count !== null ? Math.min(count, size) : ceilFraction(/** @type {number} */ (fraction), size);
    this.seeded = true;
  }

  k() {
    return this.kValue;
  }
}
