// Opens one page in Debian's headless Chromium (puppeteer-core; no browser download) and prints a JSON result.
//
//   node web/tools/run_page.mjs --url URL [--viewport 390x844] [--select SELECTOR=VALUE]...
//        [--upload SELECTOR=FILE[,FILE...]]...
//        [--wait JS_EXPRESSION] [--result JS_EXPRESSION] [--screenshot PNG] [--timeout MS]
//        [--init JS_SOURCE] [--reload-when JS_EXPRESSION [--wait-after-reload JS_EXPRESSION]]
//        [--profile DIR] [--chromium PATH]
//
// --profile keeps the browser profile (IndexedDB included) in DIR, so a later run is the same browser coming
// back (the default is a fresh, throwaway profile); --init runs before every document of the page (e.g.
// "delete window.WebAssembly" to play an old browser);
// --select chooses an option of a <select> (waiting until the page has that option); --upload puts local
// files into an <input type=file> (as a person picking them would); --wait is awaited
// (polled until truthy), then --reload-when (if given) is awaited, the page reloaded (the files picked before
// are gone, as after a real reload) and --wait-after-reload awaited; --result is evaluated last.
// stdout: one JSON object {ok, result, error, memory, console, page_errors, reloaded, seconds} (memory: the
// renderer's peak RSS and the page's JS heap when the result was taken); exit status 0 when
// every awaited expression became true in time, 1 otherwise (the result is still printed).

import { existsSync, readdirSync, readFileSync } from "node:fs";
import puppeteer from "puppeteer-core";

/**
 * The peak resident memory (VmHWM) of the browser's renderer processes (the page's WebAssembly heap, its
 * JavaScript and its onnxruntime sessions live there), read from /proc; null where /proc is not Linux's.
 * @param {number | undefined} browserPid
 */
function rendererPeakRss(browserPid) {
  if (!browserPid || !existsSync("/proc")) return null;
  const parents = new Map();
  const renderers = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = readFileSync(`/proc/${name}/status`, "utf8");
      parents.set(Number(name), Number(/PPid:\s+(\d+)/.exec(status)?.[1] ?? 0));
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes("--type=renderer")) {
        renderers.push([Number(name), 1024 * Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0)]);
      }
    } catch { /* the process ended meanwhile */ }
  }
  const descends = (pid) => {
    for (let p = pid, n = 0; p > 1 && n < 64; p = parents.get(p) ?? 0, n++) if (p === browserPid) return true;
    return false;
  };
  const peaks = renderers.filter(([pid]) => descends(pid)).map(([, rss]) => rss);
  return peaks.length ? Math.max(...peaks) : null;
}

/** @param {string[]} argv */
function parseArgs(argv) {
  const args = { viewport: "390x844", upload: [], select: [], timeout: 120000, chromium: "/usr/bin/chromium" };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "").replace(/-(.)/g, (_, c) => c.toUpperCase());
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${argv[i]} needs a value`);
    if (key === "upload" || key === "select") args[key].push(value);
    else args[key] = key === "timeout" ? Number(value) : value;
  }
  if (!args.url) throw new Error("--url is required");
  return args;
}

const args = parseArgs(process.argv.slice(2));
const started = Date.now();
const consoleLines = [];
const pageErrors = [];
const [width, height] = args.viewport.split("x").map(Number);
const browser = await puppeteer.launch({
  executablePath: args.chromium, headless: true, userDataDir: args.profile,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let out = { ok: false, result: null, error: null, reloaded: false };
try {
  const page = await browser.newPage();
  await page.setViewport({ width, height, deviceScaleFactor: 1, isMobile: width < 600, hasTouch: width < 600 });
  page.on("console", (m) => consoleLines.push(m.text().slice(0, 2000)));
  page.on("pageerror", (e) => pageErrors.push(String(e && e.message ? e.message : e)));
  if (args.init) await page.evaluateOnNewDocument(args.init);
  await page.goto(args.url, { waitUntil: "load", timeout: args.timeout });
  for (const spec of args.select) {
    const eq = spec.indexOf("=");
    const [selector, value] = [spec.slice(0, eq), spec.slice(eq + 1)];
    await page.waitForSelector(`${selector} option[value="${value.replace(/"/g, '\\"')}"]`, { timeout: args.timeout });
    await page.select(selector, value);
  }
  for (const spec of args.upload) {
    const eq = spec.indexOf("=");
    const input = await page.waitForSelector(spec.slice(0, eq), { timeout: args.timeout });
    await input.uploadFile(...spec.slice(eq + 1).split(","));
  }
  if (args.wait) await page.waitForFunction(args.wait, { timeout: args.timeout, polling: 100 });
  if (args.reloadWhen) {
    await page.waitForFunction(args.reloadWhen, { timeout: args.timeout, polling: 20 });
    await page.reload({ waitUntil: "load" });
    out.reloaded = true;
    if (args.waitAfterReload) {
      await page.waitForFunction(args.waitAfterReload, { timeout: args.timeout, polling: 100 });
    }
  }
  if (args.result) out.result = await page.evaluate(args.result);
  out.memory = { renderer_peak_rss_bytes: rendererPeakRss(browser.process()?.pid),
                 js_heap_used_bytes: (await page.metrics()).JSHeapUsedSize };
  if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: false });
  out.ok = true;
} catch (err) {
  out.error = String(err && err.stack ? err.stack : err);
} finally {
  await browser.close();
}
out = { ...out, console: consoleLines, page_errors: pageErrors, seconds: (Date.now() - started) / 1000 };
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(out.ok ? 0 : 1);
