/**
 * The Python device's image preprocessing (src/fmfl/edge_client/data/images.py), bit for bit on uint8 input:
 * Pillow's convert("RGB") / convert("L"), Pillow's BILINEAR resize, and (x / 255 - mean) / std to float32 NCHW.
 *
 * The resize ports Pillow's libImaging/Resample.c (Pillow 7 to 13): per output pixel a window of source
 * pixels weighted by the triangle filter (support 1, widened by the scale when reducing), coefficients
 * normalised in double and converted to fixed point with 22 fractional bits; a horizontal pass over the rows
 * the vertical pass needs, then a vertical pass, each rounding (+half) and clipping to uint8. So a uint8 image
 * resized here equals Pillow's output exactly, not just closely.
 * @module device/preprocess
 */

import { DataError } from "./errors.js";

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

/** @typedef {{size: number, channels: number, mean: number[], std: number[], input_name: string}} ImageSpec */

/** @param {number} x */
function bilinear(x) {
  if (x < 0) x = -x;
  return x < 1 ? 1 - x : 0;
}

/**
 * Resample.c precompute_coeffs + normalize_coeffs_8bpc for a full-image box.
 * @param {number} inSize
 * @param {number} outSize
 * @returns {{ksize: number, bounds: Int32Array, kk: Int32Array}}
 */
function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = 1.0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1.0 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      w[x] = bilinear((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const k = ww !== 0 ? w[x] / ww : w[x];
      kk[xx * ksize + x] = k < 0 ? Math.trunc(-0.5 + k * ONE) : Math.trunc(0.5 + k * ONE);
    }
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

/** Resample.c clip8: fixed point back to uint8 with saturation. @param {number} v */
function clip8(v) {
  if (v >= ONE * 256) return 255;
  if (v <= 0) return 0;
  return Math.floor(v / ONE);
}

/**
 * Pillow's Image.resize((outW, outH), BILINEAR) of an interleaved uint8 image (HWC, any channel count).
 * @param {Uint8Array} src  height * width * channels
 * @param {number} width
 * @param {number} height
 * @param {number} channels
 * @param {number} outW
 * @param {number} outH
 * @returns {Uint8Array} outH * outW * channels
 */
export function resizeBilinear(src, width, height, channels, outW, outH) {
  const needH = outW !== width, needV = outH !== height;
  if (!needH && !needV) return Uint8Array.from(src);
  const horiz = coefficients(width, outW);
  const vert = coefficients(height, outH);
  let img = src, imgW = width;
  const vBounds = Int32Array.from(vert.bounds);
  if (needH) {
    // Only the source rows the vertical pass reads, as Pillow does (ybox_first .. ybox_last).
    const first = vert.bounds[0];
    const last = vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1];
    for (let i = 0; i < outH; i++) vBounds[2 * i] -= first;
    const rows = last - first;
    const tmp = new Uint8Array(rows * outW * channels);
    const { ksize, bounds, kk } = horiz;
    for (let yy = 0; yy < rows; yy++) {
      const rowAt = (yy + first) * width * channels;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = bounds[2 * xx], xmax = bounds[2 * xx + 1], k = xx * ksize;
        for (let c = 0; c < channels; c++) {
          let ss = HALF;
          for (let x = 0; x < xmax; x++) ss += src[rowAt + (x + xmin) * channels + c] * kk[k + x];
          tmp[(yy * outW + xx) * channels + c] = clip8(ss);
        }
      }
    }
    img = tmp;
    imgW = outW;
  }
  if (!needV) return img;
  const out = new Uint8Array(outH * imgW * channels);
  const { ksize, kk } = vert;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = vBounds[2 * yy], ymax = vBounds[2 * yy + 1], k = yy * ksize;
    for (let xx = 0; xx < imgW; xx++) {
      for (let c = 0; c < channels; c++) {
        let ss = HALF;
        for (let y = 0; y < ymax; y++) ss += img[((y + ymin) * imgW + xx) * channels + c] * kk[k + y];
        out[(yy * imgW + xx) * channels + c] = clip8(ss);
      }
    }
  }
  return out;
}

/**
 * Pillow's convert("RGB") (gray replicated, alpha dropped) or convert("L") (ITU-R 601-2 luma in Pillow's
 * fixed point: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16).
 * @param {Uint8Array} src  interleaved, ``inChannels`` per pixel (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA)
 * @param {number} inChannels
 * @param {number} outChannels  1 or 3
 * @returns {Uint8Array}
 */
export function convertChannels(src, inChannels, outChannels) {
  const n = src.length / inChannels;
  const out = new Uint8Array(n * outChannels);
  const gray = inChannels <= 2;
  for (let i = 0; i < n; i++) {
    const p = i * inChannels;
    if (outChannels === 3) {
      if (gray) { out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = src[p]; }
      else { out[3 * i] = src[p]; out[3 * i + 1] = src[p + 1]; out[3 * i + 2] = src[p + 2]; }
    } else {
      out[i] = gray ? src[p] : (src[p] * 19595 + src[p + 1] * 38470 + src[p + 2] * 7471 + 0x8000) >>> 16;
    }
  }
  return out;
}

/**
 * One image to the model's size and channels, as images.py ``_fit``: convert, then resize unless already
 * ``size`` x ``size``.
 * @param {Uint8Array} pixels  interleaved HWC
 * @param {number} width
 * @param {number} height
 * @param {number} channels  of ``pixels`` (1..4)
 * @param {ImageSpec} spec
 * @returns {Uint8Array} size * size * spec.channels
 */
export function fitImage(pixels, width, height, channels, spec) {
  const converted = convertChannels(pixels, channels, spec.channels);
  return resizeBilinear(converted, width, height, spec.channels, spec.size, spec.size);
}

/**
 * A uint8 [N, H, W] or [N, H, W, 1|3|4] array (an .npz's images) to uint8 [N, size, size, channels]
 * (images.py fit_image_array).
 * @param {import("./npy.js").NpyArray} images
 * @param {ImageSpec} spec
 * @param {string} origin
 * @returns {Uint8Array}
 */
export function fitImageArray(images, spec, origin) {
  if (images.dtype !== "|u1" && images.dtype !== "<u1") throw new DataError(`${origin}: images must be uint8 (0..255), got dtype ${images.dtype}`);
  const s = images.shape;
  if (!(s.length === 3 || (s.length === 4 && [1, 3, 4].includes(s[3])))) {
    throw new DataError(`${origin}: images must have shape [N, H, W] or [N, H, W, C] with C in 1, 3, 4; got [${s}]`);
  }
  const [n, h, w] = s;
  const c = s.length === 4 ? s[3] : 1;
  const per = h * w * c, outPer = spec.size * spec.size * spec.channels;
  const out = new Uint8Array(n * outPer);
  const data = /** @type {Uint8Array} */ (images.data);
  for (let i = 0; i < n; i++) out.set(fitImage(data.subarray(i * per, (i + 1) * per), w, h, c, spec), i * outPer);
  return out;
}

/**
 * uint8 [N, H, W, C] to float32 [N, C, H, W] holding (x / 255 - mean) / std per channel, through the same
 * 256-entry tables (computed in double, stored as float32) as images.py ``normalize``.
 * @param {Uint8Array} pixels
 * @param {number} n
 * @param {ImageSpec} spec
 * @returns {Float32Array}
 */
export function normalize(pixels, n, spec) {
  const { size, channels, mean, std } = spec;
  const tables = mean.map((m, c) => Float32Array.from({ length: 256 }, (_, v) => (v / 255.0 - m) / std[c]));
  const out = new Float32Array(n * channels * size * size);
  const plane = size * size;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < channels; c++) {
      const table = tables[c], base = (i * channels + c) * plane, src = i * plane * channels;
      for (let p = 0; p < plane; p++) out[base + p] = table[pixels[src + p * channels + c]];
    }
  }
  return out;
}
