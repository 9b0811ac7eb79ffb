// The protocol as the session uses it: js/protocol/ (frames, chunks, codec, signatures) behind the few calls
// the state machine makes, with messages in the wire's own snake_case keys (what docs/protocol.md names and
// what js/device/ reads from a RoundTask). No protocol rule is implemented here; only the names change.

import * as protocol from "../protocol/index.js";

/**
 * @typedef {{federation: string, bundle_id: string, round: number, model_version: number, selected: string[],
 *            batch_size: number, lr: number, codec: string, deadline: number, seed: number,
 *            local_steps: number | null, local_epochs: number | null, run: number | null}} RoundTask
 * @typedef {{bundle_id: string, model_version: number, base_version: number | null, payload: Uint8Array,
 *            run: number | null, weights_sha256: string | null, decoded: any}} GlobalModel
 * @typedef {{client_id: string, round: number, update_id: string, accepted: boolean, reason: string,
 *            detail: string | null, run: number | null}} Ack
 * @typedef {{federation: string, bundle_id: string, round: number, model_version: number, client_id: string,
 *            num_samples: number, update_id: string, payload: Uint8Array, metrics: Record<string, number>,
 *            run: number | null, nonce: string | null, signature: Uint8Array | null}} ClientUpdate
 * @typedef {ReturnType<typeof makeWire>} Wire
 */

/**
 * @param {any} t a decoded js/protocol RoundTask
 * @returns {RoundTask}
 */
function taskFields(t) {
  return {
    federation: t.federation, bundle_id: t.bundleId, round: t.round, model_version: t.modelVersion,
    selected: t.selected, batch_size: t.batchSize, lr: t.lr, codec: t.codec, deadline: t.deadline, seed: t.seed,
    local_steps: t.localSteps, local_epochs: t.localEpochs, run: t.run,
  };
}

/**
 * @param {ClientUpdate} u
 * @returns {any} the js/protocol form
 */
function protocolUpdate(u) {
  return {
    federation: u.federation, bundleId: u.bundle_id, round: u.round, modelVersion: u.model_version,
    clientId: u.client_id, numSamples: u.num_samples, updateId: u.update_id, payload: u.payload,
    metrics: u.metrics, run: u.run, nonce: u.nonce, signature: u.signature,
  };
}

/**
 * @param {any} u the js/protocol form
 * @returns {ClientUpdate}
 */
function updateFields(u) {
  return {
    federation: u.federation, bundle_id: u.bundleId, round: u.round, model_version: u.modelVersion,
    client_id: u.clientId, num_samples: u.numSamples, update_id: u.updateId, payload: u.payload,
    metrics: u.metrics, run: u.run, nonce: u.nonce, signature: u.signature,
  };
}

/**
 * The protocol calls of one federation's session.
 * @param {string} federation
 * @param {string} prefix
 */
export function makeWire(federation, prefix) {
  const topics = new protocol.Topics(federation, prefix);
  /** @type {Map<number, any>} */
  const limitsBySize = new Map();
  /** @param {number} size */
  const limits = (size) => {
    if (!limitsBySize.has(size)) limitsBySize.set(size, protocol.Limits.forVectorSize(size));
    return limitsBySize.get(size);
  };
  let size = 0; // set by reassembler(size): the manifest's trainable floats bound every decode

  return {
    topics,

    /** @param {number} vectorSize */
    reassembler(vectorSize) {
      size = vectorSize;
      return new protocol.Reassembler(limits(vectorSize).maxMessageBytes, 4);
    },

    /** @param {Uint8Array} payload */
    chunkRun: (payload) => protocol.chunkRun(payload),

    /** What section 8 says to do after an Ack. @param {Ack} ack @returns {{next: string, why: string}} */
    ackAction: (ack) => protocol.ackAction({ accepted: ack.accepted, reason: ack.reason }),

    /** @param {unknown} err */
    isProtocolError: (err) => err instanceof protocol.ProtocolError,

    /** @param {string} clientId @param {boolean} online */
    status: (clientId, online) => protocol.encodeStatus({ clientId, online }),

    /**
     * The will: the offline status as the one chunk the broker publishes for a lost connection.
     * @param {string} clientId
     */
    offlineStatus: (clientId) => protocol.splitMessage(protocol.encodeStatus({ clientId, online: false }))[0],

    /**
     * @param {string} clientId @param {Record<string, any>} capabilities @param {string} bundleId
     * @param {number | null} modelVersion
     */
    hello: (clientId, capabilities, bundleId, modelVersion) =>
      protocol.encodeHello({ clientId, capabilities, bundleId, modelVersion }),

    /** @param {Uint8Array} message @param {number} maxPacketBytes @param {boolean} bare */
    split: (message, maxPacketBytes, bare) => protocol.splitMessage(message, maxPacketBytes, { bare }),

    /** @param {Uint8Array} bytes @returns {RoundTask} */
    task: (bytes) => taskFields(protocol.decodeTask(bytes, limits(size))),

    /** @param {Uint8Array} bytes @returns {GlobalModel} */
    globalModel(bytes) {
      const m = protocol.decodeGlobalModel(bytes, limits(size));
      return { bundle_id: m.bundleId, model_version: m.modelVersion, base_version: m.baseVersion, payload: m.payload,
        run: m.run, weights_sha256: m.weightsSha256 ?? null, decoded: m };
    },

    /**
     * The device's model intake (section 2b, js/protocol ModelFeed): deltas on the held version of the same
     * run, dense models otherwise, weights_sha256 checked; says when `global/+` is wanted.
     * @param {{weights: Float32Array, version: number, run: number | null, deltaRun: number | null}} held
     */
    modelFeed: (held) => new protocol.ModelFeed({ ...held, limits: limits(held.weights.length) }),

    /** @param {Uint8Array} bytes @returns {Ack} */
    ack(bytes) {
      const a = protocol.decodeAck(bytes, limits(size));
      return { client_id: a.clientId, round: a.round, update_id: a.updateId, accepted: a.accepted, reason: a.reason,
        detail: a.detail || null, run: a.run };
    },

    /**
     * Encodes the round's delta with the task's codec, continuing the error-feedback residual, into an
     * unsigned ClientUpdate (the random-k seed is CRC-32 of "{client_id}:{round}", as the Python device).
     * @param {RoundTask} task @param {string} clientId
     * @param {{bundleId: string, size: number, tensorSizes: number[], numSamples: () => number}} trainer
     * @param {{delta: Float32Array, metrics: Record<string, number>}} round @param {Float64Array} residual
     * @returns {Promise<{update: ClientUpdate, residual: Float64Array}>}
     */
    async encodeUpdate(task, clientId, trainer, round, residual) {
      const seed = protocol.crc32(new TextEncoder().encode(`${clientId}:${task.round}`));
      const encoder = new protocol.UpdateEncoder(task.codec, trainer.size, trainer.tensorSizes, { seed });
      if (encoder.feedback) encoder.feedback.load(residual);
      const { payload } = encoder.encode(round.delta, { seed });
      /** @type {ClientUpdate} */
      const update = {
        federation: task.federation, bundle_id: trainer.bundleId, round: task.round,
        model_version: task.model_version, client_id: clientId, num_samples: trainer.numSamples(),
        update_id: protocol.newUpdateId(), payload, metrics: round.metrics, run: task.run, nonce: null, signature: null,
      };
      // Without `ef` in the codec this is zeros, as the Python device then stores.
      return { update, residual: Float64Array.from(encoder.residual) };
    },

    /**
     * The update with a fresh nonce and its Ed25519 signature (docs/protocol.md, "Signed updates"): signed
     * before it enters the outbox, so every resend is the same bytes.
     * @param {ClientUpdate} update @param {CryptoKey} key
     * @returns {Promise<ClientUpdate>}
     */
    async sign(update, key) {
      return updateFields(await protocol.signUpdate(protocolUpdate(update), key));
    },

    /**
     * The bytes the outbox keeps: the compact frame when the task named a run (1.2), else the JSON frame.
     * @param {ClientUpdate} update
     */
    updateBytes(update) {
      const u = protocolUpdate(update);
      const compact = protocol.compactOk(protocol.makeUpdate(u));
      return { bytes: protocol.encodeUpdate(u, { compact }), compact };
    },
  };
}
