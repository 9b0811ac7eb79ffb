/**
 * Metadata JSON the way the reference reads and writes it (docs/protocol.md, section 5).
 *
 * Reading: RFC 8259 plus section 5's rules, as Python's json module with fmfl's hooks applies them: no
 * NaN/Infinity, no number that overflows a double, no integer longer than 4,300 digits, no duplicate
 * key, no byte-order mark, bounded nesting. JSON.parse cannot be used: it takes the last of duplicate
 * keys and cannot tell `1` from `1.0`, which section 5 tells apart (an integer field refuses `1.0`).
 * So integers come back as BigInt and every other number as a PyFloat.
 *
 * Writing: Python's `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True)`, byte for
 * byte, including Python's float repr (`1e-05`, `100.0`, `1e+16`), because frames, chunk ids and
 * signatures are compared as bytes. Integers are JS safe integers or BigInt; a float field is wrapped
 * in PyFloat so that 100.0 prints as "100.0" (a plain non-integer Number prints as a float too).
 */

const MAX_INT_DIGITS = 4300; // Python's int() limit on decimal digits (sys.int_info.default_max_str_digits)
const MAX_DEPTH = 512; // Python raises RecursionError near 1000 levels; any bound is "exhausting the parser"

/** A float that must print as a Python float even when it holds an integer value (`lr: 1.0`). */
export class PyFloat {
  /** @param {number} value */
  constructor(value) {
    this.value = value;
  }
}

class JsonSyntaxError extends Error {}

/**
 * Parse JSON text with section 5's rules. Throws a plain Error with a reason-free message on any
 * violation (framing.js turns it into `bad_metadata`).
 * @param {string} text
 * @returns {unknown} objects are null-prototype objects; integers BigInt; other numbers PyFloat
 */
export function parseStrictJson(text) {
  const p = new Parser(text);
  p.ws();
  const value = p.value(0);
  p.ws();
  if (p.at !== text.length) p.fail("extra data");
  return value;
}

class Parser {
  /** @param {string} text */
  constructor(text) {
    this.s = text;
    this.at = 0;
  }

  /** @param {string} why @returns {never} */
  fail(why) {
    throw new JsonSyntaxError(`${why} at char ${this.at}`);
  }

  ws() {
    const s = this.s;
    while (this.at < s.length) {
      const c = s.charCodeAt(this.at);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.at++;
      else break;
    }
  }

  /** @param {number} depth @returns {unknown} */
  value(depth) {
    if (depth > MAX_DEPTH) this.fail("nesting too deep");
    const c = this.s[this.at];
    if (c === "{") return this.object(depth + 1);
    if (c === "[") return this.array(depth + 1);
    if (c === '"') return this.string();
    if (c === "-" || (c >= "0" && c <= "9")) return this.number();
    if (this.s.startsWith("true", this.at)) return (this.at += 4), true;
    if (this.s.startsWith("false", this.at)) return (this.at += 5), false;
    if (this.s.startsWith("null", this.at)) return (this.at += 4), null;
    // NaN, Infinity and -Infinity land here: section 5 forbids them.
    return this.fail("expecting value");
  }

  /** @param {number} depth */
  object(depth) {
    this.at++;
    /** @type {Record<string, unknown>} */
    const out = Object.create(null);
    this.ws();
    if (this.s[this.at] === "}") return this.at++, out;
    for (;;) {
      this.ws();
      if (this.s[this.at] !== '"') this.fail("expecting a property name in double quotes");
      const key = this.string();
      if (Object.prototype.hasOwnProperty.call(out, key)) this.fail("duplicate key in a JSON object");
      this.ws();
      if (this.s[this.at] !== ":") this.fail("expecting ':'");
      this.at++;
      this.ws();
      out[key] = this.value(depth);
      this.ws();
      const c = this.s[this.at++];
      if (c === "}") return out;
      if (c !== ",") this.fail("expecting ',' or '}'");
    }
  }

  /** @param {number} depth */
  array(depth) {
    this.at++;
    const out = [];
    this.ws();
    if (this.s[this.at] === "]") return this.at++, out;
    for (;;) {
      this.ws();
      out.push(this.value(depth));
      this.ws();
      const c = this.s[this.at++];
      if (c === "]") return out;
      if (c !== ",") this.fail("expecting ',' or ']'");
    }
  }

  string() {
    const s = this.s;
    this.at++;
    let out = "";
    let start = this.at;
    for (;;) {
      if (this.at >= s.length) this.fail("unterminated string");
      const c = s.charCodeAt(this.at);
      if (c === 0x22) {
        out += s.slice(start, this.at);
        this.at++;
        return out;
      }
      if (c < 0x20) this.fail("control character in a string");
      if (c !== 0x5c) {
        this.at++;
        continue;
      }
      out += s.slice(start, this.at);
      const e = s[this.at + 1];
      const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" }[e];
      if (simple !== undefined) {
        out += simple;
        this.at += 2;
      } else if (e === "u") {
        const hex = s.slice(this.at + 2, this.at + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail("invalid \\uXXXX escape");
        out += String.fromCharCode(parseInt(hex, 16)); // lone surrogates pass, as in Python
        this.at += 6;
      } else this.fail("invalid escape");
      start = this.at;
    }
  }

  number() {
    const m = /^(-?(?:0|[1-9][0-9]*))(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(this.s.slice(this.at, this.at + 5000));
    if (!m) return this.fail("expecting value");
    const text = m[0];
    if (text.length >= 5000) this.fail("number too long");
    this.at += text.length;
    if (m[2] === undefined && m[3] === undefined) {
      const digits = m[1].replace("-", "");
      if (digits.length > MAX_INT_DIGITS) this.fail(`integer longer than ${MAX_INT_DIGITS} digits`);
      return BigInt(m[1]);
    }
    const value = Number(text);
    if (!Number.isFinite(value)) this.fail(`number ${text.slice(0, 20)} overflows`);
    return new PyFloat(value);
  }
}

/**
 * Python's `repr(float)`: the shortest digits that read back as `x`, fixed notation for decimal
 * exponents in [-4, 16), else `d.ddde+XX` (at least two exponent digits); a whole number keeps ".0".
 * @param {number} x a finite number
 */
export function pyFloatRepr(x) {
  if (!Number.isFinite(x)) throw new RangeError(`${x} is not allowed in JSON`);
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const sign = x < 0 ? "-" : "";
  const [mant, exp] = Math.abs(x).toExponential().split("e");
  const digits = mant.replace(".", "");
  const decpt = Number(exp) + 1; // the value is 0.DIGITS x 10^decpt
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) return `${sign}0.${"0".repeat(-decpt)}${digits}`;
    if (decpt >= digits.length) return `${sign}${digits}${"0".repeat(decpt - digits.length)}.0`;
    return `${sign}${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
  }
  const e = decpt - 1;
  const body = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${body}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
}

/** @param {string} text */
function quote(text) {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += "\\\\";
    else if (c >= 0x20 && c <= 0x7e) out += text[i];
    else if (c === 0x0a) out += "\\n";
    else if (c === 0x0d) out += "\\r";
    else if (c === 0x09) out += "\\t";
    else if (c === 0x08) out += "\\b";
    else if (c === 0x0c) out += "\\f";
    else out += "\\u" + c.toString(16).padStart(4, "0");
  }
  return out + '"';
}

/** Code-point order, as Python sorts str keys (UTF-16 order differs above U+FFFF). */
function byCodePoint(a, b) {
  const x = Array.from(a);
  const y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = /** @type {number} */ (x[i].codePointAt(0)) - /** @type {number} */ (y[i].codePointAt(0));
    if (d) return d;
  }
  return x.length - y.length;
}

/**
 * The one JSON form fmfl writes: sorted keys, no spaces, ASCII only, no NaN or infinity.
 * Keys whose value is `undefined` are left out (as absent); `null` is written.
 * @param {unknown} value
 * @returns {string}
 */
export function canonicalJson(value) {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "string") return quote(value);
  if (typeof value === "bigint") return value.toString();
  if (value instanceof PyFloat) return pyFloatRepr(value.value);
  if (typeof value === "number") {
    if (Number.isInteger(value) && Number.isSafeInteger(value)) return String(value);
    return pyFloatRepr(value);
  }
  if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
  if (typeof value === "object") {
    const keys = Object.keys(/** @type {object} */ (value))
      .filter((k) => /** @type {any} */ (value)[k] !== undefined)
      .sort(byCodePoint);
    return "{" + keys.map((k) => quote(k) + ":" + canonicalJson(/** @type {any} */ (value)[k])).join(",") + "}";
  }
  throw new TypeError(`cannot write ${typeof value} as JSON`);
}
