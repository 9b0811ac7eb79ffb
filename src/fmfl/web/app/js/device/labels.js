/**
 * Raw labels (class folder names, a chosen name, integer arrays from an .npz) to the model's label indices,
 * as src/fmfl/edge_client/data/labels.py: with the manifest's label names a name maps to its position and an
 * integer must index the list; anything else is a DataError naming the label and where it was read.
 * Without names (a bundle without labels), names are sorted, integers kept with names "0", "1", ...
 * @module device/labels
 */

import { DataError } from "./errors.js";

/** @param {string|string[]} origins @param {number} i */
const where = (origins, i) => (typeof origins === "string" ? origins : origins[i]);

/** @param {unknown} value @returns {number|null} */
function asIndex(value) {
  if (typeof value === "number" && Number.isInteger(value)) return value;
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "string" && /^\s*-?\d+\s*$/.test(value) && /\d/.test(value.trim().replace(/^-/, ""))) {
    // Python: value.strip().lstrip("-").isdigit(); int() accepts the surrounding spaces
    return Number.parseInt(value.trim(), 10);
  }
  return null;
}

/** @param {readonly string[]} names */
function preview(names, limit = 12) {
  const shown = names.slice(0, limit).join(", ");
  return shown + (names.length > limit ? `, ... (${names.length} in all)` : "");
}

/**
 * @param {Array<string|number>|import("./npy.js").NpyArray} raw  label names/indices, or an integer array
 * @param {string|string[]} origins  where each label was read (one for all, or one per label)
 * @param {string[]|null} labelNames  the manifest's task.labels
 * @returns {{indices: BigInt64Array, names: string[]}}
 */
export function resolveLabels(raw, origins, labelNames) {
  if (!Array.isArray(raw)) return resolveArray(raw, origins, labelNames);
  const out = new BigInt64Array(raw.length);
  if (labelNames) {
    const position = new Map(labelNames.map((n, i) => [n, i]));
    raw.forEach((value, i) => {
      const named = typeof value === "string" ? position.get(value) : undefined;
      if (named !== undefined) { out[i] = BigInt(named); return; }
      const index = asIndex(value);
      if (index === null || index < 0 || index >= labelNames.length) {
        throw new DataError(`${where(origins, i)}: label ${JSON.stringify(value)} is not one of the model's labels (${preview(labelNames)})`);
      }
      out[i] = BigInt(index);
    });
    return { indices: out, names: [...labelNames] };
  }
  const indices = raw.map(asIndex);
  if (indices.every((x) => x !== null)) {
    const ints = /** @type {number[]} */ (indices);
    return resolveArray({ dtype: "<i8", shape: [ints.length], data: BigInt64Array.from(ints.map(BigInt)) }, origins, null);
  }
  raw.forEach((value, i) => {
    if (indices[i] !== null) {
      throw new DataError(`${where(origins, i)}: label ${JSON.stringify(value)} is an index but other labels are class names; use all names or all indices`);
    }
    if (typeof value !== "string" || !value.trim()) throw new DataError(`${where(origins, i)}: label ${JSON.stringify(value)} is neither a class name nor an index`);
  });
  const found = [...new Set(raw.map(String))].sort();
  const position = new Map(found.map((n, i) => [n, i]));
  raw.forEach((value, i) => { out[i] = BigInt(/** @type {number} */ (position.get(String(value)))); });
  return { indices: out, names: found };
}

/**
 * @param {import("./npy.js").NpyArray} raw
 * @param {string|string[]} origins
 * @param {string[]|null} labelNames
 */
function resolveArray(raw, origins, labelNames) {
  const n = raw.shape[0];
  const labels = new BigInt64Array(n);
  for (let i = 0; i < n; i++) labels[i] = BigInt(raw.data[i]);
  for (let i = 0; i < n; i++) {
    if (labels[i] < 0n) throw new DataError(`${where(origins, i)}: label ${labels[i]} is negative`);
  }
  if (!labelNames) {
    let max = -1n;
    for (const v of labels) if (v > max) max = v;
    return { indices: labels, names: Array.from({ length: Number(max) + 1 }, (_, i) => String(i)) };
  }
  for (let i = 0; i < n; i++) {
    if (labels[i] >= BigInt(labelNames.length)) {
      throw new DataError(`${where(origins, i)}: label ${labels[i]} is outside the model's ${labelNames.length} labels (0..${labelNames.length - 1}: ${preview(labelNames)})`);
    }
  }
  return { indices: labels, names: [...labelNames] };
}
