// The page's entry point. It checks the browser first with nothing but built-ins, so a browser without
// WebAssembly, IndexedDB or WebCrypto gets a clear message instead of a module that fails to load; only then
// does it load the app (onnxruntime-web, mqtt.js and the device modules) with a dynamic import.

import { missingFeatures } from "./session/support.js";
import { View } from "./session/view.js";
import { EventLog } from "./session/events.js";

const view = new View(document);
const events = new EventLog(view);
/** @type {any} */ (globalThis).fmfl = events.api;

const missing = missingFeatures(globalThis);
if (missing.length) {
  events.emit({ type: "error", kind: "unsupported",
    message: `This browser cannot run the training: it lacks ${missing.join(", ")}. Nothing was downloaded or sent.` });
} else {
  import("./session/app.js")
    .then((app) => app.start({ view, events }))
    .catch((err) => events.emit({ type: "error", kind: "internal",
      message: `The page failed to start: ${err instanceof Error ? err.message : err}` }));
}
