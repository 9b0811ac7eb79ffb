"""Runs the web device core's ES modules in node from pytest: oracle tests against numpy, Pillow and the Python
device for the code that needs no browser (rng, optimizer, preprocessing, npz, manifest)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

DEVICE_JS = Path(__file__).resolve().parents[2] / "src" / "fmfl" / "web" / "app" / "js" / "device"


def run_js(body: str, payload: Any = None, tmp_path: Path | None = None, timeout: float = 120) -> Any:
    """Run ``body`` (an async ES module body that sees ``device`` = js/device/index.js and ``input`` = the
    payload) in node and return what it passed to ``output(...)``. Fails (not skips) without node."""
    if shutil.which("node") is None:
        pytest.fail("node is missing (apt-get install nodejs): the web device's JS tests need it")
    source = (
        f"import * as device from {json.dumps((DEVICE_JS / 'index.js').as_uri())};\n"
        "import { readFileSync } from 'node:fs';\n"
        "const input = JSON.parse(readFileSync(0, 'utf8'));\n"
        "const big = (k, x) => (typeof x === 'bigint' ? x.toString() : x);\n"
        "const output = (v) => process.stdout.write('\\n@@' + JSON.stringify(v, big));\n"
        f"{body}\n"
    )
    proc = subprocess.run(
        ["node", "--input-type=module", "-e", source],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0 or "\n@@" not in proc.stdout:
        raise AssertionError(f"node failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.rsplit("\n@@", 1)[1])
