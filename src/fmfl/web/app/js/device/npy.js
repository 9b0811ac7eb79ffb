/**
 * NumPy ``.npy`` parsing (format versions 1.0, 2.0 and 3.0 of numpy/lib/format.py): the header's dtype,
 * order and shape, and the data as a typed array. Object (pickled) arrays are refused, as the Python device
 * loads with ``allow_pickle=False``.
 * @module device/npy
 */

import { DataError } from "./errors.js";

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** dtype descr -> [typed array constructor, item size]; little-endian or byte-order-free only. */
const DTYPES = {
  "|u1": [Uint8Array, 1], "<u1": [Uint8Array, 1], "|i1": [Int8Array, 1], "<i1": [Int8Array, 1],
  "|b1": [Uint8Array, 1],
  "<u2": [Uint16Array, 2], "<i2": [Int16Array, 2], "<u4": [Uint32Array, 4], "<i4": [Int32Array, 4],
  "<i8": [BigInt64Array, 8], "<u8": [BigUint64Array, 8], "<f4": [Float32Array, 4], "<f8": [Float64Array, 8],
};

/**
 * @typedef {Object} NpyArray
 * @property {string} dtype   the header's descr, e.g. "<f4", "|u1", "<i8"
 * @property {number[]} shape
 * @property {Uint8Array|Int8Array|Uint16Array|Int16Array|Uint32Array|Int32Array|BigInt64Array|BigUint64Array|Float32Array|Float64Array} data
 */

/**
 * Parse one .npy file.
 * @param {Uint8Array} bytes
 * @param {string} [origin]  names the file in error messages
 * @returns {NpyArray}
 */
export function parseNpy(bytes, origin = "array") {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new DataError(`${origin}: not a .npy array (bad magic)`);
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen, start;
  if (major === 1) { headerLen = view.getUint16(8, true); start = 10; }
  else if (major === 2 || major === 3) { headerLen = view.getUint32(8, true); start = 12; }
  else throw new DataError(`${origin}: .npy format version ${major} is not supported`);
  if (start + headerLen > bytes.length) throw new DataError(`${origin}: truncated .npy header`);
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shapeText) {
    throw new DataError(`${origin}: unreadable .npy header ${JSON.stringify(header.trim())} (a structured or object array?)`);
  }
  const dtype = descr[1];
  const kind = /** @type {Record<string, [any, number]>} */ (DTYPES)[dtype];
  if (!kind) {
    const why = dtype.includes("O") ? "object arrays are pickles and are refused" : "unsupported dtype";
    throw new DataError(`${origin}: dtype ${dtype}: ${why}`);
  }
  if (fortran[1] === "True") throw new DataError(`${origin}: Fortran-ordered arrays are not supported; save it with np.ascontiguousarray`);
  const shape = shapeText[1].split(",").map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new DataError(`${origin}: bad shape (${shapeText[1]})`);
  const [Ctor, itemSize] = kind;
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  if (offset + count * itemSize > bytes.length) {
    throw new DataError(`${origin}: holds ${bytes.length - offset} data bytes, its header promises ${count * itemSize} (truncated file)`);
  }
  // A copy: the data in a zip member or a download need not be aligned for the typed array.
  const copy = bytes.slice(offset, offset + count * itemSize);
  return { dtype, shape, data: new Ctor(copy.buffer, 0, count) };
}
