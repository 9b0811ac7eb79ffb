/**
 * The downlink on the device (docs/protocol.md, sections 2a and 2b): follow the newest run, take dense
 * models and downlink deltas, prove with `weights_sha256` that the weights are the gateway's bit for bit,
 * and know when to be subscribed to the dense model's `global/+`. Mirrors fmfl.protocol.downlink (the
 * arithmetic) and fmfl.edge_client.runner (the run rule).
 *
 * A delta applies only at its decoded indices, w[i] = float32(w[i] + x): adding the implicit zeros too
 * would turn a -0.0 weight into +0.0 (equal as numbers, another hash).
 */
import { ProtocolError } from "./errors.js";
import { toHex } from "./bytes.js";
import { sha256 } from "./sha256.js";
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
 * The `weights_sha256` of a weight vector: SHA-256 of its float32 little-endian bytes, lowercase hex.
 * @param {Float32Array} weights
 */
export function weightsSha256(weights) {
  const bytes = new Uint8Array(4 * weights.length);
  const dv = new DataView(bytes.buffer);
  weights.forEach((w, i) => dv.setFloat32(4 * i, w, true));
  return toHex(sha256(bytes));
}

/**
 * `hash_mismatch` unless `weights` hash to the model's `weightsSha256` (when it carries one).
 * @param {Float32Array} weights @param {import("./messages.js").GlobalModel} model
 */
export function checkWeights(weights, model) {
  if (model.weightsSha256 === null || model.weightsSha256 === undefined) return;
  const got = weightsSha256(weights);
  if (got !== model.weightsSha256) {
    const origin = model.baseVersion === null ? "dense" : `the delta from v${model.baseVersion}`;
    throw new ProtocolError("hash_mismatch", `global v${model.modelVersion} from ${origin} hashes to ${got.slice(0, 16)}..., weights_sha256 says ${model.weightsSha256.slice(0, 16)}...`);
  }
}

/**
 * The weights a dense GlobalModel carries, checked against `weightsSha256`.
 * @param {import("./messages.js").GlobalModel} model @param {number} size @param {import("./limits.js").Limits} limits
 * @returns {Float32Array}
 */
export function denseWeights(model, size, limits) {
  if (model.baseVersion !== null) throw new TypeError(`global v${model.modelVersion} is a delta from v${model.baseVersion}, not dense`);
  const update = decodeUpdatePayload(model.payload, size, limits);
  const weights = new Float32Array(size);
  update.indices.forEach((i, j) => (weights[i] = update.values[j]));
  checkWeights(weights, model);
  return weights;
}

/**
 * The weights of `model.modelVersion` from `base` (the weights of `model.baseVersion`), as a new array;
 * `base` is never modified. Throws ProtocolError when the payload does not decode for `base.length` (the
 * decoder's reason) or the result does not hash to `weightsSha256` (`hash_mismatch`): keep `base`.
 * @param {Float32Array} base @param {import("./messages.js").GlobalModel} model @param {import("./limits.js").Limits} limits
 * @returns {Float32Array}
 */
export function applyDelta(base, model, limits) {
  if (model.baseVersion === null) throw new TypeError(`global v${model.modelVersion} is dense, not a delta`);
  const update = decodeUpdatePayload(model.payload, base.length, limits);
  const weights = Float32Array.from(base);
  update.indices.forEach((i, j) => (weights[i] = weights[i] + update.values[j])); // one binary32 rounding on store
  checkWeights(weights, model);
  return weights;
}

/**
 * A device's global-model intake (section 2b), a port of the reference device's ModelFeed
 * (fmfl.edge_client.model_feed): deltas when it holds the previous version of the same run, dense models
 * otherwise. Subscribe to `topics.globalDelta` always and to `topics.globalModel` while `wantsDense`.
 * Feed it the tasks and complete GlobalModels of the run the device follows (RunFollower; call newRun
 * when the followed run changes). It holds the weights; persist `version`, `weights`, `run` and
 * `deltaRun` after a change (a refused model changes nothing).
 */
export class ModelFeed {
  /**
   * @param {{weights: Float32Array, version?: number, run?: number|null, deltaRun?: number|null,
   *   limits: import("./limits.js").Limits}} held what the device holds: version 0 and run null for the
   *   bundle's initial weights; deltaRun, the last run known to publish deltas
   */
  constructor({ weights, version = 0, run = null, deltaRun = null, limits }) {
    this.weights = weights;
    this.version = version;
    this.run = run;
    this.deltaRun = deltaRun;
    this.limits = limits;
    this.newestNamed = -1; // the newest version a task or model of the followed run named
    this.wantsDense = true;
    this.reset();
  }

  /** At (re)connect: `global/+` unless the held model's gateway is known to send deltas. */
  reset() {
    this.wantsDense = this.run === null || this.deltaRun !== this.run;
  }

  /** The followed run changed: versions named by the old run mean nothing now. */
  newRun() {
    this.newestNamed = -1;
  }

  /**
   * A task of the followed run: take the dense model if it names a version the device lacks.
   * @param {{run: number|null, modelVersion: number}} task
   */
  onTask(task) {
    const run = task.run ?? 0;
    this.newestNamed = Math.max(this.newestNamed, task.modelVersion);
    // Another run's model (or the bundle's initial weights) never serves this run's task, whatever the
    // numbers: a gateway on a broker that lost its retained state restarts at version 0.
    if (task.modelVersion > this.version || this.run !== run) this.wantsDense = true;
    this.settle(run);
  }

  /**
   * A complete GlobalModel of the followed run (drop older runs' models before: RunFollower).
   * Returns what happened: "delta" or "dense" (the weights changed), "ignored" (already held, or a delta
   * it cannot apply: then wantsDense), or "refused" (it did not decode or failed weights_sha256: the held
   * weights stay, wantsDense) with the ProtocolError.
   * @param {import("./messages.js").GlobalModel} model
   * @returns {{outcome: "delta"|"dense"|"ignored"|"refused", error?: ProtocolError}}
   */
  onModel(model) {
    const run = model.run ?? 0;
    this.newestNamed = Math.max(this.newestNamed, model.modelVersion);
    if (model.baseVersion !== null || model.deltas === true) this.deltaRun = run; // this run's gateway sends deltas
    const result = model.baseVersion !== null ? this.onDelta(model, run) : this.onDense(model, run);
    this.settle(run);
    return result;
  }

  /** @param {import("./messages.js").GlobalModel} model @param {number} run */
  onDelta(model, run) {
    if (model.modelVersion <= this.version && this.run === run) return { outcome: "ignored" }; // already held
    if (model.baseVersion !== this.version || this.run !== run) {
      this.wantsDense = true;
      return { outcome: "ignored" };
    }
    try {
      this.take(applyDelta(this.weights, model, this.limits), model.modelVersion, run);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.wantsDense = true;
      return { outcome: "refused", error };
    }
    return { outcome: "delta" };
  }

  /** @param {import("./messages.js").GlobalModel} model @param {number} run */
  onDense(model, run) {
    // A model of the followed run replaces one of another run (or the bundle's initial weights) whatever its
    // version: it also names the run the held weights belong to, which deltas need. Without a run (a 1.1
    // gateway) versions alone decide.
    const runlessOverAModel = model.run === null && this.run !== null;
    if (model.modelVersion <= this.version && (this.run === run || runlessOverAModel)) return { outcome: "ignored" };
    try {
      this.take(denseWeights(model, this.weights.length, this.limits), model.modelVersion, run);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      return { outcome: "refused", error };
    }
    return { outcome: "dense" };
  }

  /** @param {Float32Array} weights @param {number} version @param {number} run */
  take(weights, version, run) {
    this.weights = weights;
    this.version = version;
    this.run = run;
  }

  /** Drop `global/+` once current on a run that sends deltas. @param {number} run */
  settle(run) {
    if (this.wantsDense && this.run === run && this.deltaRun === run && this.version >= this.newestNamed) this.wantsDense = false;
  }
}
