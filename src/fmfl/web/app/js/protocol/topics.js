/**
 * The MQTT topic layout of one federation (docs/protocol.md, section 2). Mirrors fmfl.protocol.topics.
 *
 *     {prefix}/{federation}/hello/{client_id}   ClientHello   device -> gateway   QoS 1, retained (1.2)
 *     {prefix}/{federation}/status/{client_id}  ClientStatus  device -> gateway   QoS 1, retained; the will
 *     {prefix}/{federation}/task                RoundTask     gateway -> devices  QoS 1, retained
 *     {prefix}/{federation}/global/{chunk}      GlobalModel   gateway -> devices  QoS 1, retained per chunk
 *     {prefix}/{federation}/delta/{chunk}       GlobalModel   gateway -> devices  QoS 1, retained per chunk (1.2:
 *                                                              the downlink delta, section 2b)
 *     {prefix}/{federation}/update/{client_id}  ClientUpdate  device -> gateway   QoS 1
 *     {prefix}/{federation}/ack/{client_id}     Ack           gateway -> device   QoS 1
 */
import { ProtocolError } from "./errors.js";
import { checkId } from "./ids.js";

const KINDS = ["hello", "status", "update", "ack"];

/** Topic names and subscription filters for one federation. */
export class Topics {
  /**
   * @param {string} federation
   * @param {string} [prefix] defaults to "fmfl"
   */
  constructor(federation, prefix = "fmfl") {
    this.prefix = checkId(prefix, "topic prefix");
    this.federation = checkId(federation, "federation");
    this.root = `${this.prefix}/${this.federation}`;
  }

  /** @param {string} clientId */
  hello(clientId) {
    return `${this.root}/hello/${checkId(clientId)}`;
  }

  /** Also the device's MQTT will topic (an offline ClientStatus, retained). @param {string} clientId */
  status(clientId) {
    return `${this.root}/status/${checkId(clientId)}`;
  }

  /** @param {string} clientId */
  update(clientId) {
    return `${this.root}/update/${checkId(clientId)}`;
  }

  /** @param {string} clientId */
  ack(clientId) {
    return `${this.root}/ack/${checkId(clientId)}`;
  }

  /** The retained RoundTask. */
  get task() {
    return `${this.root}/task`;
  }

  /** Where chunk `index` of the current GlobalModel is retained. @param {number} index */
  globalModelChunk(index) {
    if (!Number.isInteger(index) || index < 0 || index >= 2 ** 32) throw new RangeError(`chunk index ${index} out of range`);
    return `${this.root}/global/${index}`;
  }

  /** The filter a device subscribes to for the global model (all chunks). */
  get globalModel() {
    return `${this.root}/global/+`;
  }

  /** Where chunk `index` of the current downlink delta is retained (1.2, section 2b). @param {number} index */
  globalDeltaChunk(index) {
    if (!Number.isInteger(index) || index < 0 || index >= 2 ** 32) throw new RangeError(`chunk index ${index} out of range`);
    return `${this.root}/delta/${index}`;
  }

  /** The filter a delta-capable device subscribes to for the downlink deltas (all chunks). */
  get globalDelta() {
    return `${this.root}/delta/+`;
  }

  /**
   * What a device subscribes to, in order, before it says hello (section 2, "Device subscriptions"); a
   * delta-capable device adds globalDelta and drops globalModel while on deltas (section 2b).
   * @param {string} clientId
   * @returns {string[]}
   */
  deviceSubscriptions(clientId) {
    return [this.task, this.globalModel, this.ack(clientId)];
  }

  /**
   * `[kind, level]` of a topic in this federation, or ProtocolError `invalid_id`. Kinds: hello, status,
   * update, ack (level = the client id), task (level null), global and delta (level = the chunk index as a
   * string).
   * @param {string} topic
   * @returns {[string, string|null]}
   */
  parse(topic) {
    const head = this.root + "/";
    if (!topic.startsWith(head)) throw new ProtocolError("invalid_id", `topic ${JSON.stringify(topic.slice(0, 120))} is not under ${this.root}`);
    const levels = topic.slice(head.length).split("/");
    if (levels.length === 1 && levels[0] === "task") return ["task", null];
    if (levels.length === 2 && KINDS.includes(levels[0])) return [levels[0], checkId(levels[1])];
    if (levels.length === 2 && (levels[0] === "global" || levels[0] === "delta") && /^[0-9]+$/.test(levels[1])) return [levels[0], levels[1]];
    throw new ProtocolError("invalid_id", `topic ${JSON.stringify(topic.slice(0, 120))} is not an fmfl topic`);
  }

  /**
   * The reassembly source of a topic (section 3, rule 2): the topic without its chunk level, so every
   * `global/{i}` chunk of one model groups under `.../global` (and `delta/{i}` under `.../delta`); any
   * other topic is its own source.
   * @param {string} topic
   */
  source(topic) {
    const [kind] = this.parse(topic);
    return kind === "global" || kind === "delta" ? `${this.root}/${kind}` : topic;
  }
}

/**
 * Shorthand: the topics of `federation` under `prefix`.
 * @param {string} prefix
 * @param {string} federation
 */
export function topics(prefix, federation) {
  return new Topics(federation, prefix);
}
