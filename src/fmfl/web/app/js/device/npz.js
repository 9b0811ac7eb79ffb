/**
 * A device's ``.npz`` shard (src/fmfl/edge_client/data/npz_file.py): uint8 images under ``images`` (or
 * ``x``) and integer labels under ``labels`` (or ``y``), as ``np.savez`` / fmfl's ``write_npz`` write them.
 * @module device/npz
 */

import { DataError } from "./errors.js";
import { parseNpy } from "./npy.js";
import { readZip } from "./zip.js";

const IMAGE_KEYS = ["images", "x"], LABEL_KEYS = ["labels", "y"];
const INTEGER = new Set(["|u1", "<u1", "|i1", "<i1", "<u2", "<i2", "<u4", "<i4", "<i8", "<u8"]);

/**
 * @typedef {Object} RawSamples  what a reader hands over before preprocessing (Python's RawSamples)
 * @property {string} source
 * @property {import("./npy.js").NpyArray|null} images      a uint8 array [N, H, W(, C)], or null
 * @property {Array<string|number>|import("./npy.js").NpyArray} labels  raw labels: names/indices, or an integer array
 * @property {string|string[]} labelOrigins  where each label was read, for error messages
 */

/**
 * Read an uploaded .npz archive.
 * @param {Uint8Array} bytes
 * @param {string} source  the file name, for messages
 * @returns {Promise<RawSamples>}
 */
export async function readNpz(bytes, source) {
  const members = await readZip(bytes, source);
  /** @type {Map<string, Uint8Array>} */
  const arrays = new Map();
  for (const [name, data] of members) if (name.endsWith(".npy")) arrays.set(name.slice(0, -4), data);
  if (arrays.size === 0 && members.size > 0) throw new DataError(`${source}: the archive holds no .npy arrays`);
  const imageKey = IMAGE_KEYS.find((k) => arrays.has(k));
  const labelKey = LABEL_KEYS.find((k) => arrays.has(k));
  if (imageKey === undefined || labelKey === undefined) {
    throw new DataError(`${source}: arrays ${JSON.stringify([...arrays.keys()].sort())}; expected 'images' (or 'x') and 'labels' (or 'y')`);
  }
  const images = parseNpy(/** @type {Uint8Array} */ (arrays.get(imageKey)), `${source} ['${imageKey}']`);
  const labels = parseNpy(/** @type {Uint8Array} */ (arrays.get(labelKey)), `${source} ['${labelKey}']`);
  if (labels.shape.length !== 1 || !INTEGER.has(labels.dtype)) {
    throw new DataError(`${source}: '${labelKey}' must be a 1-D integer array, got ${labels.dtype} [${labels.shape}]`);
  }
  const n = images.shape.length ? images.shape[0] : 0;
  if (n !== labels.shape[0]) throw new DataError(`${source}: ${n} images but ${labels.shape[0]} labels`);
  if (n === 0) throw new DataError(`${source}: holds no samples`);
  return { source, images, labels, labelOrigins: `${source} ['${labelKey}']` };
}
