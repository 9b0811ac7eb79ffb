/**
 * Random-k from a seed that travels in the payload (docs/protocol.md, section 6, SEEDED): hash every
 * position i as h_i = mix(seed + (i + 1) * 0x9E3779B97F4A7C15 mod 2^64) with SplitMix64's finaliser
 * (Steele, Lea & Flood 2014) and keep the k positions with the smallest (h_i, i), in increasing order.
 * Stich, Cordonnier & Jaggi 2018 ("Sparsified SGD with Memory"). Mirrors fmfl.protocol.codec.randk.
 *
 * The hashes run on 32-bit halves (Math.imul-free 16-bit partial products) rather than BigInt: a
 * decoder regenerates size hashes per payload, and BigInt is some 20x slower.
 */

import { range } from "./numeric.js";

export const MASK64 = (1n << 64n) - 1n;
const GOLDEN = 0x9e3779b97f4a7c15n;
const MIX1 = 0xbf58476d1ce4e5b9n;
const MIX2 = 0x94d049bb133111ebn;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** SplitMix64's finaliser on a BigInt (reference form, used for single values). @param {bigint} x */
export function splitmix64(x) {
  let z = x & MASK64;
  z ^= z >> 30n;
  z = (z * MIX1) & MASK64;
  z ^= z >> 27n;
  z = (z * MIX2) & MASK64;
  z ^= z >> 31n;
  return z;
}

/** A per-round seed from a base seed: SplitMix64 of (base + counter) * golden. @param {bigint} base @param {number} counter */
export function deriveSeed(base, counter) {
  const value = (BigInt(base) + BigInt(counter)) & MASK64;
  return splitmix64((value * GOLDEN) & MASK64);
}

/** [hi, lo] of the 64-bit product of u32 a and u32 b. @param {number} a @param {number} b */
function mul32(a, b) {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const mid = a0 * b1 + a1 * b0; // < 2^33, exact in a double
  const low = a0 * b0 + (mid % 65536) * 65536; // < 2^33
  const hi = a1 * b1 + Math.floor(mid / 65536) + Math.floor(low / 4294967296);
  return [hi >>> 0, low >>> 0];
}

/** (hi, lo) * (mh, ml) mod 2^64 as [hi, lo]. @param {number} hi @param {number} lo @param {number} mh @param {number} ml */
function mul64(hi, lo, mh, ml) {
  const [h, l] = mul32(lo, ml);
  return [(h + Math.imul(hi, ml) + Math.imul(lo, mh)) >>> 0, l];
}

const M1H = 0xbf58476d, M1L = 0x1ce4e5b9, M2H = 0x94d049bb, M2L = 0x133111eb, GH = 0x9e3779b9, GL = 0x7f4a7c15;

/**
 * h_i for i in [0, size), as a BigUint64Array.
 * @param {bigint} seed @param {number} size
 */
export function positionHashes(seed, size) {
  const out = new BigUint64Array(size);
  const words = new Uint32Array(out.buffer);
  const s = BigInt(seed) & MASK64;
  // z_0 = seed + golden; z_i = z_{i-1} + golden (mod 2^64)
  let zh = Number(s >> 32n);
  let zl = Number(s & 0xffffffffn);
  for (let i = 0; i < size; i++) {
    const l = zl + GL;
    zh = (zh + GH + (l > 0xffffffff ? 1 : 0)) >>> 0;
    zl = l >>> 0;
    let h = zh;
    let lo = zl;
    lo = (lo ^ ((lo >>> 30) | (h << 2))) >>> 0;
    h = (h ^ (h >>> 30)) >>> 0;
    [h, lo] = mul64(h, lo, M1H, M1L);
    lo = (lo ^ ((lo >>> 27) | (h << 5))) >>> 0;
    h = (h ^ (h >>> 27)) >>> 0;
    [h, lo] = mul64(h, lo, M2H, M2L);
    lo = (lo ^ ((lo >>> 31) | (h << 1))) >>> 0;
    h = (h ^ (h >>> 31)) >>> 0;
    if (LITTLE_ENDIAN) {
      words[2 * i] = lo;
      words[2 * i + 1] = h;
    } else out[i] = (BigInt(h) << 32n) | BigInt(lo);
  }
  return out;
}

/**
 * The k positions with the smallest (h_i, i), sorted. Allocates O(size).
 *
 * The k-th smallest hash is found by a radix select on its top 16 bits (one counting pass), then by
 * sorting only the bucket that holds it (about size / 65536 hashes, since the hashes are uniform).
 * @param {bigint} seed @param {number} size @param {number} k
 * @returns {Uint32Array}
 */
export function seededIndices(seed, size, k) {
  if (k >= size) return range(size);
  if (k <= 0) return new Uint32Array(0);
  const hashes = positionHashes(seed, size);
  const words = LITTLE_ENDIAN ? new Uint32Array(hashes.buffer) : null;
  /** @param {number} i */
  const top16 = (i) => (words ? words[2 * i + 1] : Number(hashes[i] >> 32n)) >>> 16;
  const counts = new Uint32Array(65536);
  for (let i = 0; i < size; i++) counts[top16(i)]++;
  let bucket = 0;
  let before = 0; // hashes in buckets below `bucket`
  while (before + counts[bucket] < k) before += counts[bucket++];
  const candidates = new BigUint64Array(counts[bucket]);
  let n = 0;
  for (let i = 0; i < size; i++) if (top16(i) === bucket) candidates[n++] = hashes[i];
  candidates.sort();
  const kth = candidates[k - 1 - before];
  const out = new Uint32Array(k);
  let below = 0;
  for (let i = 0; i < size; i++) if (hashes[i] < kth) below++;
  // Ties at the k-th hash value go to the lowest positions, so the set is unique.
  let ties = k - below;
  n = 0;
  for (let i = 0; i < size; i++) {
    const h = hashes[i];
    if (h < kth) out[n++] = i;
    else if (h === kth && ties > 0) {
      out[n++] = i;
      ties--;
    }
  }
  return out;
}
