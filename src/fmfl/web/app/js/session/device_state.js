// The device's crash-safe state: the last good global model, the error-feedback residual and the outbox.
//
// Mirrors src/fmfl/edge_client/state.py over IndexedDB. An update and the residual left after encoding it are
// written together as one outbox entry: the entry is the commit point of a round. While an entry is pending
// its residual is the current one; when the gateway acknowledges it (accepted or not: docs/protocol.md,
// section 5 "Ack") the residual moves to the `residual` key and the entry is deleted, in one transaction.
// Everything is kept per client id, so a page that is given another identity never sends the old one's
// updates under the new name.

/** @typedef {import("./store.js").Store} Store */
/** @typedef {import("./store.js").OutboxRecord} OutboxRecord */

/** @typedef {{bundleId: string | null, modelVersion: number | null, lastRound: number, run: number,
 *              modelRun?: number | null, deltaRun?: number | null}} Meta */

export class DeviceState {
  /**
   * @param {Store} store
   * @param {string} clientId
   */
  constructor(store, clientId) {
    this.store = store;
    this.clientId = clientId;
    /** @type {Meta} */
    this.meta = { bundleId: null, modelVersion: null, lastRound: -1, run: 0 };
  }

  /** @param {string} name */
  key(name) {
    return `${name}:${this.clientId}`;
  }

  /**
   * Loads the state of `bundleId`; a state of another bundle is dropped (model, residual and outbox), as the
   * Python device drops them: an update for another bundle can never be accepted.
   * @param {string} bundleId
   * @returns {Promise<{dropped: number}>} how many outbox entries a bundle change dropped
   */
  async load(bundleId) {
    const meta = await this.store.get(this.key("meta"));
    if (meta && meta.bundleId && meta.bundleId !== bundleId) {
      const dropped = (await this.pending()).length;
      await this.store.clearClient(this.clientId, ["meta", "global", "residual", "summary"].map((n) => this.key(n)));
      this.meta = { bundleId, modelVersion: null, lastRound: -1, run: 0 };
      return { dropped };
    }
    this.meta = { bundleId, modelVersion: null, lastRound: -1, run: 0, ...(meta ?? {}) };
    this.meta.bundleId = bundleId;
    return { dropped: 0 };
  }

  /**
   * The last good global model with the run it came from and the last run known to send deltas (section
   * 2b), or null before the first model arrived.
   * @returns {Promise<{version: number, weights: Float32Array, run: number | null, deltaRun: number | null} | null>}
   */
  async loadGlobal() {
    if (this.meta.modelVersion === null) return null;
    const weights = await this.store.get(this.key("global"));
    if (!(weights instanceof Float32Array)) return null;
    return { version: this.meta.modelVersion, weights, run: this.meta.modelRun ?? null,
      deltaRun: this.meta.deltaRun ?? null };
  }

  /**
   * Keeps the model the feed holds (weights only when they changed: a delta-run note alone writes no weights).
   * @param {{version: number, weights: Float32Array, run: number | null, deltaRun: number | null}} held
   * @param {boolean} weightsChanged
   */
  async saveGlobal(held, weightsChanged) {
    const meta = { ...this.meta, modelVersion: held.version, modelRun: held.run, deltaRun: held.deltaRun };
    /** @type {Record<string, any>} */
    const values = { [this.key("meta")]: meta };
    if (weightsChanged) values[this.key("global")] = held.weights;
    await this.store.putAll(values);
    this.meta = meta;
  }

  /**
   * Records the newest run followed (section 2a), so a reloaded page keeps ignoring older runs.
   * @param {number} run
   */
  async followRun(run) {
    if (run <= this.meta.run) return;
    this.meta = { ...this.meta, run };
    await this.store.put(this.key("meta"), this.meta);
  }

  /** The last round whose update was committed to the outbox (-1 before the first). */
  get lastRound() {
    return this.meta.lastRound;
  }

  /**
   * The residual to encode the next update with: the newest pending entry's, else the acknowledged one.
   * @param {number} size
   * @returns {Promise<Float64Array>}
   */
  async residual(size) {
    const pending = await this.pending();
    const newest = pending.length ? pending[pending.length - 1].residual : null;
    if (newest instanceof Float64Array && newest.length === size) return newest;
    const kept = await this.store.get(this.key("residual"));
    if (kept instanceof Float64Array && kept.length === size) return kept;
    return new Float64Array(size);
  }

  /**
   * Commits a round: the exact message bytes (resent as they are until the Ack) and the residual after it.
   * @param {number} round
   * @param {string} updateId
   * @param {Uint8Array} message
   * @param {Float64Array | null} residual
   * @param {boolean} compact whether the message is a compact (1.2) frame, sent bare when it fits a packet
   */
  async commitUpdate(round, updateId, message, residual, compact) {
    const meta = { ...this.meta, lastRound: Math.max(this.meta.lastRound, round) };
    /** @type {OutboxRecord} */
    const record = {
      key: `${this.clientId}/${String(round).padStart(16, "0")}/${updateId}`,
      clientId: this.clientId, round, updateId, message, residual, compact, createdAt: Date.now(),
    };
    await this.store.commitOutbox(record, { [this.key("meta")]: meta });
    this.meta = meta;
  }

  /**
   * What the page showed after the last round (its metrics, the Acks so far), so a reload shows it again.
   * @returns {Promise<{round: number | null, metrics: Record<string, number>, num_samples: number | null,
   *                    acked: number, refused: number}>}
   */
  async summary() {
    const kept = await this.store.get(this.key("summary"));
    return { round: null, metrics: {}, num_samples: null, acked: 0, refused: 0, ...(kept ?? {}) };
  }

  /** @param {Record<string, any>} changes */
  async updateSummary(changes) {
    await this.store.put(this.key("summary"), { ...(await this.summary()), ...changes });
  }

  /** @returns {Promise<OutboxRecord[]>} */
  async pending() {
    return this.store.outbox(this.clientId);
  }

  /**
   * The gateway answered this update (accepted or refused): keep its residual unless a later round is
   * already pending (its residual includes this one), then drop the entry. False if it was not pending.
   * @param {string} updateId
   * @returns {Promise<OutboxRecord | null>} the removed entry
   */
  async acknowledge(updateId) {
    const pending = await this.pending();
    const entry = pending.find((e) => e.updateId === updateId);
    if (!entry) return null;
    /** @type {Record<string, any>} */
    const values = {};
    if (!pending.some((e) => e.round > entry.round) && entry.residual) {
      values[this.key("residual")] = entry.residual;
    }
    await this.store.removeOutbox(entry.key, values);
    return entry;
  }
}
