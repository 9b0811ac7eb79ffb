/**
 * numpy's default generator, bit for bit: `numpy.random.default_rng(seed).random(n)`, i.e. SeedSequence
 * (O'Neill's seed_seq hash mixing, numpy/random/bit_generator.pyx) feeding PCG64 (O'Neill 2014, "PCG: A
 * Family of Simple Fast Space-Efficient Statistically Good Algorithms for Random Number Generation";
 * 128-bit LCG with the XSL-RR output, numpy/random/src/pcg64), and doubles as (next64 >> 11) * 2^-53.
 *
 * Why port it: the reference encoder draws the uniforms of stochastic rounding (`int8:sr`, `int4:sr`,
 * `sign:sr`) from this generator seeded with the encoder's seed, and the browser device must write the
 * same bytes (docs/protocol.md, section 6). Only the codec's stochastic stages use it.
 */

const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const XSHIFT = 16;
const POOL_SIZE = 4;

const MASK64 = (1n << 64n) - 1n;
const MASK128 = (1n << 128n) - 1n;
const PCG_MULT = (0x2360ed051fc65da4n << 64n) | 0x4385df649fccf645n;

/**
 * A non-negative integer seed as little-endian 32-bit words (numpy's _coerce_to_uint32_array; 0 -> [0]).
 * @param {bigint} seed
 */
function seedWords(seed) {
  if (seed < 0n) throw new RangeError("seed must be non-negative");
  const words = [];
  let s = seed;
  do {
    words.push(Number(s & 0xffffffffn));
    s >>= 32n;
  } while (s > 0n);
  return words;
}

/** The 4-word entropy pool of SeedSequence(seed). @param {bigint} seed */
function mixEntropy(seed) {
  const entropy = seedWords(seed);
  let hashConst = INIT_A;
  /** @param {number} value */
  const hashmix = (value) => {
    value = (value ^ hashConst) >>> 0;
    hashConst = Math.imul(hashConst, MULT_A) >>> 0;
    value = Math.imul(value, hashConst) >>> 0;
    return (value ^ (value >>> XSHIFT)) >>> 0;
  };
  /** @param {number} x @param {number} y */
  const mix = (x, y) => {
    const result = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
    return (result ^ (result >>> XSHIFT)) >>> 0;
  };
  const pool = new Array(POOL_SIZE);
  for (let i = 0; i < POOL_SIZE; i++) pool[i] = hashmix(i < entropy.length ? entropy[i] : 0);
  for (let src = 0; src < POOL_SIZE; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
  }
  for (let src = POOL_SIZE; src < entropy.length; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst], hashmix(entropy[src]));
  }
  return pool;
}

/**
 * SeedSequence(seed).generate_state(nWords, uint64), as BigInts.
 * @param {bigint} seed @param {number} nWords
 */
export function seedSequenceState64(seed, nWords) {
  const pool = mixEntropy(seed);
  let hashConst = INIT_B;
  const words32 = [];
  for (let i = 0; i < 2 * nWords; i++) {
    let v = (pool[i % POOL_SIZE] ^ hashConst) >>> 0;
    hashConst = Math.imul(hashConst, MULT_B) >>> 0;
    v = Math.imul(v, hashConst) >>> 0;
    words32.push((v ^ (v >>> XSHIFT)) >>> 0);
  }
  const out = [];
  for (let i = 0; i < nWords; i++) out.push((BigInt(words32[2 * i + 1]) << 32n) | BigInt(words32[2 * i]));
  return out;
}

/** numpy.random.Generator(PCG64(seed)): only what the codec needs, `random(n)`. */
export class NumpyGenerator {
  /** @param {number|bigint} seed a non-negative integer, as `numpy.random.default_rng(seed)` takes it */
  constructor(seed) {
    const [s0, s1, i0, i1] = seedSequenceState64(BigInt(seed), 4);
    const initState = (s0 << 64n) | s1;
    const initSeq = (i0 << 64n) | i1;
    this.state = 0n;
    this.inc = ((initSeq << 1n) | 1n) & MASK128;
    this.step();
    this.state = (this.state + initState) & MASK128;
    this.step();
  }

  step() {
    this.state = (this.state * PCG_MULT + this.inc) & MASK128;
  }

  /** The next 64 random bits (PCG64's XSL-RR output of the advanced state). @returns {bigint} */
  next64() {
    this.step();
    const s = this.state;
    const value = ((s >> 64n) ^ s) & MASK64;
    const rot = s >> 122n;
    return ((value >> rot) | (value << ((64n - rot) & 63n))) & MASK64;
  }

  /**
   * `n` doubles uniform in [0, 1), as Generator.random(n).
   * @param {number} n
   * @returns {Float64Array}
   */
  random(n) {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = Number(this.next64() >> 11n) * 2 ** -53;
    return out;
  }
}
