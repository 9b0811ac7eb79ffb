// `node --import ./web/tools/register_import_map.mjs script.mjs`: bare imports of the web app resolve
// from web/node_modules (see import_map_hooks.mjs).
import { register } from "node:module";

register("./import_map_hooks.mjs", import.meta.url);
