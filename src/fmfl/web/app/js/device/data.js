/**
 * The person's local data to a LocalDataset of model inputs, as src/fmfl/edge_client/data/reader.py
 * build_dataset: labels resolved against the manifest's label names before any image is decoded or text
 * tokenized (a wrong label fails at once), then images fitted and normalised (preprocess.js) or texts tokenized
 * with the bundle's tokenizer.json (tokenizer.js) to the manifest's max_seq_len.
 * @module device/data
 */

import { DataError } from "./errors.js";
import { listImageFiles, readImageFiles } from "./images.js";
import { resolveLabels } from "./labels.js";
import { readNpz } from "./npz.js";
import { fitImageArray, normalize } from "./preprocess.js";
import { LocalDataset } from "./dataset.js";
import { readTextCsv, readTextJsonl } from "./text.js";
import { WordPieceTokenizer } from "./tokenizer.js";

/** @param {Blob} blob @returns {Promise<Uint8Array>} */
const bytesOf = async (blob) => new Uint8Array(await blob.arrayBuffer());

/** @param {import("./index.js").Manifest} manifest */
function imageSpec(manifest) {
  const spec = manifest.preprocessing?.image;
  if (!spec) throw new DataError("the picked data holds images but the model takes no image input");
  return { input_name: "pixel_values", channels: 3, ...spec };
}

/**
 * Read and preprocess the picked data.
 * @param {import("./index.js").LocalDataInput} input
 * @param {import("./index.js").Manifest} manifest
 * @param {import("./index.js").LoadedBundle} [bundle]  the verified bundle (its tokenizer.json, for text)
 * @returns {Promise<LocalDataset>}
 */
export async function readLocalData(input, manifest, bundle) {
  if (input.kind === "text") return readTexts(input, manifest, bundle);
  const spec = imageSpec(manifest);
  if (input.kind === "npz") {
    if (!input.file) throw new DataError("no .npz file was picked");
    const source = /** @type {File} */ (input.file).name ?? "data.npz";
    const raw = await readNpz(await bytesOf(input.file), source);
    const { indices, names } = resolveLabels(raw.labels, raw.labelOrigins, manifest.labels);
    const pixels = fitImageArray(/** @type {import("./npy.js").NpyArray} */ (raw.images), spec, source);
    const n = indices.length;
    return new LocalDataset({ [spec.input_name]: { data: normalize(pixels, n, spec), shape: [n, spec.channels, spec.size, spec.size] } },
      indices, names, source);
  }
  if (input.kind === "images") {
    const listed = listImageFiles(input.files ?? [], input.label);
    const { indices, names } = resolveLabels(listed.labels, listed.origins, manifest.labels);
    const pixels = await readImageFiles(listed.files, spec);
    const n = indices.length;
    return new LocalDataset({ [spec.input_name]: { data: normalize(pixels, n, spec), shape: [n, spec.channels, spec.size, spec.size] } },
      indices, names, `${n} picked images`);
  }
  throw new DataError(`unsupported local data kind ${JSON.stringify(/** @type {any} */ (input).kind)} (npz, images)`);
}

/**
 * @param {import("./index.js").LocalDataInput} input
 * @param {import("./index.js").Manifest} manifest
 * @param {import("./index.js").LoadedBundle} [bundle]
 */
async function readTexts(input, manifest, bundle) {
  const spec = manifest.preprocessing?.text;
  const file = /** @type {File} */ (input.file);
  if (!file) throw new DataError("no text file was picked");
  const name = file.name ?? "texts";
  if (!spec) throw new DataError(`${name}: holds texts but the model takes no text input`);
  const lower = name.toLowerCase();
  if (!lower.endsWith(".jsonl") && !lower.endsWith(".csv")) {
    throw new DataError(`${name}: unsupported file type; expected .jsonl ({"text": ..., "label": ...} per line) or .csv (text and label columns)`);
  }
  const bytes = await bytesOf(file);
  const raw = lower.endsWith(".csv") ? readTextCsv(bytes, name) : readTextJsonl(bytes, name);
  const { indices, names } = resolveLabels(raw.labels, raw.origins, manifest.labels);
  if (!bundle) throw new DataError("reading texts needs the verified bundle (its tokenizer.json)");
  const tokenizerFile = spec.tokenizer_file ?? "tokenizer.json";
  const tokenizer = new WordPieceTokenizer(JSON.parse(new TextDecoder().decode(bundle.file(tokenizerFile))), tokenizerFile);
  const maxLen = spec.max_seq_len, n = raw.texts.length;
  const encoded = tokenizer.encodeBatch(raw.texts, maxLen, spec.pad_id ?? 0);
  /** @type {Object<string, import("./index.js").Tensor>} */
  const inputs = {};
  for (const input_name of spec.input_names ?? ["input_ids", "attention_mask"]) {
    inputs[input_name] = { data: /** @type {any} */ (encoded)[input_name], shape: [n, maxLen] };
  }
  return new LocalDataset(inputs, indices, names, name);
}

/**
 * SHA-256 (hex) over the picked files' names, sizes and contents: the data half of the feature cache's key.
 * @param {import("./index.js").LocalDataInput} input
 * @returns {Promise<string>}
 */
export async function dataFingerprint(input) {
  const files = input.kind === "images" ? [...(input.files ?? [])] : [/** @type {File} */ (input.file)];
  const enc = new TextEncoder();
  const parts = [enc.encode(`fmfl-web-data-v1\0${input.kind}\0${input.label ?? ""}\0`)];
  for (const f of files.sort((a, b) => ((a.webkitRelativePath || a.name) < (b.webkitRelativePath || b.name) ? -1 : 1))) {
    parts.push(enc.encode(`${f.webkitRelativePath || f.name}\0${f.size}\0`), await bytesOf(f));
  }
  const total = parts.reduce((a, p) => a + p.length, 0);
  const all = new Uint8Array(total);
  let at = 0;
  for (const p of parts) { all.set(p, at); at += p.length; }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}
