// Who this page is: client id, broker credentials and the Ed25519 update-signing key.
//
// They arrive in the URL fragment (`#client=ID&password=...&key=...`): browsers never send the fragment to
// the server, so the secrets stay out of web server logs. The page remembers them in IndexedDB and removes
// the fragment from the address bar; a reload then finds them in the database. The key is imported as a
// non-extractable CryptoKey and stored as such, so page scripts can sign with it but never read it back.

/** @typedef {import("./store.js").Store} Store */
/** @typedef {{clientId: string, username: string | null, password: string | null,
 *              signingKey: CryptoKey | null}} Identity */

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$/;
// DER header of a PKCS#8 PrivateKeyInfo holding an Ed25519 seed (RFC 8410): the seed's 32 bytes follow.
const PKCS8_ED25519_PREFIX = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
  0x04, 0x22, 0x04, 0x20];

export class IdentityError extends Error {}

/**
 * Decodes standard or URL-safe base64 (padding optional), or a PEM block.
 * @param {string} text
 * @returns {Uint8Array}
 */
export function base64Bytes(text) {
  const body = text.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "").replace(/-/g, "+").replace(/_/g, "/");
  const padded = body + "=".repeat((4 - (body.length % 4)) % 4);
  let binary;
  try {
    binary = atob(padded);
  } catch {
    throw new IdentityError("the key in the link is not base64");
  }
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/**
 * Imports an Ed25519 private key given as PKCS#8 DER (what `fmfl provision` writes, PEM-armoured or not) or as
 * the raw 32-byte seed (RFC 8032), non-extractable, for signing only.
 * @param {string} encoded base64 of the PKCS#8 DER or of the 32-byte seed
 * @param {SubtleCrypto} [subtle]
 * @returns {Promise<CryptoKey>}
 */
export async function importSigningKey(encoded, subtle = globalThis.crypto.subtle) {
  const bytes = base64Bytes(encoded);
  let pkcs8 = bytes;
  if (bytes.length === 32) {
    pkcs8 = new Uint8Array(PKCS8_ED25519_PREFIX.length + 32);
    pkcs8.set(PKCS8_ED25519_PREFIX);
    pkcs8.set(bytes, PKCS8_ED25519_PREFIX.length);
  }
  try {
    return await subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
  } catch (err) {
    throw new IdentityError(`the update key in the link is not an Ed25519 private key (${bytes.length} bytes: `
      + `give the 32-byte seed or the PKCS#8 key of devices/ID/signing.key): ${err}`);
  }
}

/**
 * Reads `client`, `username`, `password` and `key` from a URL fragment; null when it names no client.
 * @param {string} hash location.hash, with or without the leading '#'
 * @returns {{clientId: string, username: string | null, password: string | null, key: string | null} | null}
 */
export function parseFragment(hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const clientId = params.get("client");
  if (clientId === null) return null;
  if (!ID_RE.test(clientId)) {
    throw new IdentityError(`client id ${JSON.stringify(clientId)} breaks the id rules (1 to 64 of `
      + "A-Z a-z 0-9 . _ : @ -, starting with a letter or digit)");
  }
  return {
    clientId,
    username: params.get("username") ?? (params.has("password") ? clientId : null),
    password: params.get("password"),
    // URLSearchParams reads a raw '+' as a space; base64 has no spaces, so they can only be pluses.
    key: params.get("key")?.replace(/ /g, "+") ?? null,
  };
}

/**
 * The page's identity: a new one from the fragment (remembered, then wiped from the address bar), else the
 * remembered one, else null (the page then asks for a link with an identity).
 * @param {Store} store
 * @param {Location} location
 * @param {History} history
 * @returns {Promise<Identity | null>}
 */
export async function resolveIdentity(store, location, history) {
  const given = parseFragment(location.hash);
  if (given !== null) {
    const signingKey = given.key ? await importSigningKey(given.key) : null;
    /** @type {Identity} */
    const identity = { clientId: given.clientId, username: given.username, password: given.password, signingKey };
    await store.put("identity", identity);
    // The secrets leave the address bar (and the history entry) once they are stored.
    history.replaceState(null, "", location.pathname + location.search);
    return identity;
  }
  const stored = await store.get("identity");
  return stored && typeof stored.clientId === "string" ? stored : null;
}
