/**
 * Decode bounds every decoder enforces before it allocates, derived from the bundle manifest's trainable
 * size (docs/protocol.md, section 6, "Bounds"). Mirrors fmfl.protocol.limits.
 */

export const MAX_VECTOR_SIZE = 2 ** 31 - 1;
const PAYLOAD_BYTES_PER_FLOAT = 16;
const PAYLOAD_SLACK = 4096;

/** The largest update payload a sender may produce for a vector of `vectorSize` floats. @param {number} vectorSize */
export function maxPayloadBytes(vectorSize) {
  return PAYLOAD_BYTES_PER_FLOAT * vectorSize + PAYLOAD_SLACK;
}

/** Decode bounds; build them with Limits.forVectorSize(manifest trainable size). */
export class Limits {
  /**
   * @param {{maxVectorSize: number, maxMessageBytes: number, maxMetadataBytes?: number, maxStringBytes?: number, maxItems?: number}} o
   */
  constructor({ maxVectorSize, maxMessageBytes, maxMetadataBytes = 256 * 1024, maxStringBytes = 256, maxItems = 10_000 }) {
    if (!Number.isInteger(maxVectorSize) || maxVectorSize < 1 || maxVectorSize > MAX_VECTOR_SIZE) {
      throw new RangeError(`maxVectorSize must be in [1, ${MAX_VECTOR_SIZE}], got ${maxVectorSize}`);
    }
    for (const [name, v] of Object.entries({ maxMessageBytes, maxMetadataBytes, maxStringBytes, maxItems })) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
    }
    this.maxVectorSize = maxVectorSize;
    this.maxMessageBytes = maxMessageBytes;
    this.maxMetadataBytes = maxMetadataBytes;
    this.maxStringBytes = maxStringBytes;
    this.maxItems = maxItems;
    Object.freeze(this);
  }

  /**
   * Limits for a bundle of `vectorSize` trainable floats: messages up to the worst legal payload.
   * @param {number} vectorSize
   */
  static forVectorSize(vectorSize, { maxMetadataBytes = 256 * 1024, maxStringBytes = 256, maxItems = 10_000 } = {}) {
    return new Limits({
      maxVectorSize: vectorSize,
      maxMessageBytes: maxPayloadBytes(vectorSize) + maxMetadataBytes + 64,
      maxMetadataBytes,
      maxStringBytes,
      maxItems,
    });
  }
}
