// Node module hooks that resolve the web app's bare imports ("fzstd", "mqtt", "onnxruntime-web") from
// web/node_modules, as the page's import map does in the browser (node has no import maps). Loaded by
// register_import_map.mjs: `node --import ./web/tools/register_import_map.mjs script.mjs`.
import { pathToFileURL } from "node:url";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const WEB_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
const PACKAGE_JSON = pathToFileURL(join(WEB_DIR, "package.json")).href;
const MAPPED = new Set(["fzstd", "mqtt", "onnxruntime-web"]);

export async function resolve(specifier, context, next) {
  if (MAPPED.has(specifier)) return next(specifier, { ...context, parentURL: PACKAGE_JSON });
  return next(specifier, context);
}
