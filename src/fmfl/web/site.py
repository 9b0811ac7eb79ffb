"""The web device as a static folder: the app, the npm files it loads, one verified bundle and its settings.

Layout (what ``index.html``'s import map and the app expect; any static web server can host it)::

    index.html, style.css, js/**          the app (src/fmfl/web/app)
    vendor/ort/                           onnxruntime-web's wasm-only build
    vendor/mqtt/mqtt.esm.js               mqtt.js (MQTT over WebSockets)
    vendor/fzstd/index.mjs                zstd decompression
    bundle/                               the bundle, byte for byte (the page re-verifies every file)
    config.json                           broker URL, federation, topic prefix, bundle path, trust key

The bundle is verified here too (signature when a trust key is given, every file's sha256), so an operator
learns about a broken bundle when publishing it, not from a thousand phones.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization

from fmfl.bundle.manifest import MANIFEST_FILE, SIGNATURE_FILE
from fmfl.bundle.signing import load_public_key
from fmfl.bundle.verify import verify_bundle
from fmfl.errors import FmflError

APP_DIR = Path(__file__).parent / "app"
#: the npm project (package.json, lockfile) whose node_modules the site copies its vendor files from
NPM_PROJECT = Path(__file__).resolve().parents[3] / "web"
NODE_MODULES_ENV = "FMFL_WEB_NODE_MODULES"

#: site path -> path inside node_modules; the wasm-only onnxruntime-web build (no WebGPU/WebNN code to ship)
VENDOR_FILES: dict[str, str] = {
    "vendor/ort/ort.wasm.min.mjs": "onnxruntime-web/dist/ort.wasm.min.mjs",
    "vendor/ort/ort-wasm-simd-threaded.mjs": "onnxruntime-web/dist/ort-wasm-simd-threaded.mjs",
    "vendor/ort/ort-wasm-simd-threaded.wasm": "onnxruntime-web/dist/ort-wasm-simd-threaded.wasm",
    "vendor/mqtt/mqtt.esm.js": "mqtt/dist/mqtt.esm.js",
    "vendor/fzstd/index.mjs": "fzstd/esm/index.mjs",
}
BROKER_SCHEMES = ("ws", "wss")


class WebSiteError(FmflError):
    """The web device's site cannot be built (missing npm files, bad broker URL, bad bundle)."""


@dataclass(frozen=True)
class SiteConfig:
    """What the page reads from ``config.json``."""

    broker: str
    federation: str
    prefix: str = "fmfl"
    #: base64 of the raw 32-byte Ed25519 public key the bundle must be signed with; None: unsigned bundles
    trust_key: str | None = None

    def __post_init__(self) -> None:
        url = urlsplit(self.broker)
        if url.scheme not in BROKER_SCHEMES or not url.hostname:
            raise WebSiteError(
                f"the web device reaches the broker over WebSockets: --broker must be ws://HOST:PORT[/path] or "
                f"wss://HOST:PORT[/path], got {self.broker!r}"
            )
        if not self.federation or not self.prefix:
            raise WebSiteError("the federation and the topic prefix must not be empty")

    def to_json(self) -> str:
        return json.dumps({"broker": self.broker, "federation": self.federation, "prefix": self.prefix,
                           "bundle": "bundle/", "trust_key": self.trust_key}, indent=1) + "\n"


def raw_public_key_b64(pem: Path) -> str:
    """The base64 raw form WebCrypto imports (``importKey("raw", ..., "Ed25519")``) of a PEM public key."""
    key = load_public_key(pem)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def node_modules() -> Path:
    """Where the npm packages are: ``$FMFL_WEB_NODE_MODULES``, else ``web/node_modules`` of a source checkout."""
    configured = os.environ.get(NODE_MODULES_ENV)
    folder = Path(configured) if configured else NPM_PROJECT / "node_modules"
    if not folder.is_dir():
        raise WebSiteError(
            f"the web device's npm packages are not installed ({folder} is missing): run `scripts/install.sh web` "
            f"(npm ci in web/), or point {NODE_MODULES_ENV} at a node_modules folder holding onnxruntime-web, "
            "mqtt and fzstd"
        )
    return folder


def build_site(bundle: Path, out: Path, config: SiteConfig, trust_key: Path | None = None) -> Path:
    """Write the site for ``bundle`` into ``out`` (replaced if it exists) and return ``out``."""
    if (trust_key is None) != (config.trust_key is None):
        raise ValueError("give trust_key (the PEM) exactly when config.trust_key (its raw form) is set")
    manifest = verify_bundle(bundle, trust_key)
    modules = node_modules()
    missing = [src for src in VENDOR_FILES.values() if not (modules / src).is_file()]
    if missing:
        raise WebSiteError(f"{modules} lacks {', '.join(missing)}: reinstall with `scripts/install.sh web`")
    if out.exists():
        if not (out / "config.json").is_file():
            raise WebSiteError(f"{out} exists and is not a web device site (no config.json); refusing to replace it")
        shutil.rmtree(out)
    shutil.copytree(APP_DIR, out, ignore=shutil.ignore_patterns("__pycache__", "*.md"))
    for dest, src in VENDOR_FILES.items():
        (out / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(modules / src, out / dest)
    names = [MANIFEST_FILE, *sorted(manifest.files)]
    if (bundle / SIGNATURE_FILE).is_file():
        names.append(SIGNATURE_FILE)
    for name in names:
        (out / "bundle" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle / name, out / "bundle" / name)
    (out / "config.json").write_text(config.to_json())
    return out
