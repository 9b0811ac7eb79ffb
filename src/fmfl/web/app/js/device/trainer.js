/**
 * On-device training in the browser, as src/fmfl/edge_client/trainer.py: the bundle's train-step graph on
 * onnxruntime-web (wasm backend) plus the optimizer of optimizer.js. The trainable tensors live in one flat
 * Float32Array in manifest order (the update format); a step feeds each tensor as a view of it, checks every
 * gradient's shape and finiteness, and lets the optimizer update the vector in place.
 * @module device/trainer
 */

import { GraphMismatch, NonFiniteGradient } from "./errors.js";
import { trainStepSpec } from "./manifest.js";
import { makeOptimizer } from "./optimizer.js";
import { parseNpy } from "./npy.js";

/**
 * An inference session on verified graph bytes (wasm backend).
 * @param {any} ort  the onnxruntime-web module
 * @param {Uint8Array} bytes
 * @param {string} name  for messages
 */
export async function openSession(ort, bytes, name) {
  try {
    return await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  } catch (e) {
    throw new GraphMismatch(`onnxruntime-web could not load ${name}: ${/** @type {Error} */ (e).message || e}`);
  }
}

/**
 * @param {string} name
 * @param {any} session
 * @param {string[]} inputs
 * @param {string[]} outputs
 */
function checkIo(name, session, inputs, outputs) {
  const gotIn = [...session.inputNames], gotOut = [...session.outputNames];
  const same = (/** @type {string[]} */ a, /** @type {string[]} */ b) => a.length === b.length && a.every((x, i) => x === b[i]);
  if (!same([...gotIn].sort(), [...inputs].sort()) || !same(gotOut, outputs)) {
    throw new GraphMismatch(`${name} does not match the manifest: inputs ${JSON.stringify(gotIn)} (manifest: ${JSON.stringify(inputs)}), ` +
      `outputs ${JSON.stringify(gotOut)} (manifest: ${JSON.stringify(outputs)}); the bundle is inconsistent, re-export it`);
  }
}

export class WebTrainer {
  /**
   * Use WebTrainer.create.
   * @param {any} ort
   * @param {import("./index.js").Manifest} manifest
   * @param {any} stepSession
   * @param {any} evalSession
   * @param {{inputs: string[], outputs: string[], gradients: string[]}} spec
   */
  constructor(ort, manifest, stepSession, evalSession, spec) {
    this.ort = ort;
    this.manifest = manifest;
    this.stepSession = stepSession;
    this.evalSession = evalSession;
    this.tensorNames = manifest.trainable.map((t) => t.name);
    /** the batch inputs (features, then targets), without the trainable tensors */
    this.inputNames = spec.inputs;
    this.outputNames = spec.outputs;
    this.gradNames = spec.gradients;
    this.weights = new Float32Array(manifest.numTrainable);
    this.grads = new Float32Array(manifest.numTrainable);
    this.optimizer = makeOptimizer(manifest.optimizer, this.weights.length);
  }

  /**
   * Sessions for the verified train-step and eval graphs; weights from the bundle's initial weights.
   * @param {any} ort
   * @param {import("./index.js").LoadedBundle} bundle
   * @returns {Promise<WebTrainer>}
   */
  static async create(ort, bundle) {
    const { manifest } = bundle;
    const spec = trainStepSpec(manifest);
    const art = manifest.artifacts;
    const stepName = /** @type {string} */ (art.train_step_model), evalName = /** @type {string} */ (art.eval_model);
    const stepSession = await openSession(ort, bundle.file(stepName), stepName);
    const evalSession = await openSession(ort, bundle.file(evalName), evalName);
    const trainer = new WebTrainer(ort, manifest, stepSession, evalSession, spec);
    const feeds = [...trainer.tensorNames, ...spec.inputs];
    checkIo(stepName, stepSession, feeds, [...spec.outputs, ...spec.gradients]);
    checkIo(evalName, evalSession, feeds, spec.outputs);
    if (art.initial_weights) {
      const init = parseNpy(bundle.file(art.initial_weights), art.initial_weights);
      if (init.dtype !== "<f4") throw new GraphMismatch(`${art.initial_weights} holds ${init.dtype}, the device expects float32`);
      trainer.setWeights(/** @type {Float32Array} */ (init.data));
    }
    return trainer;
  }

  getWeights() { return Float32Array.from(this.weights); }

  /** @param {Float32Array} flat */
  setWeights(flat) {
    if (flat.length !== this.weights.length) throw new RangeError(`weights must have ${this.weights.length} floats, got ${flat.length}`);
    this.weights.set(flat);
  }

  /** Fresh optimizer state: each round trains from the global model alone. */
  resetOptimizer() { this.optimizer = makeOptimizer(this.manifest.optimizer, this.weights.length, this.optimizer.lr); }

  /** @param {number} lr */
  setLearningRate(lr) { this.optimizer.lr = lr; }

  /**
   * @param {Object<string, import("./index.js").Tensor>} batch  the batch inputs by name (labels as int64)
   * @returns {Record<string, any>}
   */
  feed(batch) {
    const { Tensor } = this.ort;
    /** @type {Record<string, any>} */
    const feeds = {};
    for (const name of this.inputNames) {
      const t = batch[name];
      if (!t) throw new GraphMismatch(`the batch lacks the graph input ${name}`);
      const type = t.data instanceof BigInt64Array ? "int64" : t.data instanceof Float32Array ? "float32" : "uint8";
      feeds[name] = new Tensor(type, t.data, t.shape);
    }
    for (const t of this.manifest.trainable) {
      feeds[t.name] = new Tensor("float32", this.weights.subarray(t.offset, t.offset + t.size), t.shape);
    }
    return feeds;
  }

  /**
   * One forward, backward and optimizer step; returns the loss. Non-finite results change nothing.
   * @param {Object<string, import("./index.js").Tensor>} batch
   * @returns {Promise<number>}
   */
  async trainStep(batch) {
    const out = await this.stepSession.run(this.feed(batch));
    const loss = Number(out[this.outputNames[0]].data[0]);
    const bad = [];
    let finite = Number.isFinite(loss);
    this.manifest.trainable.forEach((tensor, k) => {
      const g = out[this.gradNames[k]];
      const dims = Array.from(g.dims, Number);
      if (dims.length !== tensor.shape.length || dims.some((d, i) => d !== tensor.shape[i])) {
        throw new GraphMismatch(`the train step's gradient for ${tensor.name} has shape ${JSON.stringify(dims)}, the manifest says ` +
          `${JSON.stringify(tensor.shape)}; the bundle is inconsistent, re-export it`);
      }
      const data = /** @type {Float32Array} */ (g.data);
      let ok = true;
      for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) { ok = false; break; }
      if (!ok) { bad.push(tensor.name); finite = false; }
      this.grads.set(data, tensor.offset);
    });
    for (const t of Object.values(out)) t.dispose?.();
    if (!finite) {
      throw new NonFiniteGradient(`local training produced a non-finite loss (${loss}) or gradient` +
        (bad.length ? ` (in ${bad.slice(0, 3).join(", ")}${bad.length > 3 ? " ..." : ""})` : "") +
        "; the step was not applied: lower the learning rate or check the local data");
    }
    this.optimizer.step(this.weights, this.grads);
    return loss;
  }

  /**
   * Loss and task output (e.g. logits) without touching the weights.
   * @param {Object<string, import("./index.js").Tensor>} batch
   * @returns {Promise<{loss: number, output: Float32Array, dims: number[]}>}
   */
  async evalStep(batch) {
    const out = await this.evalSession.run(this.feed(batch));
    const loss = Number(out[this.outputNames[0]].data[0]);
    const o = out[this.outputNames[1]];
    const result = { loss, output: Float32Array.from(o.data), dims: Array.from(o.dims, Number) };
    for (const t of Object.values(out)) t.dispose?.();
    return result;
  }

  async release() {
    await this.stepSession.release?.();
    await this.evalSession.release?.();
  }
}
