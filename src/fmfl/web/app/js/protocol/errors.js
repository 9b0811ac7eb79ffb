/**
 * The one error the protocol raises for bad input, with a machine-readable reason (docs/protocol.md,
 * section 8). Mirrors fmfl.protocol.errors: every decoder here turns malformed input into a
 * ProtocolError; any other exception escaping a decoder is a bug.
 */

/** @typedef {"too_large"|"truncated"|"trailing_bytes"|"bad_magic"|"version"|"checksum"|"hash_mismatch"|"unknown_type"|"wrong_type"|"bad_metadata"|"invalid_id"|"non_finite"|"index_out_of_range"|"size_mismatch"|"malformed"|"decompression"|"bad_codec_spec"|"chunk_mismatch"|"residual_mismatch"} Reason */

/** Every reason code of docs/protocol.md section 8, as in fmfl.protocol.errors.Reason. */
export const REASONS = Object.freeze([
  "too_large", "truncated", "trailing_bytes", "bad_magic", "version", "checksum", "hash_mismatch",
  "unknown_type", "wrong_type", "bad_metadata", "invalid_id", "non_finite", "index_out_of_range",
  "size_mismatch", "malformed", "decompression", "bad_codec_spec", "chunk_mismatch", "residual_mismatch",
]);

/** Input that breaks the fmfl wire protocol. `.reason` is the code, `.detail` the words alone. */
export class ProtocolError extends Error {
  /**
   * @param {Reason} reason
   * @param {string} detail
   */
  constructor(reason, detail) {
    if (!REASONS.includes(reason)) throw new TypeError(`unknown ProtocolError reason ${reason}`);
    super(`${reason}: ${detail}`);
    this.name = "ProtocolError";
    /** @type {Reason} */
    this.reason = reason;
    this.detail = detail;
  }
}
