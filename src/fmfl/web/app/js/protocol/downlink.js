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
 * When a delta-capable device holds `global/+` (section 2b, "When a device takes the dense model"). Feed
 * it what the device holds and the tasks and deltas it sees (of the run it follows, section 2a);
 * `wantsDense` says whether to be subscribed to `global/+` now.
 */
export class DownlinkPolicy {
  /**
   * @param {{run: number, version: number}|null} held the run and version of the held GlobalModel (null:
   *   the bundle's initial weights, which no GlobalModel named)
   * @param {number|null} [deltaRun] the run of the last delta received (kept with the model), if any
   */
  constructor(held, deltaRun = null) {
    this.held = held;
    this.deltaRun = deltaRun;
    /** @type {{run: number, version: number}|null} the newest version a task or model of the newest run named */
    this.newest = held;
    // At connect: dense, unless it holds a model of run r and has received a delta of run r.
    this.dense = !(held !== null && deltaRun === held.run);
  }

  get wantsDense() {
    return this.dense;
  }

  /**
   * What to do with a complete delta: "apply" (then call `took`), "ignore" (already held) or "dense" (it
   * cannot be applied: keep the held weights, take the dense model).
   * @param {{run: number|null, modelVersion: number, baseVersion: number|null}} delta
   * @returns {"apply"|"ignore"|"dense"}
   */
  onDelta(delta) {
    const run = delta.run ?? 0;
    this.deltaRun = run;
    this.saw(run, delta.modelVersion);
    const held = this.held;
    if (held !== null && held.run === run && delta.modelVersion <= held.version) {
      this.settle();
      return "ignore";
    }
    if (held === null || held.run !== run || delta.baseVersion !== held.version) {
      this.dense = true;
      return "dense";
    }
    return "apply";
  }

  /** A delta that did not decode or failed its `weights_sha256`: the held weights stay; take the dense model. */
  refused() {
    this.dense = true;
  }

  /**
   * A RoundTask of the run followed (or a newer one): the dense model when it names a version newer than
   * the held one, or any version while the held model is of another run.
   * @param {{run: number|null, modelVersion: number}} task
   */
  onTask(task) {
    const run = task.run ?? 0;
    this.saw(run, task.modelVersion);
    const held = this.held;
    if (held === null || held.run !== run || task.modelVersion > held.version) this.dense = true;
    else this.settle();
  }

  /**
   * The device now holds `version` of `run` (a delta applied, or a dense model taken).
   * @param {number|null} run @param {number} version
   */
  took(run, version) {
    this.held = { run: run ?? 0, version };
    this.saw(run ?? 0, version);
    this.settle();
  }

  /** @param {number} run @param {number} version */
  saw(run, version) {
    if (this.newest === null || run > this.newest.run) this.newest = { run, version };
    else if (run === this.newest.run) this.newest = { run, version: Math.max(this.newest.version, version) };
  }

  /** Leave `global/+` once the newest named version of the held run is held and a delta of that run came. */
  settle() {
    const { held, newest } = this;
    if (held !== null && newest !== null && this.deltaRun === held.run && newest.run === held.run && held.version >= newest.version) {
      this.dense = false;
    }
  }
}
