/**
 * What a device does with a GlobalModel and with runs (docs/protocol.md, sections 2a and 5,
 * "GlobalModel"). Mirrors the reference device (fmfl.edge_client.runner): follow the newest run, never
 * take an older run's task or model, take a newer run's model whatever its version, apply a delta only
 * on exactly its base version (w[i] = float32(w[i] + v), so every device holds the gateway's bits).
 */
import { decodeUpdatePayload } from "./codec/decoder.js";

/** The newest run a device has seen on a task or a model (0: none yet, or a 1.1 gateway). */
export class RunFollower {
  constructor(run = 0) {
    this.run = run;
  }

  /**
   * False for a message of a run older than the one followed; adopts a newer run. A message without a
   * run (a 1.1 gateway) always passes.
   * @param {number|null} run
   */
  follow(run) {
    if (run === null || run === undefined) return true;
    if (run < this.run) return false;
    this.run = run;
    return true;
  }
}

/**
 * @typedef {object} HeldModel
 * @property {number} version the version held (0: the bundle's initial weights)
 * @property {Float32Array} weights
 */

/**
 * The weights after `model`, or null with why it was ignored. `held` is what the device holds; `newerRun`
 * is true when the model names a run newer than the one followed before it arrived (its version then
 * need not be newer). Throws ProtocolError for a payload that does not decode: the held model stays.
 * @param {import("./messages.js").GlobalModel} model
 * @param {HeldModel} held
 * @param {{bundleId: string, limits: import("./limits.js").Limits, newerRun?: boolean}} context
 * @returns {{weights: Float32Array|null, why: string}}
 */
export function applyGlobalModel(model, held, { bundleId, limits, newerRun = false }) {
  if (model.bundleId !== bundleId) return { weights: null, why: `global model for bundle ${model.bundleId}, this device holds ${bundleId}` };
  if (model.modelVersion <= held.version && !newerRun) return { weights: null, why: `global v${model.modelVersion} is not newer than v${held.version}` };
  const size = held.weights.length;
  if (model.baseVersion === null) {
    const update = decodeUpdatePayload(model.payload, size, limits);
    const weights = new Float32Array(size);
    update.indices.forEach((i, j) => (weights[i] = update.values[j]));
    return { weights, why: "dense" };
  }
  if (model.baseVersion !== held.version) {
    return { weights: null, why: `global v${model.modelVersion} is a delta from v${model.baseVersion} but this device holds v${held.version}: waiting for a dense copy` };
  }
  const update = decodeUpdatePayload(model.payload, size, limits);
  const weights = Float32Array.from(held.weights);
  update.indices.forEach((i, j) => (weights[i] = weights[i] + update.values[j])); // binary32 store rounds once
  return { weights, why: `delta from v${model.baseVersion}` };
}
