// What the browser must offer before the page loads anything else: WebAssembly (onnxruntime-web trains in
// it), IndexedDB (the outbox, the model, the residual and the identity live there) and WebCrypto's SHA-256
// and Ed25519 (bundle verification and update signatures; `crypto.subtle` exists only in secure contexts:
// https, or http on localhost). Checked without importing any of the heavy modules, so an old browser still
// gets a clear message instead of a blank page.

/**
 * The names of the missing features, each with why it is needed; empty when the browser can run the device.
 * @param {any} scope globalThis of the page
 * @returns {string[]}
 */
export function missingFeatures(scope) {
  const missing = [];
  if (typeof scope.WebAssembly !== "object" || typeof scope.WebAssembly?.instantiate !== "function") {
    missing.push("WebAssembly (the model trains in it)");
  }
  if (!scope.indexedDB) missing.push("IndexedDB (the device keeps its updates and model in it)");
  if (!scope.crypto?.subtle) {
    missing.push(scope.isSecureContext === false
      ? "WebCrypto, which this browser offers only on https:// pages (open the page over https)"
      : "WebCrypto (bundle verification and update signatures)");
  }
  if (typeof scope.WebSocket !== "function") missing.push("WebSockets (the connection to the federation)");
  return missing;
}

// RFC 8032 section 7.1, test 1: a valid public key, so only a missing algorithm can fail the import.
const RFC8032_TEST1_PUBLIC = Uint8Array.from(
  "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a".match(/../g) ?? [], (h) => parseInt(h, 16));

/**
 * Whether WebCrypto really verifies Ed25519 (Chromium 113+, Firefox 129+, Safari 17+): feature detection by
 * importing a fixed public key, since `crypto.subtle` alone says nothing about the algorithm.
 * @param {SubtleCrypto} subtle
 * @returns {Promise<boolean>}
 */
export async function hasEd25519(subtle) {
  try {
    await subtle.importKey("raw", RFC8032_TEST1_PUBLIC, { name: "Ed25519" }, false, ["verify"]);
    return true;
  } catch {
    return false;
  }
}
