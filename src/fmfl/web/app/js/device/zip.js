/**
 * The members of a ZIP archive (PKWARE APPNOTE 6.3: end of central directory, ZIP64 records and extra
 * fields, stored and deflated members) - enough for ``np.savez`` (stored, ZIP64 local headers) and
 * ``np.savez_compressed`` (deflate, decoded with the browser's DecompressionStream).
 * @module device/zip
 */

import { DataError } from "./errors.js";

const EOCD = 0x06054b50, EOCD64 = 0x06064b50, EOCD64_LOCATOR = 0x07064b50, CENTRAL = 0x02014b50, LOCAL = 0x04034b50;

/**
 * @param {Uint8Array} bytes
 * @param {string} origin
 * @returns {Promise<Map<string, Uint8Array>>} member name -> its uncompressed bytes, in archive order
 */
export async function readZip(bytes, origin = "archive") {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (/** @type {string} */ why) => new DataError(`${origin}: not a readable .npz/zip archive (${why})`);
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (view.getUint32(i, true) === EOCD) { eocd = i; break; }
  }
  if (eocd < 0) throw bad("no end of central directory");
  let count = view.getUint16(eocd + 10, true);
  let cdOffset = view.getUint32(eocd + 16, true);
  if ((count === 0xffff || cdOffset === 0xffffffff) && eocd >= 20 && view.getUint32(eocd - 20, true) === EOCD64_LOCATOR) {
    const at = Number(view.getBigUint64(eocd - 12, true));
    if (at + 56 > bytes.length || view.getUint32(at, true) !== EOCD64) throw bad("broken ZIP64 end record");
    count = Number(view.getBigUint64(at + 32, true));
    cdOffset = Number(view.getBigUint64(at + 48, true));
  }
  /** @type {Map<string, Uint8Array>} */
  const members = new Map();
  let p = cdOffset;
  for (let k = 0; k < count; k++) {
    if (p + 46 > bytes.length || view.getUint32(p, true) !== CENTRAL) throw bad("broken central directory");
    const method = view.getUint16(p + 10, true);
    let compSize = view.getUint32(p + 20, true);
    let size = view.getUint32(p + 24, true);
    const nameLen = view.getUint16(p + 28, true), extraLen = view.getUint16(p + 30, true);
    const commentLen = view.getUint16(p + 32, true);
    let localAt = view.getUint32(p + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extended information (id 1): the 8-byte values of whichever fields were 0xFFFFFFFF, in order.
    for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen;) {
      const id = view.getUint16(e, true), len = view.getUint16(e + 2, true);
      if (id === 1) {
        let q = e + 4;
        if (size === 0xffffffff) { size = Number(view.getBigUint64(q, true)); q += 8; }
        if (compSize === 0xffffffff) { compSize = Number(view.getBigUint64(q, true)); q += 8; }
        if (localAt === 0xffffffff) { localAt = Number(view.getBigUint64(q, true)); }
      }
      e += 4 + len;
    }
    if (localAt + 30 > bytes.length || view.getUint32(localAt, true) !== LOCAL) throw bad(`broken local header of ${name}`);
    const dataAt = localAt + 30 + view.getUint16(localAt + 26, true) + view.getUint16(localAt + 28, true);
    if (dataAt + compSize > bytes.length) throw bad(`${name} is truncated`);
    const raw = bytes.subarray(dataAt, dataAt + compSize);
    if (method === 0) members.set(name, raw);
    else if (method === 8) members.set(name, await inflateRaw(raw));
    else throw bad(`${name} uses compression method ${method}`);
    if (members.get(name)?.length !== size) throw bad(`${name} has ${members.get(name)?.length} bytes, its header says ${size}`);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return members;
}

/** @param {Uint8Array} raw @returns {Promise<Uint8Array>} */
async function inflateRaw(raw) {
  const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
