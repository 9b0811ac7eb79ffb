// N web devices in ONE headless Chromium (Debian's; puppeteer-core, no browser download), for `fmfl demo`.
//
//   node web/tools/web_clients.mjs --site URL --clients CLIENTS_JSON [--viewport 390x844] [--chromium PATH]
//        [--screenshots DIR]
//
// CLIENTS_JSON: a file, or the JSON itself: [{"id": "web-1", "shard": "/path/shard-1.npz",
//                "password": "...", "key": "<base64 Ed25519 seed or PKCS#8>"}, ...] (password, key optional).
// Page i lives in its own browser context (its own IndexedDB: its outbox, model and identity), opens
// `<site>/index.html#client=<id>&password=...&key=...` and gets shard i picked into its data input. Every event
// of every page is printed as one JSON line on stdout, {"client": ID, "type": ..., ...}, with the types
// joined, global, trained, sent, resent, acked, skipped and error (plus "ready" once all pages are open and
// "exit" at the end). Runs until SIGTERM or SIGINT, then (with --screenshots) saves each page as DIR/<id>.png,
// closes the browser and exits 0.

import { readFileSync, existsSync } from "node:fs";
import puppeteer from "puppeteer-core";

const REPORTED = new Set(["joined", "global", "trained", "sent", "resent", "acked", "skipped", "error"]);
const EVENT_PREFIX = "fmfl-event ";

/** @param {string[]} argv */
function parseArgs(argv) {
  const args = { viewport: "390x844", chromium: "/usr/bin/chromium" };
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i + 1] === undefined) throw new Error(`${argv[i]} needs a value`);
    args[argv[i].replace(/^--/, "")] = argv[i + 1];
  }
  if (!args.site || !args.clients) throw new Error("usage: web_clients.mjs --site URL --clients CLIENTS_JSON");
  const text = existsSync(args.clients) ? readFileSync(args.clients, "utf8") : args.clients;
  args.clients = JSON.parse(text);
  if (!Array.isArray(args.clients) || !args.clients.length) throw new Error("--clients must list at least one");
  return args;
}

/** @param {Record<string, unknown>} line */
function print(line) {
  process.stdout.write(JSON.stringify({ time: Date.now() / 1000, ...line }) + "\n");
}

/** @param {{id: string, password?: string, key?: string}} c */
function fragment(c) {
  const params = new URLSearchParams({ client: c.id });
  if (c.password) params.set("password", c.password);
  if (c.key) params.set("key", c.key);
  return params.toString();
}

const args = parseArgs(process.argv.slice(2));
const [width, height] = args.viewport.split("x").map(Number);
const site = args.site.endsWith("/") ? args.site : `${args.site}/`;
const browser = await puppeteer.launch({
  executablePath: args.chromium, headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  // This script closes the browser itself on a signal, after the screenshots (puppeteer would close it first).
  handleSIGTERM: false, handleSIGINT: false, handleSIGHUP: false,
});
/** @type {{id: string, page: import("puppeteer-core").Page}[]} */
const opened = [];
let stopping = false;
async function stop(signal) {
  if (stopping) return;
  stopping = true;
  try {
    if (args.screenshots) {
      for (const { id, page } of opened) {
        await page.screenshot({ path: `${args.screenshots}/${id}.png` }).catch((err) =>
          print({ client: id, type: "error", kind: "driver", message: `screenshot failed: ${err}` }));
      }
    }
    await browser.close();
  } finally {
    print({ client: null, type: "exit", signal });
    process.exit(0);
  }
}
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));

try {
  for (const c of args.clients) {
    const context = await browser.createBrowserContext(); // isolated storage: one device per context
    const page = await context.newPage();
    opened.push({ id: c.id, page });
    await page.setViewport({ width, height, isMobile: width < 600, hasTouch: width < 600 });
    page.on("console", (m) => {
      const text = m.text();
      if (!text.startsWith(EVENT_PREFIX)) return;
      try {
        const event = JSON.parse(text.slice(EVENT_PREFIX.length));
        if (REPORTED.has(event.type)) print({ client: c.id, ...event });
      } catch {
        // a console line that only looks like an event: not ours
      }
    });
    page.on("pageerror", (e) => print({ client: c.id, type: "error", kind: "page", message: String(e.message ?? e) }));
    await page.goto(`${site}index.html#${fragment(c)}`, { waitUntil: "load" });
    if (c.shard) {
      const input = await page.waitForSelector("#data-files");
      await input.uploadFile(c.shard);
    }
  }
  print({ client: null, type: "ready", clients: args.clients.length });
} catch (err) {
  print({ client: null, type: "error", kind: "driver", message: String(err && err.stack ? err.stack : err) });
  await browser.close();
  process.exit(1);
}
