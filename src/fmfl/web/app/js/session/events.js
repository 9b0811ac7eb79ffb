// The session's events, in one place: rendered by the view, kept for tests and drivers, and printed as one
// `fmfl-event {json}` console line each (web/tools/web_clients.mjs turns those into its JSON lines).

/** @typedef {import("./session.js").SessionEvent} SessionEvent */
/** @typedef {import("./view.js").View} View */

export const CONSOLE_PREFIX = "fmfl-event ";

export class EventLog {
  /** @param {View} view */
  constructor(view) {
    this.view = view;
    /** @type {SessionEvent[]} */
    this.events = [];
    /** What the page shows, as data (tests read it through `window.fmfl.status`). */
    this.status = { connected: false, joined: false, round: null, modelVersion: null, loss: null, accuracy: null,
      bytesSent: 0, bytesReceived: 0, acked: 0, refused: 0, pending: 0, error: null, errorKind: null,
      /** @type {string[]} */ errorKinds: [], dataReady: false };
    /** @type {() => {bytesSent: number, bytesReceived: number, pending: number}} */
    this.counters = () => ({ bytesSent: this.status.bytesSent, bytesReceived: this.status.bytesReceived,
      pending: this.status.pending });
    this.api = { events: this.events, status: this.status };
  }

  /** @param {() => {bytesSent: number, bytesReceived: number, pending: number}} counters */
  track(counters) {
    this.counters = counters;
  }

  /** @param {SessionEvent} event */
  emit(event) {
    const stamped = { ...event, t: Date.now() / 1000 };
    this.events.push(stamped);
    this.update(stamped);
    console.log(CONSOLE_PREFIX + JSON.stringify(stamped));
    this.view.render(stamped, this.counters());
  }

  /** @param {SessionEvent} e */
  update(e) {
    const s = this.status;
    const c = this.counters();
    s.bytesSent = c.bytesSent;
    s.bytesReceived = c.bytesReceived;
    s.pending = c.pending;
    if (e.type === "connected") Object.assign(s, { connected: true, joined: Boolean(e.joined), error: null,
      errorKind: null });
    if (e.type === "joined") s.joined = true;
    if (e.type === "restored") Object.assign(s, { acked: e.acked ?? 0, refused: e.refused ?? 0,
      round: e.round ?? null, loss: e.metrics?.train_loss ?? null, accuracy: e.metrics?.eval_accuracy ?? null });
    if (e.type === "offline") Object.assign(s, { connected: false, joined: false });
    if (e.type === "global") s.modelVersion = e.model_version;
    if (e.type === "task" || e.type === "training") s.round = e.round;
    if (e.type === "trained") Object.assign(s, { loss: e.metrics?.train_loss ?? null,
      accuracy: e.metrics?.eval_accuracy ?? null });
    if (e.type === "acked") {
      if (e.accepted) s.acked += 1;
      else s.refused += 1;
    }
    if (e.type === "data") s.dataReady = true;
    if (e.type === "error") {
      Object.assign(s, { error: e.message, errorKind: e.kind });
      if (!s.errorKinds.includes(e.kind)) s.errorKinds.push(e.kind);
    }
  }
}
