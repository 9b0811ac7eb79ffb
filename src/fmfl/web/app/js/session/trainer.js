// The session's view of the training core (js/device/): the bundle's facts, the picked data and one local
// round. The core does the work (same pipeline, graph and optimizer as the Python device); this adapter only
// turns its results into what the session sends: the delta and the update's metrics.

import { DataError, WebDevice, parseNpy } from "../device/index.js";

/** @typedef {import("../device/index.js").LoadedBundle} LoadedBundle */
/** @typedef {import("../device/index.js").LocalDataInput} LocalDataInput */
/** @typedef {import("./wire.js").RoundTask} RoundTask */

export const APP_VERSION = "0.2.0-web";

/**
 * What the person picked, as the core's data input: one .npz shard, or image files (labelled by their folder
 * when a folder was picked, else by the label chosen on the page).
 * @param {File[]} files
 * @param {boolean} fromFolder
 * @param {string | null} [label]
 * @returns {LocalDataInput}
 */
export function pickedData(files, fromFolder, label = null) {
  const npz = files.filter((f) => f.name.toLowerCase().endsWith(".npz"));
  if (npz.length && npz.length === files.length) {
    if (npz.length > 1) throw new DataError(`pick one .npz shard, not ${npz.length}`);
    return { kind: "npz", file: npz[0] };
  }
  if (npz.length) throw new DataError("pick either one .npz shard or image files, not both");
  return fromFolder || !label ? { kind: "images", files } : { kind: "images", files, label };
}

/**
 * @param {{samples: number, train: number, eval: number, labels: number, source: string}} s
 * @returns {string}
 */
export function describeData(s) {
  return `${s.samples} examples from ${s.source} (${s.train} to train on, ${s.eval} to measure accuracy), `
    + `${s.labels} label(s). They stay on this device.`;
}

export class BrowserTrainer {
  /**
   * @param {{ort: any, bundle: LoadedBundle, cache: any, bundleUrl: string, trustKey: string | null}} options
   */
  constructor(options) {
    this.ort = options.ort;
    this.bundle = options.bundle;
    this.cache = options.cache;
    this.bundleUrl = options.bundleUrl;
    this.trustKey = options.trustKey;
    const manifest = options.bundle.manifest;
    this.bundleId = manifest.bundle_id;
    this.size = manifest.numTrainable;
    this.tensorSizes = manifest.trainable.map((t) => t.size);
    this.initialWeights = initialWeights(options.bundle);
    /** @type {WebDevice | null} */
    this.device = null;
  }

  ready() {
    return this.device !== null;
  }

  numSamples() {
    return this.device ? this.device.numSamples : 0;
  }

  /** What the hello tells the gateway about this device (docs/protocol.md, ClientHello). */
  capabilities() {
    const nav = /** @type {any} */ (globalThis.navigator ?? {});
    return {
      cores: nav.hardwareConcurrency ?? 1,
      threads: 1,
      memory_bytes: Math.round((nav.deviceMemory ?? 0) * 2 ** 30),
      machine: "wasm32",
      device_kind: "web",
      ort_version: String(this.ort.env?.versions?.web ?? this.ort.env?.versions?.common ?? "unknown"),
      execution_providers: ["wasm"],
      training_providers: ["wasm"],
      training_device: "cpu",
      fmfl_version: APP_VERSION,
      protocol: "1.2",
    };
  }

  /**
   * Reads and preprocesses the picked data (DataError on anything unusable); the previous data stays in use
   * until the new data is read.
   * @param {LocalDataInput} input
   * @returns {Promise<{samples: number, train: number, eval: number, labels: number, source: string}>}
   */
  async setData(input) {
    const device = await WebDevice.open({ ort: this.ort, bundleUrl: this.bundleUrl, trustKey: this.trustKey,
      cache: this.cache, data: input });
    this.device = device;
    return {
      samples: device.trainData.length + device.evalData.length, train: device.trainData.length,
      eval: device.evalData.length, labels: new Set(device.trainData.labels ?? []).size,
      source: device.trainData.source || "the picked data", cache: device.cacheInfo?.cache ?? null,
    };
  }

  /**
   * One local round from `weights` on the task's terms, with the Python device's metrics (train_loss,
   * train_seconds, steps, eval_loss, eval_accuracy, eval_samples).
   * @param {RoundTask} task
   * @param {Float32Array} weights
   * @returns {Promise<{delta: Float32Array, metrics: Record<string, number>}>}
   */
  async localRound(task, weights) {
    if (!this.device) throw new Error("no data picked yet");
    const result = await this.device.localRound(task, weights);
    return { delta: result.delta, metrics: result.metrics };
  }
}

/**
 * Version 0: the bundle's initial weights (manifest artifacts.initial_weights, a float32 .npy).
 * @param {LoadedBundle} bundle
 * @returns {Float32Array}
 */
export function initialWeights(bundle) {
  const name = bundle.manifest.artifacts.initial_weights ?? "initial_weights.npy";
  const array = parseNpy(bundle.file(name), name);
  if (!(array.data instanceof Float32Array) || array.data.length !== bundle.manifest.numTrainable) {
    throw new DataError(`${name} holds ${array.data.length} ${array.dtype} values; the manifest trains `
      + `${bundle.manifest.numTrainable} float32`);
  }
  return array.data;
}
