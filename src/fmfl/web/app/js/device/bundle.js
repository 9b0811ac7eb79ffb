/**
 * Bundle download and verification, before onnxruntime sees a byte (src/fmfl/bundle/verify.py in the
 * browser): the Ed25519 signature over manifest.json with the configured trust key (WebCrypto), the manifest's
 * schema and consistency (manifest.js), then every file the manifest lists, checked against its size and sha256.
 * Verified files are cached in IndexedDB keyed by their sha256, so a second load downloads only the manifest
 * (and signature); cached bytes are hashed again before use, so a damaged cache is caught, not trusted.
 *
 * Differences from the Python check, because of HTTP: the folder cannot be listed, so "no unlisted files" holds
 * by construction (only listed names are fetched, and names that are not plain relative paths are refused);
 * ONNX external-data references need no scan, as onnxruntime-web loads a graph from bytes and cannot open files.
 * @module device/bundle
 */

import { BundleError } from "./errors.js";
import { MANIFEST_FILE, SIGNATURE_FILE, parseManifest } from "./manifest.js";

/** @param {ArrayBuffer|Uint8Array} bytes @returns {Promise<string>} */
export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** @param {string} b64 */
function fromBase64(b64) {
  const bin = atob(b64.trim());
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/**
 * @param {typeof fetch} fetcher
 * @param {string} url
 * @param {string} name
 * @returns {Promise<Uint8Array|null>} null on 404
 */
async function download(fetcher, url, name) {
  let response;
  try {
    response = await fetcher(url, { cache: "no-store" });
  } catch (e) {
    throw new BundleError(`bundle: cannot download ${name} (${/** @type {Error} */ (e).message})`);
  }
  if (response.status === 404) return null;
  if (!response.ok) throw new BundleError(`bundle: downloading ${name} failed with HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * Check the detached Ed25519 signature over manifest.json.
 * @param {string} trustKey  base64 of the raw 32-byte public key (config.json's trust_key)
 * @param {Uint8Array} signature
 * @param {Uint8Array} manifestBytes
 */
async function checkSignature(trustKey, signature, manifestBytes) {
  let key;
  try {
    const raw = fromBase64(trustKey);
    if (raw.length !== 32) throw new Error(`${raw.length} bytes, an Ed25519 public key has 32`);
    key = await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
  } catch (e) {
    throw new BundleError(`the configured trust key is not a usable Ed25519 public key (${/** @type {Error} */ (e).message})`);
  }
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, key, signature, manifestBytes))) {
    throw new BundleError(`bundle: ${SIGNATURE_FILE} does not verify with the configured trust key (manifest.json was changed or the bundle was signed with another key)`);
  }
}

/**
 * Download, verify and return a bundle.
 * @param {string} baseUrl  the bundle folder's URL (ending in "/"), relative to the page or absolute
 * @param {Object} [options]
 * @param {string|null} [options.trustKey]  base64 raw Ed25519 public key; when set, an unsigned or badly
 *   signed bundle is refused
 * @param {import("./store.js").Store|null} [options.cache]  where verified files are kept (null: no cache)
 * @param {typeof fetch} [options.fetch]
 * @param {(event: {file: string, bytes: number, cached: boolean}) => void} [options.onProgress]
 * @returns {Promise<import("./index.js").LoadedBundle>}
 */
export async function loadBundle(baseUrl, options = {}) {
  const { trustKey = null, cache = null, onProgress = () => {} } = options;
  const fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
  const base = new URL(baseUrl.endsWith("/") ? baseUrl : baseUrl + "/", globalThis.location?.href ?? "http://localhost/");
  const start = performance.now();
  let bytesDownloaded = 0, bytesFromCache = 0;
  const manifestBytes = await download(fetcher, new URL(MANIFEST_FILE, base).href, MANIFEST_FILE);
  if (manifestBytes === null) throw new BundleError(`bundle ${base.href}: ${MANIFEST_FILE} is missing (is this an fmfl bundle?)`);
  bytesDownloaded += manifestBytes.length;
  if (trustKey) {
    const sig = await download(fetcher, new URL(SIGNATURE_FILE, base).href, SIGNATURE_FILE);
    if (sig === null) throw new BundleError(`bundle is unsigned (${SIGNATURE_FILE} missing) but a trust key is configured`);
    bytesDownloaded += sig.length;
    await checkSignature(trustKey, sig, manifestBytes);
  }
  const manifest = await parseManifest(manifestBytes);
  /** @type {Map<string, Uint8Array>} */
  const files = new Map();
  for (const name of Object.keys(manifest.files).sort()) {
    const meta = manifest.files[name];
    if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(name) || name.split("/").some((p) => p === ".." || p === ".")) {
      throw new BundleError(`bundle: the manifest lists ${JSON.stringify(name)}, which is not a plain file name inside the bundle`);
    }
    let bytes = cache ? await cache.get("files", meta.sha256) : undefined;
    let cached = false;
    if (bytes instanceof Uint8Array && bytes.length === meta.size && (await sha256Hex(bytes)) === meta.sha256) {
      cached = true;
      bytesFromCache += bytes.length;
    } else {
      bytes = await download(fetcher, new URL(name, base).href, name);
      if (bytes === null) throw new BundleError(`bundle: ${name} is missing`);
      bytesDownloaded += bytes.length;
      if (bytes.length !== meta.size || (await sha256Hex(bytes)) !== meta.sha256) {
        throw new BundleError(`bundle: ${name} does not match its sha256 in the manifest (tampered or corrupt); nothing of the bundle was used`);
      }
      if (cache) await cache.put("files", meta.sha256, bytes);
    }
    files.set(name, /** @type {Uint8Array} */ (bytes));
    onProgress({ file: name, bytes: /** @type {Uint8Array} */ (bytes).length, cached });
  }
  return {
    manifest,
    manifestBytes,
    file(name) {
      const b = files.get(name);
      if (!b) throw new BundleError(`bundle: ${name} is not a file the manifest lists`);
      return b;
    },
    stats: { bytesDownloaded, bytesFromCache, seconds: (performance.now() - start) / 1000 },
  };
}
