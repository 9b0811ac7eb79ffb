/**
 * Inputs of the trainable suffix for every local sample, as src/fmfl/edge_client/features.py: with a split
 * bundle the frozen prefix (prefix.onnx on onnxruntime-web) runs once per sample, in batches of 16 in sample
 * order, and its outputs are cached in IndexedDB under "<bundle id>-<first 24 hex of the data hash>", so later
 * rounds and page reloads cost only the suffix. The cache entry is written in one transaction: a page closed
 * mid-way leaves no half entry.
 * @module device/features
 */

import { openSession } from "./trainer.js";

/** samples per prefix batch (the Python device's PREFIX_BATCH) */
export const PREFIX_BATCH = 16;

/**
 * @param {import("./index.js").Manifest} manifest
 * @param {string} dataHash
 */
export const cacheKey = (manifest, dataHash) => `${manifest.bundle_id}-${dataHash.slice(0, 24)}`;

/**
 * Run the frozen prefix over every sample of ``data``.
 * @param {any} ort
 * @param {import("./index.js").LoadedBundle} bundle
 * @param {import("./dataset.js").LocalDataset} data
 * @returns {Promise<Object<string, import("./index.js").Tensor>>}
 */
export async function computeFeatures(ort, bundle, data) {
  const name = /** @type {string} */ (bundle.manifest.artifacts.prefix_model);
  const session = await openSession(ort, bundle.file(name), name);
  /** @type {Object<string, import("./index.js").Tensor>} */
  const out = {};
  try {
    for (const batch of data.batches(PREFIX_BATCH, 0, false)) {
      /** @type {Record<string, any>} */
      const feeds = {};
      for (const n of session.inputNames) {
        const t = batch.inputs[n];
        feeds[n] = new ort.Tensor(t.data instanceof BigInt64Array ? "int64" : "float32", t.data, t.shape);
      }
      const result = await session.run(feeds);
      for (const n of session.outputNames) {
        const v = result[n];
        const dims = Array.from(v.dims, Number);
        const row = dims.slice(1).reduce((a, b) => a * b, 1);
        if (!out[n]) {
          const Ctor = /** @type {any} */ (v.data.constructor);
          out[n] = { data: new Ctor(data.length * row), shape: [data.length, ...dims.slice(1)] };
        }
        // Batches are in sample order (no shuffle), so batch k holds samples indices[0] .. indices[0] + n.
        out[n].data.set(v.data, batch.indices[0] * row);
        v.dispose?.();
      }
    }
  } finally {
    await session.release?.();
  }
  return out;
}

/**
 * ``data`` with its inputs replaced by what the suffix takes; also returns cache statistics.
 * @param {any} ort
 * @param {import("./index.js").LoadedBundle} bundle
 * @param {import("./dataset.js").LocalDataset} data
 * @param {{dataHash: string, cache: import("./store.js").Store|null}} options
 * @returns {Promise<{dataset: import("./dataset.js").LocalDataset, info: {cache: string, prefix_seconds: number}}>}
 */
export async function suffixDataset(ort, bundle, data, { dataHash, cache }) {
  const { manifest } = bundle;
  const names = /** @type {string[]} */ (manifest.graph.train_inputs).map(String);
  const pick = (/** @type {Object<string, import("./index.js").Tensor>} */ features) =>
    Object.fromEntries(names.map((n) => [n, features[n] ?? data.inputs[n]]));
  if (!manifest.artifacts.prefix_model) return { dataset: data.withInputs(pick({})), info: { cache: "none", prefix_seconds: 0 } };
  const key = cacheKey(manifest, dataHash);
  const hit = cache ? await cache.get("features", key) : undefined;
  if (hit && hit.count === data.length) return { dataset: data.withInputs(pick(hit.features)), info: { cache: "hit", prefix_seconds: 0 } };
  const start = performance.now();
  const features = await computeFeatures(ort, bundle, data);
  const seconds = (performance.now() - start) / 1000;
  if (cache) await cache.put("features", key, { count: data.length, features });
  return { dataset: data.withInputs(pick(features)), info: { cache: cache ? "miss" : "none", prefix_seconds: seconds } };
}
