/**
 * IEEE 754 helpers the codec needs to match numpy bit for bit: round half to even (numpy.rint),
 * binary64 -> binary16 with a single rounding (numpy's astype(float16) from float64, no detour through
 * binary32, which could round twice), binary16 -> binary32, and numpy's pairwise summation order.
 */

/** numpy.rint: round half to even. @param {number} x */
export function rint(x) {
  const f = Math.floor(x);
  const d = x - f; // exact for |x| < 2^52; larger doubles are integers already (d = 0)
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** 2^e for integer e, exactly. @param {number} e */
const pow2 = (e) => 2 ** e;

/**
 * The binary16 bits nearest to `x` (ties to even), as numpy's float64 -> float16 conversion.
 * @param {number} x
 * @returns {number} u16 bits
 */
export function toHalfBits(x) {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  if (a < pow2(-14)) return sign | rint(a * pow2(24)); // subnormal; 1024 lands on the smallest normal
  let e = Math.floor(Math.log2(a));
  if (pow2(e) > a) e--; // log2 may be off by one next to powers of two
  else if (pow2(e + 1) <= a) e++;
  let mant = rint((a / pow2(e) - 1) * 1024);
  if (mant === 1024) {
    mant = 0;
    e++;
  }
  if (e + 15 >= 31) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | mant;
}

/** The value of binary16 bits (exact in binary32 and binary64). @param {number} h */
export function fromHalfBits(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * pow2(-24);
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * pow2(exp - 25);
}

/**
 * numpy's pairwise sum of a[lo, lo + n) (float64; numpy/_core/src/umath/loops_utils.h.src): plain
 * below 8 values, 8 accumulators up to 128, halves above. np.add.reduce and reduceat use this order,
 * and the sign coder's mean |v| must match it to the last bit.
 * @param {Float64Array} a @param {number} lo @param {number} n
 * @returns {number}
 */
export function pairwiseSum(a, lo, n) {
  if (n < 8) {
    let res = -0.0;
    for (let i = lo; i < lo + n; i++) res += a[i];
    return res;
  }
  if (n <= 128) {
    const r = [a[lo], a[lo + 1], a[lo + 2], a[lo + 3], a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]];
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += a[lo + i + j];
    let res = r[0] + r[1] + (r[2] + r[3]) + (r[4] + r[5] + (r[6] + r[7]));
    for (; i < n; i++) res += a[lo + i];
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, lo, n2) + pairwiseSum(a, lo + n2, n - n2);
}

/** [0, 1, ..., n - 1] as a Uint32Array (a loop: Array.from with a callback is several times slower). @param {number} n */
export function range(n) {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}

/** True if every value is finite. @param {ArrayLike<number>} values */
export function allFinite(values) {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return false;
  return true;
}
