/**
 * The device core's error types: one per kind of refusal, each with a message a person can act on
 * (the Python device's BundleError, DataError, GraphMismatch, NonFiniteGradient, OptimizerError).
 * @module device/errors
 */

/** A bundle that is incomplete, tampered with, unsigned or signed by someone else; nothing of it was used. */
export class BundleError extends Error {
  /** @param {string} message */
  constructor(message) { super(message); this.name = "BundleError"; }
}

/** Local data the device cannot use (not an image, a label outside the model's, a broken .npz ...). */
export class DataError extends Error {
  /** @param {string} message */
  constructor(message) { super(message); this.name = "DataError"; }
}

/** A bundle graph's inputs, outputs or gradient shapes do not match what its manifest declares. */
export class GraphMismatch extends Error {
  /** @param {string} message */
  constructor(message) { super(message); this.name = "GraphMismatch"; }
}

/** A train step produced a NaN or Inf loss or gradient; the weights were left as they were. */
export class NonFiniteGradient extends Error {
  /** @param {string} message */
  constructor(message) { super(message); this.name = "NonFiniteGradient"; }
}

/** The manifest names an optimizer or hyperparameter this device does not implement. */
export class OptimizerError extends Error {
  /** @param {string} message */
  constructor(message) { super(message); this.name = "OptimizerError"; }
}
