/**
 * The browser device's training side in one object, in the order of src/fmfl/edge_client/device.py
 * EdgeDevice: verify the bundle (nothing reaches onnxruntime before), read and preprocess the picked data,
 * compute or reuse the prefix features, split train/eval (20 %, seed 0, as the Python device), open the
 * train-step and eval sessions. The page (js/session/) drives rounds through ``localRound(task, weights)``
 * and encodes ``delta`` with the task's codec (js/protocol/).
 * @module device/device
 */

import { loadBundle } from "./bundle.js";
import { readLocalData, dataFingerprint } from "./data.js";
import { suffixDataset } from "./features.js";
import { evaluate, localRound, roundConfig } from "./local_training.js";
import { openStore } from "./store.js";
import { WebTrainer } from "./trainer.js";

export class WebDevice {
  /**
   * @param {Object} options
   * @param {any} options.ort  the onnxruntime-web module (ort.env.wasm.wasmPaths already set)
   * @param {string} options.bundleUrl
   * @param {string|null} [options.trustKey]  config.json's trust_key
   * @param {import("./index.js").LocalDataInput} options.data
   * @param {import("./store.js").Store|null} [options.cache]  default: the page's IndexedDB store; null: none
   * @param {number} [options.evalFraction]
   * @param {number} [options.seed]
   * @param {(event: {stage: string, [key: string]: any}) => void} [options.onProgress]
   * @returns {Promise<WebDevice>}
   */
  static async open(options) {
    const { ort, bundleUrl, trustKey = null, data, evalFraction = 0.2, seed = 0, onProgress = () => {} } = options;
    const cache = options.cache === undefined ? await openStore() : options.cache;
    const bundle = await loadBundle(bundleUrl, { trustKey, cache, onProgress: (e) => onProgress({ stage: "bundle", ...e }) });
    onProgress({ stage: "verified", ...bundle.stats });
    const local = await readLocalData(data, bundle.manifest, bundle);
    onProgress({ stage: "data", samples: local.length });
    const dataHash = await dataFingerprint(data);
    const { dataset, info } = await suffixDataset(ort, bundle, local, { dataHash, cache });
    onProgress({ stage: "features", ...info });
    const [train, evalSet] = dataset.split(evalFraction, seed);
    const trainer = await WebTrainer.create(ort, bundle);
    return new WebDevice(bundle, trainer, train, evalSet, info);
  }

  /**
   * @param {import("./index.js").LoadedBundle} bundle
   * @param {WebTrainer} trainer
   * @param {import("./dataset.js").LocalDataset} train
   * @param {import("./dataset.js").LocalDataset} evalSet
   * @param {{cache: string, prefix_seconds: number}} cacheInfo
   */
  constructor(bundle, trainer, train, evalSet, cacheInfo) {
    this.bundle = bundle;
    this.manifest = bundle.manifest;
    this.bundleId = bundle.manifest.bundle_id;
    this.trainer = trainer;
    this.trainData = train;
    this.evalData = evalSet;
    this.cacheInfo = cacheInfo;
    /** the bundle's initial weights: global version 0 */
    this.initialWeights = trainer.getWeights();
    this.tensorSizes = bundle.manifest.trainable.map((t) => t.size);
  }

  /** the number of training samples (ClientUpdate.num_samples) */
  get numSamples() { return this.trainData.length; }

  /**
   * One local round on the task's terms: train, delta, and the metrics the update carries (train_loss,
   * train_seconds, steps, then eval_loss, eval_accuracy, eval_samples on the local eval split).
   * @param {import("./index.js").RoundTaskLike} task
   * @param {Float32Array} weights  the global model the task names
   * @returns {Promise<import("./index.js").LocalRoundResult & {metrics: Record<string, number>}>}
   */
  async localRound(task, weights) {
    const result = await localRound(this.trainer, weights, this.trainData, roundConfig(task));
    const metrics = { train_loss: result.stats.mean_loss, train_seconds: result.stats.seconds, steps: result.stats.steps,
      ...(await evaluate(this.trainer, this.evalData)) };
    return { ...result, metrics };
  }

  /** @param {Float32Array} weights */
  async evaluate(weights) {
    this.trainer.setWeights(weights);
    return evaluate(this.trainer, this.evalData);
  }
}
