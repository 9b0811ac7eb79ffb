/**
 * Signed updates (docs/protocol.md, section 5, "Signed updates"; docs/security.md): the Ed25519
 * (RFC 8032, pure) signature over a domain prefix and canonical JSON of every update field, with the
 * payload as its SHA-256 and each metric as the 16 hex digits of its binary64 bits (big-endian). The
 * signing input holds no floats, so every language builds the same bytes. Signing uses WebCrypto's
 * Ed25519 (Chromium 137+, Node 20), which exists only in secure contexts (https, or localhost).
 */
import { ProtocolError } from "./errors.js";
import { toHex, utf8 } from "./bytes.js";
import { sha256 } from "./sha256.js";
import { canonicalJson } from "./json.js";
import { makeUpdate } from "./messages.js";

export const UPDATE_SIGNATURE_DOMAIN = "fmfl-update-sig/1\n";

/** 16 lowercase hex digits of the binary64 bits of `x`, big-endian. @param {number} x */
function float64Hex(x) {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, x, false);
  return toHex(b);
}

/**
 * The bytes an update signature covers. The update must carry its nonce.
 * @param {import("./messages.js").ClientUpdate} update
 * @returns {Uint8Array}
 */
export function signingInput(update) {
  if (update.nonce === null || update.nonce === undefined) throw new ProtocolError("bad_metadata", "an update is signed together with its nonce: set nonce");
  const metrics = Object.fromEntries(Object.entries(update.metrics).map(([k, v]) => [k, float64Hex(v)]));
  return utf8(
    UPDATE_SIGNATURE_DOMAIN +
      canonicalJson({
        federation: update.federation, bundle_id: update.bundleId, round: update.round, model_version: update.modelVersion,
        client_id: update.clientId, num_samples: update.numSamples, update_id: update.updateId, nonce: update.nonce,
        metrics, payload_sha256: toHex(sha256(update.payload)),
      }),
  );
}

/** @param {number} n @returns {string} n random bytes as lowercase hex */
function randomHex(n) {
  return toHex(crypto.getRandomValues(new Uint8Array(n)));
}

/** A fresh random update id (128 bits, hex): the gateway's dedup key, and what the compact form needs. */
export function newUpdateId() {
  return randomHex(16);
}

/** A fresh signing nonce (128 bits, lowercase hex). */
export function newNonce() {
  return randomHex(16);
}

/** @param {string} pem */
function pemBody(pem) {
  const m = /-----BEGIN ([A-Z ]+)-----([\s\S]*?)-----END \1-----/.exec(pem);
  if (!m) throw new TypeError("not a PEM block");
  return { label: m[1], der: Uint8Array.from(atob(m[2].replace(/\s+/g, "")), (c) => c.charCodeAt(0)) };
}

// The fixed PKCS#8 prefix of an Ed25519 private key (RFC 8410): SEQUENCE { version 0, AlgorithmIdentifier
// id-Ed25519, OCTET STRING { OCTET STRING (32-byte seed) } }.
const PKCS8_ED25519_PREFIX = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20);

/**
 * The device's Ed25519 signing key as a non-extractable WebCrypto key, from the PKCS#8 PEM that
 * `fmfl provision` writes (devices/ID/signing.key) or from the raw 32-byte seed.
 * @param {string|Uint8Array} key PEM text or the 32-byte seed
 * @returns {Promise<CryptoKey>}
 */
export async function importSigningKey(key) {
  if (!globalThis.crypto?.subtle) throw new Error("signing needs WebCrypto, which browsers offer only on https:// or localhost pages");
  let der;
  if (typeof key === "string") {
    const { label, der: body } = pemBody(key);
    if (label !== "PRIVATE KEY") throw new TypeError(`expected a PKCS#8 "PRIVATE KEY" PEM, got "${label}"`);
    der = body;
  } else {
    if (key.length !== 32) throw new TypeError(`an Ed25519 seed is 32 bytes, got ${key.length}`);
    der = new Uint8Array(48);
    der.set(PKCS8_ED25519_PREFIX);
    der.set(key, 16);
  }
  return crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, false, ["sign"]);
}

/**
 * The 64-byte Ed25519 signature of `bytes`.
 * @param {CryptoKey} key from importSigningKey
 * @param {Uint8Array} bytes
 * @returns {Promise<Uint8Array>}
 */
export async function sign(key, bytes) {
  return new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key, bytes));
}

/**
 * `update` with a nonce (a fresh one unless it has one) and its signature, as the reference device signs
 * before the update enters the outbox (so every resend is the same bytes, nonce and signature).
 * @param {import("./messages.js").ClientUpdate} update
 * @param {CryptoKey} key
 * @returns {Promise<import("./messages.js").ClientUpdate>}
 */
export async function signUpdate(update, key) {
  const nonced = makeUpdate({ ...update, nonce: update.nonce ?? newNonce(), signature: null });
  return makeUpdate({ ...nonced, signature: await sign(key, signingInput(nonced)) });
}
