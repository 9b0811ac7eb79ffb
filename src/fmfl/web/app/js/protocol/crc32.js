/**
 * CRC-32/ISO-HDLC (the zlib, PNG and java.util.zip.CRC32 one): reflected polynomial 0xEDB88320, initial
 * value and final XOR 0xFFFFFFFF; CRC-32("123456789") = 0xCBF43926 (docs/protocol.md, section 4).
 */

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * @param {Uint8Array} bytes
 * @returns {number} the CRC-32 as an unsigned 32-bit integer
 */
export function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
