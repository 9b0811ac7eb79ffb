/**
 * Typed, bounded reads of metadata fields: the schema check between parsed JSON and messages
 * (docs/protocol.md, section 5). Mirrors fmfl.protocol.fields. Unknown keys are ignored; a missing key
 * or a value of the wrong JSON type is `bad_metadata`; a boolean is never a number; integers are the
 * parser's BigInts, so `1.0` is not an integer.
 */
import { ProtocolError } from "./errors.js";
import { utf8Length } from "./bytes.js";
import { PyFloat } from "./json.js";

export const MAX_SAFE_INT = 2 ** 53 - 1;
const KEY = /^[A-Za-z0-9_.-]{1,64}$/;

/** A parsed JSON object (not a list, not null, not a parsed float). @param {unknown} v @returns {v is Record<string, unknown>} */
export function isJsonObject(v) {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof PyFloat);
}

/**
 * `obj[key] = value` as an own property even for "__proto__" (a legal map key by section 5's rule, which a
 * plain assignment would take as the prototype).
 * @param {Record<string, unknown>} obj @param {string} key @param {unknown} value
 */
export function putOwn(obj, key, value) {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** @param {string} key @param {string} why */
function bad(key, why) {
  return new ProtocolError("bad_metadata", `field '${key}': ${why}`);
}

/** @param {unknown} v */
function typeName(v) {
  if (v === null) return "NoneType";
  if (typeof v === "bigint") return "int";
  if (typeof v === "number" || v instanceof PyFloat) return "float";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "string") return "str";
  if (Array.isArray(v)) return "list";
  return "dict";
}

/**
 * An integer in [low, high]: a BigInt from the parser, or (for locally built values) a safe integer; a
 * parsed float such as `1.0` (a PyFloat) is not an integer.
 * @param {string} key @param {unknown} value @param {number} [low] @param {number} [high]
 * @returns {number}
 */
export function checkInt(key, value, low = 0, high = MAX_SAFE_INT) {
  let n;
  if (typeof value === "bigint") n = value;
  else if (typeof value === "number" && Number.isSafeInteger(value)) n = BigInt(value);
  else throw bad(key, `expected an integer, got ${typeName(value)}`);
  if (n < BigInt(low) || n > BigInt(high)) throw bad(key, `${n} outside [${low}, ${high}]`);
  return Number(n);
}

/**
 * A finite number (JSON integers are accepted as floats).
 * @param {string} key @param {unknown} value
 * @returns {number}
 */
export function checkFloat(key, value) {
  if (value instanceof PyFloat) value = value.value;
  if (typeof value !== "number" && typeof value !== "bigint") throw bad(key, `expected a number, got ${typeName(value)}`);
  const n = Number(value);
  if (!Number.isFinite(n)) throw new ProtocolError("non_finite", `field '${key}' is not finite`);
  return n;
}

/** @param {string} key @param {unknown} value @returns {string} */
export function checkKey(key, value) {
  if (typeof value !== "string" || !KEY.test(value)) throw bad(key, `map key ${JSON.stringify(value)?.slice(0, 80)} must be 1..64 of A-Z a-z 0-9 _ . -`);
  return value;
}

/** Reads the fields of one metadata object under `limits`. */
export class Fields {
  /** @param {Record<string, unknown>} metadata @param {import("./limits.js").Limits} limits */
  constructor(metadata, limits) {
    this.metadata = metadata;
    this.limits = limits;
  }

  /** @param {string} key */
  get(key) {
    if (!Object.prototype.hasOwnProperty.call(this.metadata, key)) throw bad(key, "missing");
    return this.metadata[key];
  }

  /** True if `key` is present and not null. @param {string} key */
  optional(key) {
    return Object.prototype.hasOwnProperty.call(this.metadata, key) && this.metadata[key] !== null;
  }

  /** @param {string} key @returns {string} */
  string(key) {
    const value = this.get(key);
    if (typeof value !== "string") throw bad(key, `expected a string, got ${typeName(value)}`);
    if (utf8Length(value) > this.limits.maxStringBytes) throw new ProtocolError("too_large", `field '${key}' longer than ${this.limits.maxStringBytes}`);
    return value;
  }

  /** @param {string} key @returns {string|null} */
  optionalString(key) {
    return this.optional(key) ? this.string(key) : null;
  }

  /** @param {string} key @param {number} [low] @param {number} [high] */
  integer(key, low = 0, high = MAX_SAFE_INT) {
    return checkInt(key, this.get(key), low, high);
  }

  /** @param {string} key @param {number} [low] @param {number} [high] @returns {number|null} */
  optionalInteger(key, low = 0, high = MAX_SAFE_INT) {
    return this.optional(key) ? this.integer(key, low, high) : null;
  }

  /** @param {string} key */
  number(key) {
    return checkFloat(key, this.get(key));
  }

  /** @param {string} key @returns {boolean} */
  boolean(key) {
    const value = this.get(key);
    if (typeof value !== "boolean") throw bad(key, `expected true or false, got ${typeName(value)}`);
    return value;
  }

  /** @param {string} key @returns {string[]} */
  stringList(key) {
    const value = this.get(key);
    if (!Array.isArray(value)) throw bad(key, `expected a list, got ${typeName(value)}`);
    this.count(key, value.length);
    return value.map((item) => this.itemString(key, item));
  }

  /** @param {string} key @returns {Record<string, number>} */
  numberMap(key) {
    const value = this.get(key);
    if (!isJsonObject(value)) throw bad(key, `expected an object, got ${typeName(value)}`);
    const entries = Object.entries(value);
    this.count(key, entries.length);
    /** @type {Record<string, number>} */
    const out = {};
    for (const [k, v] of entries) putOwn(out, checkKey(key, k), checkFloat(`${key}.${k}`, v));
    return out;
  }

  /**
   * Capability values: string, integer (|x| <= 2^53 - 1), finite float, boolean, or list of strings.
   * Integers come back as Numbers; `floats` lists the names whose value was a JSON float.
   * @param {string} key
   * @returns {{values: Record<string, string|number|boolean|string[]>, floats: Set<string>}}
   */
  capabilities(key) {
    const value = this.get(key);
    if (!isJsonObject(value)) throw bad(key, `expected an object, got ${typeName(value)}`);
    const entries = Object.entries(value);
    this.count(key, entries.length);
    /** @type {Record<string, string|number|boolean|string[]>} */
    const values = {};
    const floats = new Set();
    for (const [name, item] of entries) {
      checkKey(key, name);
      if (Array.isArray(item)) {
        this.count(`${key}.${name}`, item.length);
        putOwn(values, name, item.map((entry) => this.itemString(`${key}.${name}`, entry)));
      } else if (typeof item === "string") putOwn(values, name, this.itemString(`${key}.${name}`, item));
      else if (typeof item === "boolean") putOwn(values, name, item);
      else if (typeof item === "bigint") putOwn(values, name, checkInt(`${key}.${name}`, item, -MAX_SAFE_INT, MAX_SAFE_INT));
      else if (typeof item === "number" || item instanceof PyFloat) {
        putOwn(values, name, checkFloat(`${key}.${name}`, item));
        floats.add(name);
      } else throw bad(`${key}.${name}`, "a capability is a string, number, boolean or list of strings");
    }
    return { values, floats };
  }

  /** @param {string} key @param {number} n */
  count(key, n) {
    if (n > this.limits.maxItems) throw new ProtocolError("too_large", `field '${key}' has ${n} items > ${this.limits.maxItems}`);
  }

  /** @param {string} key @param {unknown} item @returns {string} */
  itemString(key, item) {
    if (typeof item !== "string") throw bad(key, `expected strings, got ${typeName(item)}`);
    if (utf8Length(item) > this.limits.maxStringBytes) throw new ProtocolError("too_large", `a string in '${key}' is longer than the limit`);
    return item;
  }
}
