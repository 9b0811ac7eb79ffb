"""Runs the web device's protocol modules (src/fmfl/web/app/js/protocol) in node from pytest, for the oracle
and golden tests that need no browser. The page's bare imports ("fzstd") resolve from web/node_modules through
web/tools/register_import_map.mjs, as the import map does in the browser."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PROTOCOL_JS = REPO / "src" / "fmfl" / "web" / "app" / "js" / "protocol" / "index.js"
REGISTER = REPO / "web" / "tools" / "register_import_map.mjs"

# Helpers every body may use: hex <-> bytes, and a JSON-safe view of a ProtocolError.
_PRELUDE = """
const hex = (b) => P.toHex(b);
const unhex = (h) => P.fromHex(h);
const f32hex = (a) => P.toHex(new Uint8Array(Float32Array.from(a).buffer));
const f32 = (h) => new Float32Array(unhex(h).slice().buffer);
const f64hex = (a) => P.toHex(new Uint8Array(Float64Array.from(a).buffer));
const attempt = (fn) => {
  try { return { ok: fn() }; } catch (e) {
    if (e instanceof P.ProtocolError) return { error: e.reason, message: e.message };
    return { crash: String(e && e.stack || e) };
  }
};
"""


def run_protocol_js(body: str, payload: Any = None, timeout: float = 300) -> Any:
    """Run ``body`` (an async ES module body that sees ``P`` = js/protocol/index.js and ``input`` = the
    payload) in node and return what it passed to ``output(...)``. Fails (not skips) without node or fzstd."""
    if shutil.which("node") is None:
        pytest.fail("node is missing (apt-get install nodejs): the web device's protocol tests need it")
    if not (REPO / "web" / "node_modules" / "fzstd").is_dir():
        pytest.fail("web/node_modules lacks fzstd (scripts/install.sh web)")
    source = (
        f"import * as P from {json.dumps(PROTOCOL_JS.as_uri())};\n"
        "import { readFileSync } from 'node:fs';\n"
        "const input = JSON.parse(readFileSync(0, 'utf8'));\n"
        "const big = (k, x) => (typeof x === 'bigint' ? x.toString() : x);\n"
        "const output = (v) => process.stdout.write('\\n@@' + JSON.stringify(v, big));\n"
        f"{_PRELUDE}\n{body}\n"
    )
    proc = subprocess.run(
        ["node", "--import", REGISTER.as_uri(), "--input-type=module", "-e", source],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    if proc.returncode != 0 or "\n@@" not in proc.stdout:
        raise AssertionError(f"node failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.rsplit("\n@@", 1)[1])
