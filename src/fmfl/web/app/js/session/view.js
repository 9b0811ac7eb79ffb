// What the person sees: joined or not, the federation, the round, local loss and accuracy, bytes sent,
// updates acknowledged, the outbox, and one clear message when something is wrong. The view only renders
// session events; it decides nothing.

/** @typedef {import("./session.js").SessionEvent} SessionEvent */

const MAX_LOG_LINES = 60;

export class View {
  /** @param {Document} doc */
  constructor(doc) {
    this.doc = doc;
    this.acked = 0;
  }

  /**
   * @param {string} id
   * @returns {HTMLElement}
   */
  el(id) {
    const node = this.doc.getElementById(id);
    if (!node) throw new Error(`the page lacks #${id}`);
    return node;
  }

  /**
   * @param {string} id
   * @param {string | number} text
   */
  set(id, text) {
    this.el(id).textContent = String(text);
  }

  /**
   * @param {"offline" | "connected" | "joined" | "error"} state
   * @param {string} text
   */
  connection(state, text) {
    this.el("joined").dataset.state = state;
    this.set("joined-text", text);
  }

  /**
   * Shows one message at the top of the page (null hides it).
   * @param {string | null} text
   * @param {"error" | "warn"} [level]
   */
  message(text, level = "error") {
    const banner = this.el("message");
    banner.hidden = text === null;
    banner.textContent = text ?? "";
    banner.dataset.level = level;
  }

  /**
   * @param {"empty" | "reading" | "ready" | "error"} state
   * @param {string} text
   */
  data(state, text) {
    const node = this.el("data-status");
    node.dataset.state = state;
    node.textContent = text;
  }

  /** @param {string} text */
  log(text) {
    const list = this.el("log");
    const item = this.doc.createElement("li");
    item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
    list.prepend(item);
    while (list.children.length > MAX_LOG_LINES) list.lastElementChild?.remove();
  }

  /**
   * @param {number | null} round
   * @param {Record<string, number>} m
   * @param {number | null} samples
   */
  showRound(round, m, samples) {
    if (round !== null && round !== undefined) this.set("round", round);
    if (Number.isFinite(m.train_loss)) this.set("loss", m.train_loss.toFixed(4));
    if (Number.isFinite(m.eval_accuracy)) this.set("accuracy", `${(100 * m.eval_accuracy).toFixed(1)} %`);
    if (samples) this.set("samples", samples);
  }

  /**
   * Renders one session event.
   * @param {SessionEvent} event
   * @param {{bytesSent: number, bytesReceived: number, pending: number}} counters
   */
  render(event, counters) {
    this.set("bytes-sent", formatBytes(counters.bytesSent));
    this.set("bytes-received", formatBytes(counters.bytesReceived));
    this.set("outbox", counters.pending);
    switch (event.type) {
      case "connected":
        this.connection(event.joined ? "joined" : "connected", event.joined ? "Joined" : "Connected, not joined yet");
        if (event.pending) this.log(`connected; resent ${event.pending} update(s) waiting for an Ack`);
        else this.log("connected to the broker");
        break;
      case "restored": {
        // What an earlier visit left: the last round's numbers and the Acks so far.
        this.acked = event.acked ?? 0;
        this.set("acked", this.acked);
        this.set("model-version", event.model_version ? event.model_version : "0 (initial)");
        this.showRound(event.round, event.metrics ?? {}, event.num_samples);
        if (event.pending) this.log(`${event.pending} update(s) from an earlier visit wait for an Ack`);
        break;
      }
      case "joined":
        this.connection("joined", "Joined");
        this.log(`joined as ${event.client_id}`);
        break;
      case "offline":
        this.connection("offline", "Not joined (connection lost, reconnecting)");
        this.log("connection lost");
        break;
      case "global":
        this.set("model-version", event.model_version);
        this.log(`global model v${event.model_version} received${event.form === "delta" ? " (as a delta)" : ""}`);
        break;
      case "task":
        this.set("round", event.round);
        if (event.selected) this.log(`round ${event.round}: selected`);
        break;
      case "training":
        this.set("round", event.round);
        this.log(`round ${event.round}: training on this device`);
        break;
      case "trained": {
        this.showRound(event.round, event.metrics ?? {}, event.num_samples);
        this.log(`round ${event.round}: trained, update of ${formatBytes(event.bytes)} ready`);
        break;
      }
      case "sent":
        this.log(`round ${event.round}: update sent`);
        break;
      case "resent":
        this.log(`round ${event.round}: update sent again (${event.why})`);
        break;
      case "acked":
        if (event.accepted) {
          this.acked += 1;
          this.set("acked", this.acked);
          this.log(`round ${event.round}: update accepted`);
        } else {
          this.log(`round ${event.round}: update refused (${event.reason}${event.detail ? `: ${event.detail}` : ""})`);
        }
        break;
      case "skipped":
        this.log(`round ${event.round} skipped: ${event.reason}`);
        break;
      case "error":
        this.message(event.message);
        if (event.kind === "refused" || event.kind === "unreachable") this.connection("error", "Not joined");
        this.log(event.message);
        break;
      default:
        break;
    }
  }
}

/**
 * @param {number} n
 * @returns {string}
 */
export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}
