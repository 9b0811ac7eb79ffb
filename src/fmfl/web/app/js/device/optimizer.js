/**
 * The bundle's optimizer on the flat trainable vector (manifest order), exactly as the Python device's
 * src/fmfl/edge_client/optimizers.py: torch's AdamW (Loshchilov & Hutter 2019) and SGD formulas, float32
 * state, the same elementwise operations in the same order. Each float32 operation of numpy is one
 * correctly rounded IEEE operation; a double operation on two float32 values followed by Math.fround gives the
 * same result (double has more than 2p+2 bits for +, -, *, / and sqrt), so the browser's weights follow the
 * Python device's bit for bit. Scalars computed in double and cast (np.float32(...)) are cast the same way.
 * @module device/optimizer
 */

import { OptimizerError } from "./errors.js";

const f32 = Math.fround;
const ADAMW_DEFAULTS = { betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0.01 };
const SGD_DEFAULTS = { momentum: 0.0, weight_decay: 0.0 };

/** Adam with decoupled weight decay, as torch.optim.AdamW and fmfl's numpy AdamW. */
export class AdamW {
  /**
   * @param {number} size  floats in the flat vector
   * @param {number} lr
   * @param {[number, number]} betas
   * @param {number} eps
   * @param {number} weightDecay
   */
  constructor(size, lr, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 0.01) {
    this.size = size;
    this.lr = lr;
    this.betas = betas;
    this.eps = eps;
    this.weightDecay = weightDecay;
    this.t = 0;
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
  }

  /**
   * Update ``params`` in place from ``grads`` (both flat float32 of ``size``).
   * @param {Float32Array} params
   * @param {Float32Array} grads
   */
  step(params, grads) {
    const [b1, b2] = this.betas;
    this.t += 1;
    const decay = f32(1.0 - this.lr * this.weightDecay);
    const f1 = f32(b1), f2 = f32(b2), c1 = f32(1.0 - b1), c2 = f32(1.0 - b2);
    const invBias2Sqrt = f32(1.0 / Math.pow(1.0 - Math.pow(b2, this.t), 0.5));
    const stepSize = f32(this.lr / (1.0 - Math.pow(b1, this.t)));
    const eps = f32(this.eps);
    const { m, v } = this;
    const decays = this.weightDecay !== 0;
    for (let i = 0; i < this.size; i++) {
      const g = grads[i];
      let p = params[i];
      if (decays) p = f32(p * decay);
      const mi = f32(f32(m[i] * f1) + f32(g * c1)); // m = b1 m + (1 - b1) g
      const vi = f32(f32(v[i] * f2) + f32(f32(g * g) * c2)); // v = b2 v + (1 - b2) g^2
      m[i] = mi;
      v[i] = vi;
      let b = f32(f32(Math.sqrt(vi)) * invBias2Sqrt);
      b = f32(b + eps); // sqrt(v_hat) + eps: eps after the bias correction, as torch
      b = f32(f32(mi / b) * stepSize);
      params[i] = f32(p - b);
    }
  }
}

/** Plain or momentum SGD with L2 weight decay, as torch.optim.SGD (no dampening, no Nesterov). */
export class SGD {
  /**
   * @param {number} size
   * @param {number} lr
   * @param {number} momentum
   * @param {number} weightDecay
   */
  constructor(size, lr, momentum = 0.0, weightDecay = 0.0) {
    this.size = size;
    this.lr = lr;
    this.momentum = momentum;
    this.weightDecay = weightDecay;
    /** @type {Float32Array|null} */
    this.buffer = null;
  }

  /**
   * @param {Float32Array} params
   * @param {Float32Array} grads
   */
  step(params, grads) {
    const wd = f32(this.weightDecay), mom = f32(this.momentum), lr = f32(this.lr);
    let g = grads;
    if (this.weightDecay) {
      g = new Float32Array(this.size);
      for (let i = 0; i < this.size; i++) g[i] = f32(grads[i] + f32(wd * params[i]));
    }
    if (this.momentum) {
      if (this.buffer === null) {
        this.buffer = Float32Array.from(g);
      } else {
        const buf = this.buffer;
        for (let i = 0; i < this.size; i++) buf[i] = f32(f32(buf[i] * mom) + g[i]);
      }
      g = this.buffer;
    }
    for (let i = 0; i < this.size; i++) params[i] = f32(params[i] - f32(lr * g[i]));
  }
}

/** @param {unknown} x  @param {string} what */
function number(x, what) {
  if (typeof x !== "number" || !Number.isFinite(x)) throw new OptimizerError(`bad ${what} in the manifest's optimizer: ${JSON.stringify(x)}`);
  return x;
}

/**
 * The optimizer a manifest's ``optimizer`` section describes, for ``size`` floats (``lr`` overrides).
 * @param {Record<string, any>} spec
 * @param {number} size
 * @param {number} [lr]
 * @returns {AdamW|SGD}
 */
export function makeOptimizer(spec, size, lr) {
  const name = spec.name;
  const rate = number(lr !== undefined && lr !== null ? lr : spec.lr, "lr");
  if (name === "adamw") {
    const o = { ...ADAMW_DEFAULTS, ...pick(spec, ADAMW_DEFAULTS) };
    if (!Array.isArray(o.betas) || o.betas.length !== 2) throw new OptimizerError(`bad adamw betas in the manifest: ${JSON.stringify(o.betas)}`);
    const betas = /** @type {[number, number]} */ ([number(o.betas[0], "betas"), number(o.betas[1], "betas")]);
    return new AdamW(size, rate, betas, number(o.eps, "eps"), number(o.weight_decay, "weight_decay"));
  }
  if (name === "sgd") {
    const o = { ...SGD_DEFAULTS, ...pick(spec, SGD_DEFAULTS) };
    return new SGD(size, rate, number(o.momentum, "momentum"), number(o.weight_decay, "weight_decay"));
  }
  throw new OptimizerError(`the bundle's optimizer ${JSON.stringify(name)} is not implemented on the device (adamw, sgd)`);
}

/** @param {Record<string, any>} spec @param {Record<string, any>} defaults */
function pick(spec, defaults) {
  /** @type {Record<string, any>} */
  const out = {};
  for (const k of Object.keys(defaults)) if (k in spec) out[k] = spec[k];
  return out;
}
