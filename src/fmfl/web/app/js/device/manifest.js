/**
 * ``manifest.json`` as src/fmfl/bundle/manifest.py reads it: schema ``fmfl.bundle/2`` (``/1`` refused with a
 * re-export hint), the fields a device needs, the trainable tensors' offsets, every artifact listed in
 * ``files``, and the bundle id re-derived from the content (sha256 over Python's canonical
 * ``json.dumps(sort_keys=True, separators=(",", ":"))`` of the identity fields, first 24 hex digits).
 *
 * Re-deriving the id needs the numbers exactly as Python prints them (``1e-08``, ``0.5``, ``2``): JSON.parse
 * forgets whether a number was ``1`` or ``1.0``, so a small parser here keeps each number's token and the
 * serializer prints it as Python's float repr / int would.
 * @module device/manifest
 */

import { BundleError } from "./errors.js";

export const SCHEMA = "fmfl.bundle/2";
export const MANIFEST_FILE = "manifest.json";
export const SIGNATURE_FILE = "manifest.sig";
export const MAX_MANIFEST_BYTES = 8 * 1024 * 1024;
const RETIRED = {
  "fmfl.bundle/1": "it holds onnxruntime-training artifacts, and fmfl now trains with the standard onnxruntime: " +
    "re-export the model with this fmfl (`fmfl export`) to get train-step graphs",
};

/** A JSON number with the token it was written as. */
class Num {
  /** @param {string} text */
  constructor(text) { this.text = text; this.isInt = !/[.eE]/.test(text); }
}

/** A JSON parser that keeps numbers as Num tokens. @param {string} s */
function parseRaw(s) {
  let i = 0;
  const ws = () => { while (i < s.length && " \t\n\r".includes(s[i])) i++; };
  const fail = (/** @type {string} */ what) => { throw new SyntaxError(`${what} at position ${i}`); };
  /** @returns {any} */
  const value = () => {
    ws();
    const ch = s[i];
    if (ch === "{") {
      i++; /** @type {Record<string, any>} */ const obj = {}; ws();
      if (s[i] === "}") { i++; return obj; }
      for (;;) {
        ws(); if (s[i] !== '"') fail("expected a key");
        const key = str(); ws(); if (s[i] !== ":") fail("expected ':'"); i++;
        obj[key] = value(); ws();
        if (s[i] === ",") { i++; continue; }
        if (s[i] === "}") { i++; return obj; }
        fail("expected ',' or '}'");
      }
    }
    if (ch === "[") {
      i++; const arr = []; ws();
      if (s[i] === "]") { i++; return arr; }
      for (;;) {
        arr.push(value()); ws();
        if (s[i] === ",") { i++; continue; }
        if (s[i] === "]") { i++; return arr; }
        fail("expected ',' or ']'");
      }
    }
    if (ch === '"') return str();
    for (const [word, v] of /** @type {[string, any][]} */ ([["true", true], ["false", false], ["null", null]])) {
      if (s.startsWith(word, i)) { i += word.length; return v; }
    }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(s.slice(i, i + 400));
    if (!m) fail("unexpected character");
    i += /** @type {RegExpExecArray} */ (m)[0].length;
    return new Num(/** @type {RegExpExecArray} */ (m)[0]);
  };
  const str = () => {
    const m = /^"(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/.exec(s.slice(i));
    if (!m) fail("bad string");
    i += /** @type {RegExpExecArray} */ (m)[0].length;
    return JSON.parse(/** @type {RegExpExecArray} */ (m)[0]);
  };
  const v = value(); ws();
  if (i !== s.length) fail("trailing data");
  return v;
}

/** Python's repr of a float (what json.dumps prints). @param {number} x */
export function pyFloatRepr(x) {
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const [mant, expText] = x.toExponential().split("e");
  const exp = Number(expText);
  const neg = mant.startsWith("-");
  const digits = mant.replace("-", "").replace(".", "");
  let out;
  if (exp < -4 || exp >= 16) {
    const e = Math.abs(exp).toString().padStart(2, "0");
    out = `${digits[0]}${digits.length > 1 ? "." + digits.slice(1) : ""}e${exp < 0 ? "-" : "+"}${e}`;
  } else if (exp < 0) {
    out = `0.${"0".repeat(-exp - 1)}${digits}`;
  } else {
    const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
    const frac = digits.slice(exp + 1);
    out = `${intPart}.${frac || "0"}`;
  }
  return (neg ? "-" : "") + out;
}

/** @param {string} text  Python's json string escaping with ensure_ascii=True */
function pyString(text) {
  return JSON.stringify(text).replace(/[\u007f-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

/**
 * Python's ``json.dumps(value, sort_keys=True, separators=(",", ":"))`` of a parsed tree.
 * @param {any} v
 * @returns {string}
 */
export function canonicalJson(v) {
  if (v instanceof Num) return v.isInt ? BigInt(v.text).toString() : pyFloatRepr(Number(v.text));
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : pyFloatRepr(v);
  if (typeof v === "string") return pyString(v);
  if (v === null) return "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${pyString(k)}:${canonicalJson(v[k])}`).join(",")}}`;
}

/**
 * Python's canonical ``json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))`` of a JSON text.
 * @param {string} text
 */
export const canonicalJsonText = (text) => canonicalJson(parseRaw(text));

/** Num tokens to plain numbers. @param {any} v @returns {any} */
function plain(v) {
  if (v instanceof Num) return Number(v.text);
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/** @param {any} v @param {string} what */
function intOf(v, what) {
  const n = v instanceof Num ? Number(v.text) : v;
  if (!Number.isSafeInteger(n)) throw new BundleError(`manifest.json: ${what} must be an integer, got ${JSON.stringify(plain(v))}`);
  return n;
}

/** @param {any} v @param {string} what @returns {Record<string, any>} */
function objectOf(v, what) {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new BundleError(`manifest.json is missing or has a malformed field: ${what}`);
  return v;
}

/**
 * Parse and check manifest.json (Manifest.from_json + check_consistency).
 * @param {Uint8Array} raw
 * @returns {Promise<import("./index.js").Manifest>}
 */
export async function parseManifest(raw) {
  if (raw.length > MAX_MANIFEST_BYTES) throw new BundleError(`manifest.json is ${raw.length} bytes, above the ${MAX_MANIFEST_BYTES} byte limit`);
  let tree;
  try {
    tree = parseRaw(new TextDecoder("utf-8", { fatal: true }).decode(raw));
  } catch (e) {
    throw new BundleError(`manifest.json is not valid JSON: ${/** @type {Error} */ (e).message}`);
  }
  objectOf(tree, "the top level must be a JSON object");
  const schema = tree.schema;
  if (typeof schema === "string" && schema in RETIRED) {
    throw new BundleError(`this bundle has manifest schema '${schema}', which this fmfl cannot run: ${RETIRED[/** @type {"fmfl.bundle/1"} */ (schema)]}`);
  }
  if (schema !== SCHEMA) throw new BundleError(`manifest schema ${JSON.stringify(schema)} is not supported (this device reads '${SCHEMA}')`);
  for (const key of ["model", "task", "optimizer", "split", "graph", "preprocessing", "artifacts", "versions", "files"]) objectOf(tree[key], key);
  if (!Array.isArray(tree.trainable)) throw new BundleError("manifest.json is missing or has a malformed field: trainable");
  if (typeof tree.train_spec !== "string" || typeof tree.bundle_id !== "string") {
    throw new BundleError("manifest.json is missing or has a malformed field: train_spec or bundle_id");
  }
  let offset = 0;
  const trainable = tree.trainable.map((/** @type {any} */ t, /** @type {number} */ k) => {
    objectOf(t, `trainable[${k}]`);
    const shape = (Array.isArray(t.shape) ? t.shape : []).map((/** @type {any} */ d) => intOf(d, `trainable[${k}].shape`));
    const tensor = { name: String(t.name), shape, dtype: String(t.dtype), offset: intOf(t.offset, `trainable[${k}].offset`),
      size: shape.reduce((/** @type {number} */ a, /** @type {number} */ b) => a * b, 1) };
    if (tensor.offset !== offset || shape.some((/** @type {number} */ d) => d < 0)) {
      throw new BundleError(`manifest.json: trainable tensor '${tensor.name}' has offset ${tensor.offset}, expected ${offset}`);
    }
    offset += tensor.size;
    return tensor;
  });
  for (const [name, meta] of Object.entries(tree.files)) {
    objectOf(meta, `files.${name}`);
    if (typeof meta.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(meta.sha256)) throw new BundleError(`manifest.json: files.${name} has no sha256`);
    intOf(meta.size, `files.${name}.size`);
  }
  for (const [role, name] of Object.entries(tree.artifacts)) {
    if (name !== null && !(name in tree.files)) throw new BundleError(`manifest.json: artifact ${role} (${name}) is not listed in files`);
  }
  // identity_fields(): to_dict() without bundle_id and created; trainable rewritten with its size.
  const identity = {
    model: tree.model, task: tree.task, train_spec: tree.train_spec, optimizer: tree.optimizer, split: tree.split,
    graph: tree.graph, preprocessing: tree.preprocessing,
    trainable: trainable.map((/** @type {any} */ t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, offset: t.offset, size: t.size })),
    artifacts: tree.artifacts, versions: tree.versions,
    files: tree.files, schema: SCHEMA, extra: tree.extra === undefined ? {} : objectOf(tree.extra, "extra"),
  };
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonicalJson(identity))));
  const derived = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("").slice(0, 24);
  if (derived !== tree.bundle_id) throw new BundleError("manifest.json: bundle_id does not match the manifest's content");
  const p = plain(tree);
  return { ...p, trainable, numTrainable: offset, labels: Array.isArray(p.task.labels) ? p.task.labels.map(String) : null };
}

/**
 * The train-step graph's batch inputs, outputs and gradients (Manifest.train_step()).
 * @param {import("./index.js").Manifest} manifest
 * @returns {{inputs: string[], outputs: string[], gradients: string[]}}
 */
export function trainStepSpec(manifest) {
  for (const role of ["train_step_model", "eval_model"]) {
    if (!manifest.artifacts[role]) throw new BundleError(`artifacts.${role} is missing: this bundle cannot be trained on`);
  }
  const step = manifest.graph.train_step;
  if (!step || !["inputs", "outputs", "gradients"].every((k) => Array.isArray(step[k]))) {
    throw new BundleError("graph.train_step must list the train-step graph's inputs, outputs and gradients");
  }
  if (step.gradients.length !== manifest.trainable.length) {
    throw new BundleError(`graph.train_step lists ${step.gradients.length} gradients for ${manifest.trainable.length} trainable tensors`);
  }
  return { inputs: step.inputs.map(String), outputs: step.outputs.map(String), gradients: step.gradients.map(String) };
}
