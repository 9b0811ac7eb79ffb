/**
 * Image files the person picked (File objects) to uint8 pixels, in the browser: decoded with createImageBitmap
 * (no colour-space conversion and no alpha premultiplication, as Pillow ignores ICC profiles and keeps straight
 * alpha) and read back through a canvas, then fitted as the Python device fits them (preprocess.js).
 * A folder picked with webkitdirectory follows src/fmfl/edge_client/data/image_folder.py: one sub-folder per
 * class (its name is the label), hidden files and files without an image suffix skipped, files in path order.
 * PNG/BMP/GIF decode to the same pixels as Pillow; JPEG decoders may differ by a level here and there.
 * @module device/images
 */

import { DataError } from "./errors.js";
import { fitImage } from "./preprocess.js";

export const IMAGE_SUFFIXES = [".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"];

/** @param {File} f */
const pathOf = (f) => f.webkitRelativePath || f.name;

/**
 * Decode one image file into RGBA pixels.
 * @param {File|Blob} file
 * @param {string} name  for messages
 * @returns {Promise<{pixels: Uint8Array, width: number, height: number, channels: number}>}
 */
export async function decodeImageFile(file, name) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
  } catch (e) {
    throw new DataError(`${name}: not an image this browser can decode (${/** @type {Error} */ (e).message || e}); pick image files (PNG, JPEG, ...)`);
  }
  const { width, height } = bitmap;
  const canvas = typeof OffscreenCanvas !== "undefined" ? new OffscreenCanvas(width, height) : Object.assign(document.createElement("canvas"), { width, height });
  const ctx = /** @type {CanvasRenderingContext2D|OffscreenCanvasRenderingContext2D} */ (canvas.getContext("2d", { willReadFrequently: true }));
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const data = ctx.getImageData(0, 0, width, height).data;
  return { pixels: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height, channels: 4 };
}

/**
 * The files to read and their raw labels: a folder pick (class sub-folders) or a flat pick with one label.
 * @param {File[]} files
 * @param {string|number|undefined|null} label  one label for every file; else the class folder names
 * @returns {{files: File[], labels: Array<string|number>, origins: string[]}}
 */
export function listImageFiles(files, label) {
  const hidden = (/** @type {string} */ p) => p.split("/").some((part) => part.startsWith("."));
  const inFolder = files.some((f) => f.webkitRelativePath);
  const picked = [...files]
    .filter((f) => !hidden(pathOf(f)))
    // In a folder, files without an image suffix are skipped as the Python reader skips them; a file picked
    // on its own is the person's explicit choice, so a non-image is an error (decodeImageFile says which).
    .filter((f) => !inFolder || IMAGE_SUFFIXES.some((s) => f.name.toLowerCase().endsWith(s)))
    .sort((a, b) => (pathOf(a) < pathOf(b) ? -1 : pathOf(a) > pathOf(b) ? 1 : 0));
  if (picked.length === 0) throw new DataError(`no images among the ${files.length} picked file(s) (${IMAGE_SUFFIXES.join(", ")})`);
  if (label !== undefined && label !== null && label !== "") {
    return { files: picked, labels: picked.map(() => label), origins: picked.map(pathOf) };
  }
  const labels = picked.map((f) => {
    const parts = pathOf(f).split("/");
    if (parts.length < 3) throw new DataError(`${pathOf(f)}: no class folder; pick a folder holding one sub-folder per class, or choose one label for all pictures`);
    return parts[1];
  });
  return { files: picked, labels, origins: picked.map((f) => pathOf(f).split("/").slice(0, 2).join("/") + "/") };
}

/**
 * Decode and fit every file into uint8 [N, size, size, channels].
 * @param {File[]} files
 * @param {import("./preprocess.js").ImageSpec} spec
 * @returns {Promise<Uint8Array>}
 */
export async function readImageFiles(files, spec) {
  const per = spec.size * spec.size * spec.channels;
  const out = new Uint8Array(files.length * per);
  for (let i = 0; i < files.length; i++) {
    const img = await decodeImageFile(files[i], pathOf(files[i]));
    out.set(fitImage(img.pixels, img.width, img.height, img.channels, spec), i * per);
  }
  return out;
}
