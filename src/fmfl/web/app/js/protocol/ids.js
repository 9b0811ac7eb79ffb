/**
 * The rules for names that become MQTT topic levels (docs/protocol.md, section 2, "Ids"): client ids,
 * federations, prefixes, update ids; and bundle ids. Mirrors fmfl.protocol.ids.
 */
import { ProtocolError } from "./errors.js";

export const MAX_ID_CHARS = 64;
const ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$/;
const BUNDLE_ID = /^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}$/;

/** @param {unknown} value */
export function isValidId(value) {
  return typeof value === "string" && ID.test(value);
}

/**
 * `value` if it is a valid id: 1..64 of A-Z a-z 0-9 . _ : @ -, starting alphanumeric; else `invalid_id`.
 * @param {unknown} value
 * @param {string} [what]
 * @returns {string}
 */
export function checkId(value, what = "client id") {
  if (!isValidId(value)) {
    throw new ProtocolError(
      "invalid_id",
      `${what} ${JSON.stringify(value)?.slice(0, 80)} must be 1..${MAX_ID_CHARS} of A-Z a-z 0-9 . _ : @ - (starting alphanumeric)`,
    );
  }
  return /** @type {string} */ (value);
}

/**
 * `value` if it is a valid bundle id: 1..128 of A-Z a-z 0-9 . _ : @ + = -, starting alphanumeric.
 * @param {unknown} value
 * @returns {string}
 */
export function checkBundleId(value) {
  if (typeof value !== "string" || !BUNDLE_ID.test(value)) {
    throw new ProtocolError("invalid_id", `bundle id ${JSON.stringify(value)?.slice(0, 140)} breaks the bundle id rules`);
  }
  return value;
}
