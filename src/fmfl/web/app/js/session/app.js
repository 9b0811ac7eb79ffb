// The web device, assembled: settings (config.json), identity (URL fragment, then IndexedDB), the verified
// bundle, the person's data, the session state machine and its MQTT connection.
//
// Order matters for the promises the page makes: the bundle is verified before anything of it is used and
// before the page connects; bad data is refused before it reaches the trainer; nothing the session holds in
// its outbox is ever deleted by an error here (only an Ack removes an entry, js/session/device_state.js).

import * as ort from "onnxruntime-web";
import { BundleError, DataError, loadBundle, openStore } from "../device/index.js";
import { DeviceState } from "./device_state.js";
import { IdentityError, resolveIdentity } from "./identity.js";
import { DeviceSession } from "./session.js";
import { Store } from "./store.js";
import { hasEd25519 } from "./support.js";
import { BrowserTrainer, describeData, pickedData } from "./trainer.js";
import { Transport } from "./transport.js";
import { makeWire } from "./wire.js";

/** @typedef {import("./view.js").View} View */
/** @typedef {import("./events.js").EventLog} EventLog */
/** @typedef {{broker: string, federation: string, prefix: string, bundle: string, trust_key: string | null,
 *              max_packet_bytes?: number, resend_after_s?: number}} SiteSettings */

const RESEND_CHECK_MS = 1000;

class Stop extends Error {}

/**
 * @param {EventLog} events
 * @param {string} kind
 * @param {string} message
 * @returns {never}
 */
function fail(events, kind, message) {
  events.emit({ type: "error", kind, message });
  throw new Stop(message);
}

/**
 * @param {EventLog} events
 * @returns {Promise<SiteSettings>}
 */
async function loadSettings(events) {
  let response;
  try {
    response = await fetch("config.json", { cache: "no-store" });
  } catch (err) {
    fail(events, "config", `Cannot load config.json: ${err}`);
  }
  if (!response.ok) fail(events, "config", `Cannot load config.json (HTTP ${response.status}).`);
  return response.json();
}

/**
 * Starts the device in this page.
 * @param {{view: View, events: EventLog}} parts
 */
export async function start({ view, events }) {
  try {
    await run(view, events);
  } catch (err) {
    if (!(err instanceof Stop)) throw err;
  }
}

/**
 * @param {View} view
 * @param {EventLog} events
 */
async function run(view, events) {
  const settings = await loadSettings(events);
  view.set("federation", settings.federation);
  if (!(await hasEd25519(crypto.subtle))) {
    fail(events, "unsupported", "This browser's WebCrypto has no Ed25519 (needed to check the model's signature "
      + "and to sign updates): update the browser. Nothing was downloaded or sent.");
  }
  const store = await Store.open();
  let identity;
  try {
    identity = await resolveIdentity(store, location, history);
  } catch (err) {
    if (!(err instanceof IdentityError)) throw err;
    fail(events, "identity", `The link's identity is not usable: ${err.message}`);
  }
  if (identity === null) {
    fail(events, "identity", "This page needs the link you were given (it ends in #client=...): open that link.");
  }
  view.set("client", identity.clientId);

  // Absolute: onnxruntime-web resolves a relative path against its own module's URL (vendor/ort/), not the page.
  ort.env.wasm.wasmPaths = new URL("vendor/ort/", location.href).href;
  ort.env.wasm.numThreads = 1; // threads need cross-origin isolation and cost more than they give a small graph
  const cache = await openStore();
  let bundle;
  try {
    bundle = await loadBundle(settings.bundle, { trustKey: settings.trust_key, cache });
  } catch (err) {
    if (!(err instanceof BundleError)) throw err;
    fail(events, "bundle", `The model failed verification, so it was not used and nothing was sent: ${err.message}`);
  }
  events.emit({ type: "bundle", bundle_id: bundle.manifest.bundle_id, bytes_downloaded: bundle.stats.bytesDownloaded,
    bytes_from_cache: bundle.stats.bytesFromCache, seconds: bundle.stats.seconds });

  const state = new DeviceState(store, identity.clientId);
  const { dropped } = await state.load(bundle.manifest.bundle_id);
  if (dropped) {
    events.emit({ type: "notice", message: `A new model bundle replaced the old one: ${dropped} update(s) for `
      + "the old bundle were dropped (the gateway can no longer accept them)." });
  }
  const wire = makeWire(settings.federation, settings.prefix ?? "fmfl");
  const trainer = new BrowserTrainer({ ort, bundle, cache, bundleUrl: settings.bundle, trustKey: settings.trust_key });
  const session = new DeviceSession({
    identity, wire, trainer, state, capabilities: trainer.capabilities(),
    maxPacketBytes: settings.max_packet_bytes, resendAfterS: settings.resend_after_s,
    emit: (event) => events.emit(event),
  });
  events.track(() => ({ bytesSent: session.bytesSent, bytesReceived: session.bytesReceived,
    pending: session.pendingCount }));
  await session.init();
  const api = /** @type {any} */ (globalThis).fmfl;
  api.session = session;
  // For tests and drivers: what the outbox holds, with a digest of each entry's exact bytes.
  api.outbox = async () => Promise.all((await state.pending()).map(async (e) => ({
    round: e.round, update_id: e.updateId, bytes: e.message.length, compact: e.compact,
    sha256: Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", e.message)),
      (b) => b.toString(16).padStart(2, "0")).join(""),
  })));

  const transport = new Transport({
    url: settings.broker, clientId: identity.clientId, username: identity.username, password: identity.password,
    will: { topic: wire.topics.status(identity.clientId), payload: wire.offlineStatus(identity.clientId) },
  }, {
    onConnect: () => session.onConnect(transport),
    onMessage: (topic, payload) => session.onMessage(topic, payload),
    onRefused: (code, message, credentials) => events.emit({ type: "error", kind: "refused", code,
      message: `${message}${credentials ? ": check the link's password, or ask for a new link" : ""}. `
        + `Nothing was sent; ${session.pendingCount} update(s) stay on this device until it can connect.` }),
    onUnreachable: (message) => events.emit({ type: "error", kind: "unreachable",
      message: `${message}. Nothing was sent; ${session.pendingCount} update(s) stay on this device.` }),
    onOffline: () => events.emit({ type: "offline" }),
  });
  transport.start();
  setInterval(() => session.resendIfDue(), RESEND_CHECK_MS);
  fillLabels(view, bundle.manifest.labels ?? []);
  watchDataInputs(view, events, trainer, session);
}

/**
 * The label choices for photos picked one by one: the manifest's label names.
 * @param {View} view
 * @param {string[]} labels
 */
function fillLabels(view, labels) {
  const select = /** @type {HTMLSelectElement} */ (view.el("data-label"));
  for (const name of labels) {
    const option = view.doc.createElement("option");
    option.value = name;
    option.textContent = name;
    select.append(option);
  }
}

/**
 * The data picker: files (images or one .npz) or a folder (one sub-folder per label).
 * @param {View} view
 * @param {EventLog} events
 * @param {BrowserTrainer} trainer
 * @param {DeviceSession} session
 */
function watchDataInputs(view, events, trainer, session) {
  for (const id of ["data-files", "data-folder"]) {
    const input = /** @type {HTMLInputElement} */ (view.el(id));
    const onPick = async () => {
      const files = Array.from(input.files ?? []);
      if (!files.length) return;
      const label = /** @type {HTMLSelectElement} */ (view.el("data-label")).value || null;
      view.data("reading", `Reading ${files.length} file(s) on this device...`);
      try {
        const summary = await trainer.setData(pickedData(files, id === "data-folder", label));
        view.data("ready", describeData(summary));
        view.message(null);
        events.emit({ type: "data", ...summary });
        await session.onDataReady();
      } catch (err) {
        // Whatever went wrong, the previous data (if any) stays in use and the outbox is untouched.
        const known = err instanceof DataError;
        const text = err instanceof Error ? err.message : String(err);
        const kind = known ? (/label/i.test(text) ? "labels" : "data") : "internal";
        view.data("error", "This data cannot be used.");
        events.emit({ type: "error", kind, message: `The picked data cannot be used: ${text}. `
          + "Nothing was uploaded; pick other files." });
      }
    };
    input.addEventListener("change", onPick);
    // Files picked while the bundle was still loading fired their change event before anyone listened.
    if (input.files && input.files.length) onPick();
  }
}
