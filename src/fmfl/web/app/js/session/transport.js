// MQTT over WebSockets with mqtt.js, as the Python device uses MQTT (src/fmfl/mqtt/connection.py):
// MQTT 3.1.1, QoS 1 everywhere, a persistent session (clean = false) under the client id `fmfl-{client_id}`
// so the broker keeps Acks while the page is away, keep-alive 30 s, and the offline ClientStatus as the will
// (retained, QoS 1: docs/protocol.md section 2). mqtt.js reconnects by itself after a lost connection; it
// stops after a refused CONNACK, which is a configuration error (credentials) a retry cannot fix.

import mqtt from "mqtt";

/** Why the broker refused a CONNACK, by MQTT 3.1.1 return code and MQTT 5 reason code. */
const CONNACK_REASONS = {
  1: "the broker does not speak MQTT 3.1.1",
  2: "the broker rejected the client id",
  3: "the broker is unavailable",
  4: "the broker refused the user name or password",
  5: "the broker refused this device (not authorized)",
  128: "the broker refused the connection (unspecified error)",
  133: "the broker rejected the client id",
  134: "the broker refused the user name or password",
  135: "the broker refused this device (not authorized)",
  136: "the broker is unavailable",
  137: "the broker is busy",
  138: "this device is banned by the broker",
};
const CREDENTIAL_CODES = new Set([4, 5, 134, 135, 138]);

/**
 * A clear message for a CONNACK refusal code.
 * @param {number} code
 * @returns {string}
 */
export function connackMessage(code) {
  const reason = CONNACK_REASONS[/** @type {keyof typeof CONNACK_REASONS} */ (code)]
    ?? "the broker refused the connection";
  return `${reason} (CONNACK code ${code})`;
}

/**
 * @typedef {{url: string, clientId: string, username?: string | null, password?: string | null,
 *            will: {topic: string, payload: Uint8Array}, keepalive?: number, reconnectPeriodMs?: number,
 *            connectTimeoutMs?: number}} TransportOptions
 * @typedef {{onConnect: () => void, onMessage: (topic: string, payload: Uint8Array) => void,
 *            onRefused: (code: number, message: string, credentials: boolean) => void,
 *            onUnreachable: (message: string) => void, onOffline: () => void}} TransportHandlers
 */

/** One MQTT connection; every publish and subscription is QoS 1. */
export class Transport {
  /**
   * @param {TransportOptions} options
   * @param {TransportHandlers} handlers
   */
  constructor(options, handlers) {
    this.options = options;
    this.handlers = handlers;
    /** @type {any} */
    this.client = null;
    this.everConnected = false;
    this.wasConnected = false;
    this.unreachableShown = false;
    this.refused = false;
  }

  get connected() {
    return Boolean(this.client && this.client.connected);
  }

  /** Starts connecting; the handlers report the outcome (and every reconnect). */
  start() {
    const o = this.options;
    this.client = mqtt.connect(o.url, {
      clientId: `fmfl-${o.clientId}`,
      protocolVersion: 4,
      clean: false,
      keepalive: o.keepalive ?? 30,
      reconnectPeriod: o.reconnectPeriodMs ?? 2000,
      connectTimeout: o.connectTimeoutMs ?? 10000,
      username: o.username ?? undefined,
      password: o.password ?? undefined,
      will: { topic: o.will.topic, payload: toBuffer(o.will.payload), qos: 1, retain: true },
      // The page keeps its own outbox in IndexedDB and resends on connect: mqtt.js need not queue offline.
      queueQoSZero: false,
    });
    this.client.on("connect", () => {
      this.everConnected = true;
      this.wasConnected = true;
      this.unreachableShown = false;
      this.handlers.onConnect();
    });
    this.client.on("message", (/** @type {string} */ topic, /** @type {Uint8Array} */ payload) => {
      this.handlers.onMessage(topic, new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength));
    });
    this.client.on("error", (/** @type {any} */ err) => {
      if (typeof err?.code === "number" && err.code > 0 && /refused/i.test(String(err.message))) {
        this.refused = true;
        this.handlers.onRefused(err.code, connackMessage(err.code), CREDENTIAL_CODES.has(err.code));
      }
    });
    this.client.on("close", () => {
      if (this.refused) return;
      if (!this.everConnected) {
        // Once per streak of failed attempts: mqtt.js retries every reconnectPeriod, the message stays.
        if (this.unreachableShown) return;
        this.unreachableShown = true;
        this.handlers.onUnreachable(`cannot reach the broker at ${o.url} (retrying every `
          + `${Math.round((o.reconnectPeriodMs ?? 2000) / 1000)} s)`);
      } else if (this.wasConnected) {
        // Once per lost connection: each failed reconnect attempt closes again.
        this.wasConnected = false;
        this.handlers.onOffline();
      }
    });
  }

  /**
   * Subscribes to the filters (QoS 1) and resolves once the broker granted them.
   * @param {string[]} filters
   * @returns {Promise<void>}
   */
  async subscribe(filters) {
    const granted = await this.client.subscribeAsync(filters, { qos: 1 });
    const refused = (granted ?? []).filter((/** @type {any} */ g) => g.qos === 128);
    if (refused.length) {
      throw new Error(`the broker refused the subscription to ${refused.map((/** @type {any} */ g) => g.topic)}`);
    }
  }

  /**
   * @param {string[]} filters
   * @returns {Promise<void>}
   */
  async unsubscribe(filters) {
    await this.client.unsubscribeAsync(filters);
  }

  /**
   * Publishes one MQTT message at QoS 1 and resolves on its PUBACK.
   * @param {string} topic
   * @param {Uint8Array} payload
   * @param {boolean} [retain]
   * @returns {Promise<void>}
   */
  async publish(topic, payload, retain = false) {
    await this.client.publishAsync(topic, toBuffer(payload), { qos: 1, retain });
  }

  /**
   * A clean goodbye: the offline status (retained), then DISCONNECT.
   * @returns {Promise<void>}
   */
  async stop() {
    if (!this.client) return;
    try {
      if (this.client.connected) await this.publish(this.options.will.topic, this.options.will.payload, true);
    } finally {
      await this.client.endAsync();
    }
  }
}

/**
 * mqtt.js (its bundled Buffer) wants a Buffer or a string; a Uint8Array view is copied into one.
 * @param {Uint8Array} bytes
 * @returns {any}
 */
function toBuffer(bytes) {
  const B = /** @type {any} */ (globalThis).Buffer;
  return B ? B.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes;
}
