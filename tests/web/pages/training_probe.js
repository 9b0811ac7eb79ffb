// The probe's functions, awaited by puppeteer (run_page.mjs --result "probe.round(...)").
import * as ort from "onnxruntime-web";
import * as device from "./js/device/index.js";

// Resolved against the page: a relative wasmPaths is taken relative to ort.wasm.min.mjs itself.
ort.env.wasm.wasmPaths = new URL("./vendor/ort/", location.href).href;
ort.env.wasm.numThreads = 1;
ort.env.logLevel = "error";

/** @param {string} id */
const picked = (id) => Array.from(/** @type {HTMLInputElement} */ (document.getElementById(id)).files ?? []);

/** What a failed call reports: the error's class and message, never a hang. @param {any} e */
const failure = (e) => ({ error: e && e.name ? e.name : "Error", message: String(e && e.message ? e.message : e) });

/** @param {{kind: string, label?: string}} spec */
function dataInput(spec) {
  if (spec.kind === "npz") return { kind: "npz", file: picked("npz")[0] };
  return { kind: "images", files: picked(spec.kind === "folder" ? "folder" : "images"), label: spec.label };
}

/** @param {Float32Array} a */
const toBase64 = (a) => btoa(Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), (b) => String.fromCharCode(b)).join(""));

/** Counts how many onnxruntime sessions were created (a refused bundle must create none). */
let sessionsCreated = 0;
const create = ort.InferenceSession.create.bind(ort.InferenceSession);
ort.InferenceSession.create = async (...args) => { sessionsCreated += 1; return create(...args); };

const config = await (await fetch("config.json")).json();

window.probe = {
  sessionsCreated: () => sessionsCreated,
  ready: true,
  /** Open the device on the picked data and train one round on ``task``; timings for the benchmark. */
  async round(task, options = {}) {
    try {
      const t0 = performance.now();
      const cache = options.cacheName ? await device.openStore(options.cacheName) : null;
      const events = [];
      const dev = await device.WebDevice.open({ ort, bundleUrl: options.bundleUrl ?? config.bundle,
        trustKey: options.trustKey === undefined ? config.trust_key : options.trustKey,
        data: dataInput(options.data ?? { kind: "npz" }), cache, onProgress: (e) => events.push(e) });
      const tOpen = performance.now();
      const weights = options.weights ? Float32Array.from(options.weights) : dev.initialWeights;
      const result = await dev.localRound(task, weights);
      const tRound = performance.now();
      cache?.close();
      // base64 float32: exact and compact (run_page.mjs's report goes through a pipe)
      return { delta: toBase64(result.delta), stats: result.stats,
        metrics: result.metrics, numSamples: dev.numSamples, cacheInfo: dev.cacheInfo, bundleStats: dev.bundle.stats,
        openMs: tOpen - t0, roundMs: tRound - tOpen, pageToFirstStepMs: result.stats.first_step_at_ms,
        sessionsCreated, events: events.filter((e) => e.stage !== "bundle") };
    } catch (e) {
      return { ...failure(e), sessionsCreated };
    }
  },
  /** Only read and preprocess the picked data against the bundle's manifest. */
  async readData(spec) {
    try {
      const bundle = await device.loadBundle(config.bundle, { trustKey: config.trust_key });
      const data = await device.readLocalData(dataInput(spec), bundle.manifest);
      const [name] = Object.keys(data.inputs);
      return { n: data.length, labels: Array.from(data.labels ?? [], Number), labelNames: data.labelNames,
        shape: data.inputs[name].shape, pixels: Array.from(data.inputs[name].data.subarray(0, 4096)) };
    } catch (e) {
      return failure(e);
    }
  },
  /** A train step on NaN features: NonFiniteGradient, and the weights and optimizer state as before. */
  async nonFinite() {
    const bundle = await device.loadBundle(config.bundle, { trustKey: config.trust_key });
    const trainer = await device.WebTrainer.create(ort, bundle);
    const [name] = trainer.inputNames;
    const shape = [4, ...bundle.manifest.split.features[0].shape];
    const batch = { [name]: { data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(NaN), shape },
      labels: { data: new BigInt64Array(4), shape: [4] } };
    const before = trainer.getWeights();
    let error = null;
    try { await trainer.trainStep(batch); } catch (e) { error = failure(e); }
    const after = trainer.getWeights();
    return { ...error, unchanged: before.every((v, i) => Object.is(v, after[i])), optimizerSteps: trainer.optimizer.t ?? null };
  },
  /** Load (verify) the bundle only. */
  async load(options = {}) {
    try {
      const cache = options.cacheName ? await device.openStore(options.cacheName) : null;
      const b = await device.loadBundle(options.bundleUrl ?? config.bundle,
        { trustKey: options.trustKey === undefined ? config.trust_key : options.trustKey, cache });
      cache?.close();
      return { bundleId: b.manifest.bundle_id, stats: b.stats, sessionsCreated };
    } catch (e) {
      return { ...failure(e), sessionsCreated };
    }
  },
};
