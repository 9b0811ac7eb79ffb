/**
 * Codec spec strings such as "topk:0.01+int8+ef" (docs/protocol.md, section 7), parsed into a frozen
 * CodecSpec and printed back in canonical form. Mirrors fmfl.protocol.codec.spec: accepts exactly the
 * strings the Python parser accepts.
 *
 *     spec      = stage *( "+" stage )
 *     stage     = "dense" / "fp32" / "fp16" / "topk" ":" amount [ ",per_tensor" ] / "randk" ":" amount
 *               / quantizer [ ":" qoption *( "," qoption ) ] / "ef" / "zstd" [ ":level=" 1*2DIGIT ]
 *     quantizer = "int8" / "int4" / "sign"
 *     qoption   = "block=" 1*10DIGIT / "per_tensor" / "sr"
 *     amount    = 1*10DIGIT / fraction
 */
import { ProtocolError } from "../errors.js";
import { pyFloatRepr } from "../json.js";

export const DEFAULT_BLOCK = 256;
export const DEFAULT_ZSTD_LEVEL = 3;
const MAX_SPEC_CHARS = 256;
const FRACTION = /^(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?$/;
const QUANTIZERS = ["int8", "int4", "sign"];

/**
 * @typedef {object} CodecSpec
 * @property {"none"|"topk"|"randk"} sparsification
 * @property {number|null} fraction of coordinates kept (topk/randk)
 * @property {number|null} count of coordinates kept (topk/randk)
 * @property {boolean} perTensorK top-k per tensor
 * @property {"fp32"|"fp16"|"int8"|"int4"|"sign"} values
 * @property {number|null} block quantizer scale group size; null = one group per tensor
 * @property {boolean} stochastic stochastic rounding (quantizers)
 * @property {boolean} errorFeedback
 * @property {number|null} zstdLevel null = no zstd
 * @property {boolean} perTensorScale
 * @property {boolean} needsTensorSizes
 */

/** @param {string} spec @param {string} why */
function bad(spec, why) {
  return new ProtocolError("bad_codec_spec", `'${spec}': ${why}`);
}

// Python's str.isspace() set: JS trim() differs (it keeps \x1c-\x1f and \x85, and strips U+FEFF).
const PY_SPACE = /^[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;

/** Python's str.strip() without arguments. @param {string} s */
const pyStrip = (s) => s.replace(PY_SPACE, "");

/** Python's str.isdigit() on ASCII text: all characters 0-9, at least one. @param {string} s */
const isDigits = (s) => /^[0-9]+$/.test(s);

/** @param {string} text @param {string} digits @param {string} what */
function parseInt10(text, digits, what) {
  if (!isDigits(digits) || digits.length > 10) throw bad(text, `${what} must be a decimal integer`);
  return Number(digits);
}

/**
 * Build and validate a spec from its fields (as CodecSpec.__post_init__ does).
 * @param {Partial<CodecSpec>} fields
 * @param {string} text for error messages
 * @returns {CodecSpec}
 */
export function makeCodecSpec(fields, text = "") {
  const s = {
    sparsification: "none", fraction: null, count: null, perTensorK: false, values: "fp32", block: DEFAULT_BLOCK,
    stochastic: false, errorFeedback: false, zstdLevel: null, ...fields,
  };
  if (s.sparsification === "none") {
    if (s.fraction !== null || s.count !== null || s.perTensorK) throw bad(text, "fraction/count/per_tensor need topk or randk");
  } else {
    if ((s.fraction === null) === (s.count === null)) throw bad(text, `${s.sparsification} needs exactly one of a fraction or a count`);
    if (s.fraction !== null && !(Number.isFinite(s.fraction) && s.fraction > 0 && s.fraction <= 1)) throw bad(text, "fraction must be in (0, 1]");
    if (s.count !== null && s.count < 1) throw bad(text, "count must be >= 1");
    if (s.perTensorK && s.sparsification !== "topk") throw bad(text, "per_tensor applies to topk only");
  }
  if (QUANTIZERS.includes(s.values)) {
    if (s.block !== null && !(s.block >= 1 && s.block < 2 ** 31)) throw bad(text, "block must be in [1, 2**31)");
  } else {
    if (s.stochastic) throw bad(text, "sr applies to int8/int4/sign only");
    s.block = DEFAULT_BLOCK; // scale groups mean nothing without a quantizer: equal chains compare equal
  }
  if (s.zstdLevel !== null && !(s.zstdLevel >= 1 && s.zstdLevel <= 22)) throw bad(text, "zstd level must be in [1, 22]");
  const perTensorScale = QUANTIZERS.includes(s.values) && s.block === null;
  return Object.freeze({ ...s, perTensorScale, needsTensorSizes: s.perTensorK || perTensorScale });
}

/** @param {string} text @param {string} name */
function stageKind(text, name) {
  if (name === "topk" || name === "randk") return "sparsifier";
  if (["dense", "fp32", "fp16", ...QUANTIZERS].includes(name)) return "value";
  if (name === "ef" || name === "zstd") return name;
  throw bad(text, `unknown stage '${name}'`);
}

/** `[head, tail]` split at the first `sep` (Python's str.partition, without the separator). @param {string} s @param {string} sep */
function partition(s, sep) {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ""] : [s.slice(0, i), s.slice(i + sep.length)];
}

/**
 * The spec for `text`, or ProtocolError `bad_codec_spec`.
 * @param {string} text
 * @returns {CodecSpec}
 */
export function parseCodecSpec(text) {
  if (typeof text !== "string" || text.length === 0 || text.length > MAX_SPEC_CHARS) throw bad(String(text).slice(0, MAX_SPEC_CHARS), `a spec is a string of 1..${MAX_SPEC_CHARS} characters`);
  /** @type {Partial<CodecSpec>} */
  const fields = {};
  const seen = new Set();
  for (const stage of pyStrip(text).split("+")) {
    const [name, args] = partition(stage, ":");
    const kind = stageKind(text, name);
    if (seen.has(kind)) throw bad(text, `more than one ${kind} stage`);
    seen.add(kind);
    if (["dense", "fp32", "fp16", "ef"].includes(name) && args) throw bad(text, `${name} takes no options`);
    if (name === "topk" || name === "randk") Object.assign(fields, parseAmount(text, name, args));
    else if (name === "dense" || name === "fp32") fields.values = "fp32";
    else if (name === "fp16") fields.values = "fp16";
    else if (QUANTIZERS.includes(name)) {
      fields.values = /** @type {CodecSpec["values"]} */ (name);
      Object.assign(fields, parseQuantizer(text, args));
    } else if (name === "ef") fields.errorFeedback = true;
    else fields.zstdLevel = parseZstd(text, args);
  }
  return makeCodecSpec(fields, text);
}

/** @param {string} text @param {string} name @param {string} args */
function parseAmount(text, name, args) {
  const [amount, option] = partition(args, ",");
  /** @type {Partial<CodecSpec>} */
  const out = { sparsification: /** @type {"topk"|"randk"} */ (name) };
  if (option) {
    if (option !== "per_tensor") throw bad(text, `unknown ${name} option '${option}'`);
    out.perTensorK = true;
  }
  if (isDigits(amount)) {
    out.count = parseInt10(text, amount, "count");
    return out;
  }
  if (!FRACTION.test(amount)) throw bad(text, `${name} needs a count or a fraction, got '${amount}'`);
  out.fraction = Number(amount);
  return out;
}

/** @param {string} text @param {string} args */
function parseQuantizer(text, args) {
  /** @type {Partial<CodecSpec>} */
  const out = {};
  const seen = new Set();
  for (const option of args ? args.split(",") : []) {
    const key = option === "per_tensor" || option.startsWith("block=") ? "scale" : option;
    if (seen.has(key)) throw bad(text, `repeated or conflicting option '${option}'`);
    seen.add(key);
    if (option.startsWith("block=")) out.block = parseInt10(text, option.slice("block=".length), "block");
    else if (option === "per_tensor") out.block = null;
    else if (option === "sr") out.stochastic = true;
    else throw bad(text, `unknown quantizer option '${option}'`);
  }
  return out;
}

/** @param {string} text @param {string} args */
function parseZstd(text, args) {
  if (!args) return DEFAULT_ZSTD_LEVEL;
  if (!args.startsWith("level=")) throw bad(text, `unknown zstd option '${args}'`);
  return parseInt10(text, args.slice("level=".length), "zstd level");
}

/**
 * The canonical form (what Python's `str(CodecSpec)` prints): sparsifier, value stage (omitted when
 * fp32), ef, zstd, defaults omitted, or "dense" when nothing is left.
 * @param {CodecSpec} s
 */
export function codecSpecToString(s) {
  const stages = [];
  if (s.sparsification !== "none") {
    const amount = s.count !== null ? String(s.count) : pyFloatRepr(/** @type {number} */ (s.fraction));
    stages.push(`${s.sparsification}:${amount}${s.perTensorK ? ",per_tensor" : ""}`);
  }
  if (QUANTIZERS.includes(s.values)) {
    const options = [];
    if (s.block === null) options.push("per_tensor");
    else if (s.block !== DEFAULT_BLOCK) options.push(`block=${s.block}`);
    if (s.stochastic) options.push("sr");
    stages.push(s.values + (options.length ? ":" + options.join(",") : ""));
  } else if (s.values === "fp16") stages.push("fp16");
  if (s.errorFeedback) stages.push("ef");
  if (s.zstdLevel !== null) stages.push(s.zstdLevel === DEFAULT_ZSTD_LEVEL ? "zstd" : `zstd:level=${s.zstdLevel}`);
  return stages.join("+") || "dense";
}

/** The default chain: top-k 1% + int8 (blocks of 256) + error feedback. */
export const DEFAULT_CODEC = "topk:0.01+int8+ef";
