/**
 * numpy's ``np.random.default_rng(seed).permutation(n)``, bit for bit: SeedSequence (Melissa O'Neill's
 * seed_seq hashing as numpy/random/bit_generator.pyx implements it) -> PCG64 (XSL-RR 128/64, numpy's
 * pcg64.h) -> Generator.shuffle (Fisher-Yates from the end, ``random_interval`` by masked rejection).
 * The Python device shuffles its mini-batches and splits train/eval with it
 * (src/fmfl/edge_client/data/dataset.py), so the browser must draw the very same orders.
 * 128-bit arithmetic uses BigInt; SeedSequence's 32-bit hashing uses Math.imul.
 * @module device/rng
 */

const INIT_A = 0x43b0d7e5, MULT_A = 0x931e8875, INIT_B = 0x8b51f9dd, MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd, MIX_MULT_R = 0x4973f715, XSHIFT = 16, POOL_SIZE = 4;
const MASK64 = (1n << 64n) - 1n, MASK128 = (1n << 128n) - 1n;
const PCG_MULT = (2549297995355413924n << 64n) | 4865540595714422341n;

/** @param {bigint} n  @returns {number[]} n as little-endian uint32 words ([0] for 0), as numpy coerces ints */
function uint32Words(n) {
  if (n < 0n) throw new RangeError(`a seed must be non-negative, got ${n}`);
  if (n === 0n) return [0];
  const words = [];
  for (let v = n; v > 0n; v >>= 32n) words.push(Number(v & 0xffffffffn));
  return words;
}

/**
 * SeedSequence(seed).generate_state(4, uint32): the pool mixed from the seed's words, then 4 output words.
 * @param {number|bigint} seed
 * @param {number} nWords
 * @returns {Uint32Array}
 */
export function defaultRngSeedState(seed, nWords = 4) {
  const entropy = uint32Words(BigInt(seed));
  let hashConst = INIT_A;
  const hashmix = (/** @type {number} */ value) => {
    value = (value ^ hashConst) >>> 0;
    hashConst = Math.imul(hashConst, MULT_A) >>> 0;
    value = Math.imul(value, hashConst) >>> 0;
    return (value ^ (value >>> XSHIFT)) >>> 0;
  };
  const mix = (/** @type {number} */ x, /** @type {number} */ y) => {
    const r = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
    return (r ^ (r >>> XSHIFT)) >>> 0;
  };
  const pool = new Uint32Array(POOL_SIZE);
  for (let i = 0; i < POOL_SIZE; i++) pool[i] = hashmix(i < entropy.length ? entropy[i] : 0);
  for (let src = 0; src < POOL_SIZE; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) {
      if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
    }
  }
  for (let src = POOL_SIZE; src < entropy.length; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst], hashmix(entropy[src]));
  }
  const out = new Uint32Array(nWords);
  let hashB = INIT_B;
  for (let i = 0; i < nWords; i++) {
    let v = (pool[i % POOL_SIZE] ^ hashB) >>> 0;
    hashB = Math.imul(hashB, MULT_B) >>> 0;
    v = Math.imul(v, hashB) >>> 0;
    out[i] = (v ^ (v >>> XSHIFT)) >>> 0;
  }
  return out;
}

/** numpy's PCG64 bit generator (XSL-RR output), with its buffered 32-bit draws. */
class PCG64 {
  /** @param {number|bigint} seed */
  constructor(seed) {
    const w = defaultRngSeedState(seed, 8);
    // generate_state(4, uint64) views the 8 words as little-endian uint64 pairs
    const u64 = (/** @type {number} */ i) => (BigInt(w[2 * i + 1]) << 32n) | BigInt(w[2 * i]);
    const initState = (u64(0) << 64n) | u64(1);
    const initSeq = (u64(2) << 64n) | u64(3);
    this.state = 0n;
    this.inc = ((initSeq << 1n) | 1n) & MASK128;
    this.step();
    this.state = (this.state + initState) & MASK128;
    this.step();
    this.hasUint32 = false;
    this.uinteger = 0;
  }

  step() { this.state = (this.state * PCG_MULT + this.inc) & MASK128; }

  /** @returns {bigint} */
  next64() {
    this.step();
    const s = this.state;
    const x = ((s >> 64n) ^ s) & MASK64;
    const rot = s >> 122n;
    return ((x >> rot) | (x << ((64n - rot) & 63n))) & MASK64;
  }

  /** @returns {number} */
  next32() {
    if (this.hasUint32) {
      this.hasUint32 = false;
      return this.uinteger;
    }
    const next = this.next64();
    this.hasUint32 = true;
    this.uinteger = Number(next >> 32n);
    return Number(next & 0xffffffffn);
  }
}

/**
 * A uniform integer in [0, max] by masked rejection (numpy's random_interval; max < 2**32 here).
 * @param {PCG64} gen
 * @param {number} max
 */
function randomInterval(gen, max) {
  if (max === 0) return 0;
  let mask = max;
  mask |= mask >>> 1; mask |= mask >>> 2; mask |= mask >>> 4; mask |= mask >>> 8; mask |= mask >>> 16;
  mask >>>= 0;
  let value;
  do { value = (gen.next32() & mask) >>> 0; } while (value > max);
  return value;
}

/**
 * ``np.random.default_rng(seed).permutation(n)``.
 * @param {number|bigint} seed  a non-negative integer (BigInt beyond 2**53)
 * @param {number} n
 * @returns {Int32Array}
 */
export function permutation(seed, n) {
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 31) throw new RangeError(`n must be in 0..2**31-1, got ${n}`);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  const gen = new PCG64(seed);
  for (let i = n - 1; i >= 1; i--) {
    const j = randomInterval(gen, i);
    const t = out[i]; out[i] = out[j]; out[j] = t;
  }
  return out;
}
