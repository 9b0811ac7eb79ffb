/**
 * Labelled texts the person picked, as src/fmfl/edge_client/data/text_table.py reads them: JSON Lines
 * (``{"text": ..., "label": ...}``, blank lines skipped) or CSV with ``text`` and ``label`` columns (RFC 4180
 * quoting as Python's csv module reads it, a UTF-8 BOM ignored). Every refusal names the file and line.
 * @module device/text
 */

import { DataError } from "./errors.js";

/**
 * @typedef {Object} RawTexts
 * @property {string[]} texts
 * @property {Array<string|number>} labels
 * @property {string[]} origins  "file:line" per sample
 */

/** @param {Uint8Array} bytes @param {string} name */
function decode(bytes, name) {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new DataError(`${name}: not UTF-8 text`);
  }
}

/**
 * @param {Uint8Array} bytes
 * @param {string} name
 * @returns {RawTexts}
 */
export function readTextJsonl(bytes, name) {
  /** @type {RawTexts} */
  const out = { texts: [], labels: [], origins: [] };
  decode(bytes, name).split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const where = `${name}:${i + 1}`;
    let record;
    try { record = JSON.parse(line); } catch (e) { throw new DataError(`${where}: not valid JSON (${/** @type {Error} */ (e).message})`); }
    if (record === null || typeof record !== "object" || Array.isArray(record)) {
      throw new DataError(`${where}: expected a JSON object, got ${Array.isArray(record) ? "list" : typeof record}`);
    }
    for (const [key, kinds] of /** @type {[string, string[]][]} */ ([["text", ["string"]], ["label", ["string", "number"]]])) {
      if (!(key in record)) throw new DataError(`${where}: record lacks field '${key}' (fields: ${JSON.stringify(Object.keys(record).sort())})`);
      const v = record[key];
      if (!kinds.includes(typeof v) || (typeof v === "number" && !Number.isInteger(v))) {
        throw new DataError(`${where}: field '${key}' must be ${kinds.map((k) => (k === "number" ? "int" : "str")).join(" or ")}, got ${JSON.stringify(v)}`);
      }
    }
    out.texts.push(record.text);
    out.labels.push(record.label);
    out.origins.push(where);
  });
  if (!out.texts.length) throw new DataError(`${name}: holds no records`);
  return out;
}

/** CSV rows with the line each starts on (quoted fields may span lines). @param {string} text */
function csvRows(text, name) {
  /** @type {{fields: string[], line: number}[]} */
  const rows = [];
  let field = "", fields = /** @type {string[]} */ ([]), quoted = false, line = 1, start = 1, i = 0;
  const endRow = () => { fields.push(field); rows.push({ fields, line: start }); fields = []; field = ""; };
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i += 2; continue; }
      if (c === '"') { quoted = false; i++; continue; }
      if (c === "\n") line++;
      field += c; i++; continue;
    }
    if (c === '"' && field === "") { quoted = true; i++; continue; }
    if (c === ",") { fields.push(field); field = ""; i++; continue; }
    if (c === "\r" || c === "\n") {
      endRow();
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
      line++; start = line; continue;
    }
    field += c; i++;
  }
  if (quoted) throw new DataError(`${name}: malformed CSV (unexpected end of data inside a quoted field)`);
  if (field !== "" || fields.length) endRow();
  return rows.filter((r) => !(r.fields.length === 1 && r.fields[0] === ""));
}

/**
 * @param {Uint8Array} bytes
 * @param {string} name
 * @returns {RawTexts}
 */
export function readTextCsv(bytes, name) {
  const rows = csvRows(decode(bytes, name), name);
  const header = rows.length ? rows[0].fields : [];
  const missing = ["text", "label"].filter((c) => !header.includes(c));
  if (missing.length) throw new DataError(`${name}: CSV header ${JSON.stringify(header)} lacks ${JSON.stringify(missing)}; expected columns 'text' and 'label'`);
  const ti = header.indexOf("text"), li = header.indexOf("label");
  /** @type {RawTexts} */
  const out = { texts: [], labels: [], origins: [] };
  for (const row of rows.slice(1)) {
    const where = `${name}:${row.line}`;
    if (row.fields.length <= Math.max(ti, li)) throw new DataError(`${where}: row has ${row.fields.length} fields, fewer than the header's ${header.length}`);
    const label = row.fields[li].trim();
    if (!label) throw new DataError(`${where}: empty label`);
    out.texts.push(row.fields[ti]);
    out.labels.push(label);
    out.origins.push(where);
  }
  if (!out.texts.length) throw new DataError(`${name}: holds no rows after the header`);
  return out;
}
