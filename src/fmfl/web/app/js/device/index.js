/**
 * The browser device's training core: everything between "a bundle URL + the person's local data" and
 * "a float32 delta after one local round", matching the Python device (src/fmfl/edge_client/) so that for a
 * fixed shard and seed the browser's delta equals the Python device's within float tolerance.
 *
 * Typical use (the page, js/session/):
 *
 *   import * as ort from "onnxruntime-web";
 *   import { WebDevice } from "./device/index.js";
 *   ort.env.wasm.wasmPaths = new URL("./vendor/ort/", location.href).href;  // relative paths resolve against ort.wasm.min.mjs
 *   const device = await WebDevice.open({ ort, bundleUrl: "bundle/", trustKey: config.trust_key,
 *                                         data: { kind: "npz", file }, onProgress: console.log });
 *   const [version, weights] = [0, device.initialWeights];       // or the global model from the gateway
 *   const round = await device.localRound(task, weights);       // task: a decoded RoundTask (snake_case)
 *   // round.delta: Float32Array to encode with the task's codec (js/protocol/); round.metrics for the update
 *
 * Lower-level pieces are exported too (tests and benchmarks use them).
 * @module device
 */

/**
 * @typedef {Object} TrainableTensor  one trainable tensor of the flat weight vector (manifest order)
 * @property {string} name
 * @property {number[]} shape
 * @property {string} dtype
 * @property {number} offset  index of its first float in the flat vector
 * @property {number} size
 */

/**
 * @typedef {Object} Manifest  the parsed, checked manifest.json (fields as in src/fmfl/bundle/manifest.py)
 * @property {string} schema            "fmfl.bundle/2"
 * @property {string} bundle_id
 * @property {Object} task              {kind: "classify"|"contrastive", labels?: string[]}
 * @property {Object} optimizer         {name: "adamw"|"sgd", lr, ...}
 * @property {Object} split
 * @property {Object} graph             graph.train_inputs, graph.train_step {inputs, outputs, gradients}
 * @property {Object} preprocessing     {image?: {size, channels, mean, std, input_name}, text?: {...}}
 * @property {TrainableTensor[]} trainable
 * @property {Object<string, string|null>} artifacts
 * @property {Object<string, {sha256: string, size: number}>} files
 * @property {number} numTrainable      total floats of the trainable tensors
 * @property {string[]|null} labels     task.labels
 */

/**
 * @typedef {Object} BundleStats
 * @property {number} bytesDownloaded   bytes fetched over the network (manifest and signature included)
 * @property {number} bytesFromCache    bytes of verified files read from the IndexedDB cache
 * @property {number} seconds
 */

/**
 * @typedef {Object} LoadedBundle  a verified bundle: every byte here matched the manifest before anyone used it
 * @property {Manifest} manifest
 * @property {Uint8Array} manifestBytes
 * @property {(name: string) => Uint8Array} file  the verified bytes of a file the manifest lists
 * @property {BundleStats} stats
 */

/**
 * @typedef {Object} LocalDataInput  what the person picked
 * @property {"npz"|"images"|"text"} kind
 * @property {File|Blob} [file]          kind "npz": an np.savez archive (images/x uint8, labels/y integers);
 *                                        kind "text": a .jsonl ({"text", "label"} per line) or .csv file
 * @property {File[]} [files]            kind "images": image files; with webkitdirectory the label is the
 *                                        file's parent folder name (webkitRelativePath "root/<label>/x.png")
 * @property {string} [label]            kind "images": one label (class name or index) for every file instead
 */

/**
 * @typedef {Object} Tensor  a plain array with a shape (what a LocalDataset holds per input)
 * @property {Float32Array|BigInt64Array|Uint8Array} data
 * @property {number[]} shape
 */

/**
 * @typedef {Object} LocalTrainConfig  as src/fmfl/edge_client/local_training.py LocalTrainConfig
 * @property {number} batch_size
 * @property {number} lr
 * @property {number|null} local_epochs   exactly one of local_epochs and local_steps is set
 * @property {number|null} local_steps
 * @property {bigint} seed                task.seed + task.round (may pass 2**53: kept a BigInt)
 */

/**
 * @typedef {Object} TrainStats
 * @property {number} steps
 * @property {number} samples
 * @property {number} mean_loss
 * @property {number} seconds
 * @property {number[]} step_ms         wall time of each train step (graph run + optimizer), for benchmarks
 * @property {number} first_step_at_ms  performance.now() when the first step ended (ms since the page's navigation)
 */

/**
 * @typedef {Object} LocalRoundResult
 * @property {Float32Array} trained   the weights after the round
 * @property {Float32Array} delta     trained - start, computed in float64 then rounded to float32 (as Python)
 * @property {TrainStats} stats
 */

/**
 * @typedef {Object} RoundTaskLike  the fields of a decoded RoundTask this core reads (wire names)
 * @property {number} round
 * @property {number|bigint} seed
 * @property {number} batch_size
 * @property {number} lr
 * @property {number|null} [local_steps]
 * @property {number|null} [local_epochs]
 */

export { BundleError, DataError, GraphMismatch, NonFiniteGradient, OptimizerError } from "./errors.js";
export { parseManifest, canonicalJson, canonicalJsonText, trainStepSpec } from "./manifest.js";
export { loadBundle, sha256Hex } from "./bundle.js";
export { openStore } from "./store.js";
export { parseNpy } from "./npy.js";
export { readZip } from "./zip.js";
export { readNpz } from "./npz.js";
export { resolveLabels } from "./labels.js";
export { resizeBilinear, convertChannels, fitImage, fitImageArray, normalize } from "./preprocess.js";
export { decodeImageFile, listImageFiles, readImageFiles } from "./images.js";
export { readLocalData, dataFingerprint } from "./data.js";
export { LocalDataset } from "./dataset.js";
export { permutation, defaultRngSeedState } from "./rng.js";
export { AdamW, SGD, makeOptimizer } from "./optimizer.js";
export { WebTrainer } from "./trainer.js";
export { suffixDataset, computeFeatures } from "./features.js";
export { roundConfig, trainLocally, evaluate, localRound } from "./local_training.js";
export { WordPieceTokenizer } from "./tokenizer.js";
export { readTextJsonl, readTextCsv } from "./text.js";
export { WebDevice } from "./device.js";
