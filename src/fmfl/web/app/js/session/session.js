// The browser device's side of protocol 1.2: a small state machine over one MQTT connection.
//
// Mirrors src/fmfl/edge_client/runner.py (docs/protocol.md sections 2, 2a, 5 and 8):
// - connect with the offline ClientStatus as the will; on every connect first subscribe (task, global/+, own
//   ack), then (once the person's data is ready) the retained online status and the retained hello, then
//   resend the whole outbox;
// - a RoundTask is trained when it belongs to the followed run, names this bundle, selects this client, is for
//   a round after the last committed one and its deadline has not passed, and once the global model of the
//   version it names is held;
// - global models come as downlink deltas on `delta/+` when the held version is the delta's base (section
//   2b), else dense on `global/+`, subscribed only while the model feed wants it (js/protocol ModelFeed, the
//   port of the Python device's); weights_sha256 is checked and a refused model changes nothing;
// - an update is committed to the outbox (exact bytes + residual, one IndexedDB transaction) before its first
//   byte goes out, resent on every connect and after `resendAfterS` without an Ack, and dropped on any Ack.
// All message handling runs one message at a time on a promise chain, so a local round never interleaves with
// the handling of the messages that arrive meanwhile.

import { DeviceState } from "./device_state.js";

/** @typedef {import("./wire.js").Wire} Wire */
/** @typedef {import("./wire.js").RoundTask} RoundTask */
/** @typedef {import("./wire.js").GlobalModel} GlobalModel */
/** @typedef {import("./wire.js").Ack} Ack */
/** @typedef {import("./identity.js").Identity} Identity */

/**
 * What the session needs from the training core (js/device/): its bundle and one local round.
 * @typedef {{bundleId: string, size: number, tensorSizes: number[], initialWeights: Float32Array,
 *            numSamples: () => number, ready: () => boolean,
 *            localRound: (task: RoundTask, weights: Float32Array) =>
 *              Promise<{delta: Float32Array, metrics: Record<string, number>}>}} Trainer
 * @typedef {{publish: (topic: string, payload: Uint8Array, retain?: boolean) => Promise<void>,
 *            subscribe: (filters: string[]) => Promise<void>, unsubscribe: (filters: string[]) => Promise<void>,
 *            connected: boolean}} Link
 * @typedef {{type: string, [key: string]: any}} SessionEvent
 */

export class DeviceSession {
  /**
   * @param {{identity: Identity, wire: Wire, trainer: Trainer, state: DeviceState,
   *          capabilities: Record<string, any>, maxPacketBytes?: number, resendAfterS?: number,
   *          now?: () => number, emit: (event: SessionEvent) => void}} options
   */
  constructor(options) {
    this.identity = options.identity;
    this.clientId = options.identity.clientId;
    this.wire = options.wire;
    this.trainer = options.trainer;
    this.state = options.state;
    this.capabilities = options.capabilities;
    this.maxPacketBytes = options.maxPacketBytes ?? 131072;
    this.resendAfterS = options.resendAfterS ?? 30;
    this.now = options.now ?? (() => Date.now() / 1000);
    this.emit = options.emit;
    /** @type {Link | null} */
    this.link = null;
    /** @type {RoundTask | null} */
    this.pendingTask = null;
    this.followedRun = 0;
    this.helloSent = false;
    this.lastUpload = this.now();
    this.bytesSent = 0;
    this.pendingCount = 0; // outbox entries waiting for their Ack (shown on the page)
    this.training = false;
    /** @type {any} js/protocol ModelFeed: the held model, deltas or dense (section 2b); set by init() */
    this.feed = null;
    /** @type {boolean | null} whether `global/+` is subscribed (null: unknown, after a connect) */
    this.denseSubscribed = null;
    this.bytesReceived = 0; // MQTT payload bytes of tasks, models and Acks (the downlink)
    this.reassembler = this.wire.reassembler(this.trainer.size);
    /** @type {Promise<void>} */
    this.chain = Promise.resolve();
  }

  /** Loads the stored model and the followed run (after DeviceState.load). */
  async init() {
    const stored = await this.state.loadGlobal();
    const usable = stored !== null && stored.weights.length === this.trainer.size;
    this.feed = this.wire.modelFeed(usable ? stored
      : { weights: this.trainer.initialWeights, version: 0, run: null, deltaRun: null });
    this.followedRun = this.state.meta.run;
    this.pendingCount = (await this.state.pending()).length;
    const summary = await this.state.summary();
    this.emit({ type: "restored", model_version: this.feed.version, pending: this.pendingCount,
      ...summary });
  }

  /** The held model: the last good global one, else the bundle's initial weights as version 0. */
  heldModel() {
    const { version, weights } = this.feed;
    return { version: /** @type {number} */ (version), weights: /** @type {Float32Array} */ (weights) };
  }

  /** Subscribes to or drops `global/+` as the model feed wants (section 2b). */
  async syncDense() {
    const wanted = Boolean(this.feed.wantsDense);
    if (!this.link || !this.link.connected || wanted === this.denseSubscribed) return;
    if (wanted) await this.link.subscribe([this.wire.topics.globalModel]);
    else await this.link.unsubscribe([this.wire.topics.globalModel]);
    this.denseSubscribed = wanted;
  }

  /**
   * Runs `work` after everything queued before it (one message at a time).
   * @param {() => Promise<void>} work
   * @returns {Promise<void>}
   */
  enqueue(work) {
    this.chain = this.chain.then(work).catch((err) => this.emit({ type: "error", kind: "internal",
      message: String(err && err.message ? err.message : err) }));
    return this.chain;
  }

  /**
   * The connection is up (first time or again): subscribe first, then status, hello, outbox (section 2).
   * @param {Link} link
   */
  onConnect(link) {
    this.link = link;
    return this.enqueue(async () => {
      const t = this.wire.topics;
      // delta/+ before the task, so a retained delta lands before the retained task that names its version.
      await link.subscribe([t.globalDelta, t.task, t.ack(this.clientId)]);
      this.feed.reset();
      this.denseSubscribed = null; // a persistent session may still hold global/+: set it either way
      if (this.feed.wantsDense) await link.subscribe([t.globalModel]);
      else await link.unsubscribe([t.globalModel]);
      this.denseSubscribed = Boolean(this.feed.wantsDense);
      this.helloSent = false;
      await this.maybeHello();
      const pending = await this.state.pending();
      this.pendingCount = pending.length;
      for (const entry of pending) {
        await this.publishUpdate(entry.message, entry.compact);
        this.emit({ type: "resent", round: entry.round, update_id: entry.updateId, bytes: entry.message.length,
          why: "connect" });
      }
      if (pending.length) this.lastUpload = this.now();
      this.emit({ type: "connected", pending: pending.length, joined: this.helloSent });
    });
  }

  /** The data is ready to train on: join (hello) if connected, and train a task that was waiting for it. */
  onDataReady() {
    return this.enqueue(async () => {
      await this.maybeHello();
      await this.maybeTrain();
    });
  }

  /**
   * Joining: the retained online status, then the retained hello (section 2), once connected AND the data is
   * ready. A page without data yet stays offline for the gateway, so it is never selected for a round it
   * cannot train; it still resends its outbox on connect.
   */
  async maybeHello() {
    if (this.helloSent || !this.link || !this.link.connected || !this.trainer.ready()) return;
    const t = this.wire.topics;
    await this.publish(t.status(this.clientId), this.wire.status(this.clientId, true), true);
    const held = this.heldModel();
    const hello = this.wire.hello(this.clientId, this.capabilities, this.trainer.bundleId, held.version || null);
    // Retained, so a gateway that (re)starts after this page connected still learns of it.
    await this.publish(t.hello(this.clientId), hello, true);
    this.helloSent = true;
    this.emit({ type: "joined", client_id: this.clientId, model_version: held.version });
  }

  /**
   * One MQTT message (any topic the session subscribed to).
   * @param {string} topic
   * @param {Uint8Array} payload
   */
  onMessage(topic, payload) {
    return this.enqueue(() => this.handle(topic, payload));
  }

  /**
   * @param {string} topic
   * @param {Uint8Array} payload
   */
  async handle(topic, payload) {
    if (payload.length === 0) return; // a cleared retained topic (section 2)
    this.bytesReceived += payload.length;
    let message;
    let kind;
    try {
      kind = this.wire.topics.parse(topic)[0];
      const hint = this.wire.chunkRun(payload);
      if (hint !== null && hint < this.followedRun) return; // an older run's leftover: never buffered
      message = this.reassembler.add(payload, this.wire.topics.source(topic));
      if (message === null) return;
      if (kind === "task") await this.onTask(this.wire.task(message));
      else if (kind === "global" || kind === "delta") await this.onGlobal(this.wire.globalModel(message));
      else if (kind === "ack") await this.onAck(this.wire.ack(message));
    } catch (err) {
      if (!this.wire.isProtocolError(err)) throw err;
      this.emit({ type: "ignored", topic, reason: /** @type {any} */ (err).reason ?? String(err) });
      return;
    }
    await this.maybeTrain();
  }

  /**
   * False for a message of a run older than the followed one; adopts a newer run (section 2a).
   * @param {number | null} run
   */
  async follow(run) {
    if (run === null || run === undefined) return true;
    if (run < this.followedRun) return false;
    if (run > this.followedRun) {
      this.followedRun = run;
      this.feed.newRun();
      await this.state.followRun(run);
      if (this.pendingTask && this.pendingTask.run !== run) this.pendingTask = null;
    }
    return true;
  }

  /** @param {RoundTask} task */
  async onTask(task) {
    if (!(await this.follow(task.run))) return;
    if (task.bundle_id !== this.trainer.bundleId) {
      this.emit({ type: "ignored", topic: "task", reason: `round ${task.round} is for bundle ${task.bundle_id}` });
      return;
    }
    this.feed.onTask({ run: task.run, modelVersion: task.model_version });
    await this.syncDense();
    this.emit({ type: "task", round: task.round, selected: task.selected.includes(this.clientId),
      model_version: task.model_version });
    if (!task.selected.includes(this.clientId) || task.round <= this.state.lastRound) return;
    if (task.deadline < this.now()) {
      this.emit({ type: "skipped", round: task.round, reason: "the task arrived after its deadline" });
      return;
    }
    this.pendingTask = task;
  }

  /**
   * A complete GlobalModel from `global/+` (dense) or `delta/+` (section 2b): the model feed decides, checks
   * weights_sha256 and keeps the held weights on any refusal; what it took is stored before anything uses it.
   * @param {GlobalModel} model
   */
  async onGlobal(model) {
    const newerRun = model.run !== null && model.run > this.followedRun;
    if (!(await this.follow(model.run))) return;
    if (model.bundle_id !== this.trainer.bundleId) return;
    const deltaRunBefore = this.feed.deltaRun;
    const { outcome, error } = this.feed.onModel(model.decoded, newerRun);
    if (outcome === "delta" || outcome === "dense" || this.feed.deltaRun !== deltaRunBefore) {
      await this.state.saveGlobal({ version: this.feed.version, weights: this.feed.weights, run: this.feed.run,
        deltaRun: this.feed.deltaRun }, outcome === "delta" || outcome === "dense");
    }
    if (outcome === "delta" || outcome === "dense") {
      this.emit({ type: "global", model_version: model.model_version, run: model.run, form: outcome });
    } else if (outcome === "refused") {
      this.emit({ type: "ignored", topic: model.base_version === null ? "global" : "delta",
        reason: `v${model.model_version} refused (${error?.reason ?? error}); the held v${this.feed.version} stays` });
    }
    await this.syncDense();
  }

  /** @param {Ack} ack */
  async onAck(ack) {
    if (ack.client_id !== this.clientId) return;
    const entry = await this.state.acknowledge(ack.update_id);
    if (entry === null) return; // a duplicate Ack for a resend: already handled
    this.pendingCount = (await this.state.pending()).length;
    // Any Ack is final (section 5): accepted or refused, the update never goes out again.
    const summary = await this.state.summary();
    await this.state.updateSummary(ack.accepted ? { acked: summary.acked + 1 } : { refused: summary.refused + 1 });
    const action = this.wire.ackAction(ack);
    this.emit({ type: "acked", round: ack.round, update_id: ack.update_id, accepted: ack.accepted,
      reason: ack.reason, detail: ack.detail ?? null, next: action.next, why: action.why });
    // Section 8: the gateway never saw this device's hello (e.g. it lost its state): say hello again.
    if (action.next === "send_hello") {
      this.helloSent = false;
      await this.maybeHello();
    }
  }

  /** Trains the pending task once its model version is held and the data is ready. */
  async maybeTrain() {
    const task = this.pendingTask;
    if (task === null || this.training || !this.trainer.ready()) return;
    const held = this.heldModel();
    if (held.version !== task.model_version) return; // the matching global model has not arrived yet
    this.pendingTask = null;
    this.training = true;
    try {
      await this.runRound(task, held.weights);
    } finally {
      this.training = false;
    }
  }

  /**
   * Trains, encodes with the task's codec and the kept residual, builds (and signs) the update, commits it to
   * the outbox, then sends it.
   * @param {RoundTask} task
   * @param {Float32Array} weights
   */
  async runRound(task, weights) {
    this.emit({ type: "training", round: task.round });
    let result;
    try {
      result = await this.trainer.localRound(task, weights);
    } catch (err) {
      // Nothing is committed: the last good model stays and nothing is uploaded (as the Python device).
      this.emit({ type: "error", kind: "training", round: task.round,
        message: `round ${task.round}: local training failed: ${err instanceof Error ? err.message : err}` });
      return;
    }
    const residual = await this.state.residual(this.trainer.size);
    const encoded = await this.wire.encodeUpdate(task, this.clientId, this.trainer, result, residual);
    const signed = this.identity.signingKey
      ? await this.wire.sign(encoded.update, this.identity.signingKey) : encoded.update;
    const { bytes, compact } = this.wire.updateBytes(signed);
    await this.state.commitUpdate(task.round, signed.update_id, bytes, encoded.residual, compact);
    this.pendingCount = (await this.state.pending()).length;
    await this.state.updateSummary({ round: task.round, metrics: result.metrics, num_samples: signed.num_samples });
    this.emit({ type: "trained", round: task.round, update_id: signed.update_id, metrics: result.metrics,
      num_samples: signed.num_samples, payload_bytes: signed.payload.length, bytes: bytes.length });
    if (this.link && this.link.connected) {
      await this.publishUpdate(bytes, compact);
      this.lastUpload = this.now();
      this.emit({ type: "sent", round: task.round, update_id: signed.update_id, bytes: bytes.length });
    }
  }

  /** Resends what is still unacknowledged `resendAfterS` after the last upload (called on a timer). */
  resendIfDue() {
    return this.enqueue(async () => {
      if (this.now() - this.lastUpload < this.resendAfterS) return;
      this.lastUpload = this.now();
      if (!this.link || !this.link.connected) return; // the next connect resends everything
      for (const entry of await this.state.pending()) {
        await this.publishUpdate(entry.message, entry.compact);
        this.emit({ type: "resent", round: entry.round, update_id: entry.updateId, bytes: entry.message.length,
          why: "no Ack" });
      }
    });
  }

  /**
   * @param {Uint8Array} message
   * @param {boolean} compact a compact update goes out as one bare frame when it fits a packet
   */
  async publishUpdate(message, compact) {
    await this.publish(this.wire.topics.update(this.clientId), message, false, compact);
  }

  /**
   * @param {string} topic
   * @param {Uint8Array} message
   * @param {boolean} retain
   * @param {boolean} [bare]
   */
  async publish(topic, message, retain, bare = false) {
    if (!this.link) throw new Error("not connected");
    for (const chunk of this.wire.split(message, this.maxPacketBytes, bare)) {
      // Not awaited: mqtt.js keeps QoS 1 publishes in order and retries them itself; waiting for each PUBACK
      // would stall the message chain while the connection is down (the outbox covers a lost publish).
      this.link.publish(topic, chunk, retain).catch((err) => this.emit({ type: "error", kind: "publish",
        message: `publish on ${topic} failed: ${err instanceof Error ? err.message : err}` }));
      this.bytesSent += chunk.length;
    }
  }
}
