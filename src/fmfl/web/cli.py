"""``fmfl web``: build the web device's site for one bundle and federation, and serve it (or write it out).

Only argparse at import time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8080


def register(sub: Any) -> None:
    p = sub.add_parser(
        "web",
        help="serve the web device (a page that trains in the browser) for a bundle and a federation",
        description="Build the web device's static site (the app, onnxruntime-web, mqtt.js, the bundle and "
        "config.json) and serve it over HTTP, or write it with --out for any web server. Phones open the page, "
        "pick their data, and join the federation over MQTT over WebSockets. See docs/web.md.",
    )
    p.add_argument("--bundle", required=True, type=Path, help="exported bundle folder")
    p.add_argument("--broker", required=True,
                   help="the broker's WebSockets URL as the browser reaches it: ws://HOST:PORT or wss://HOST:PORT")
    p.add_argument("--federation", required=True, help="federation name")
    p.add_argument("--prefix", default="fmfl", help="topic prefix (default fmfl)")
    p.add_argument("--trust-key", type=Path,
                   help="the bundle signer's Ed25519 public key (PEM); the page then refuses unsigned bundles")
    p.add_argument("--out", type=Path, help="write the site here; without --port, write it and exit")
    p.add_argument("--port", type=int, help=f"serve on this port (default {DEFAULT_PORT} when --out is not given)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1; 0.0.0.0 for phones on the network)")
    p.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate chain (PEM; e.g. one signed by "
                   "the CA of `fmfl provision`): phones need a secure origin for WebCrypto")
    p.add_argument("--tls-key", type=Path, help="the private key (PEM) of --tls-cert")
    p.set_defaults(handler=run_web)


def run_web(args: argparse.Namespace) -> int:
    from fmfl.errors import FmflError
    from fmfl.web.server import SiteServer
    from fmfl.web.site import SiteConfig, build_site, raw_public_key_b64

    if (args.tls_cert is None) != (args.tls_key is None):
        raise FmflError("--tls-cert and --tls-key go together")
    tls = None if args.tls_cert is None else (args.tls_cert, args.tls_key)
    trust = raw_public_key_b64(args.trust_key) if args.trust_key else None
    config = SiteConfig(broker=args.broker, federation=args.federation, prefix=args.prefix, trust_key=trust)
    with tempfile.TemporaryDirectory(prefix="fmfl-web-") as tmp:
        out = args.out or Path(tmp) / "site"
        build_site(args.bundle, out, config, args.trust_key)
        if args.out is not None and args.port is None:
            print(f"web device site written to {out} (serve it over HTTPS for phones: WebCrypto needs a secure "
                  "origin other than localhost)")
            return 0
        port = DEFAULT_PORT if args.port is None else args.port
        with SiteServer(out, args.host, port, tls) as server:
            print(f"web device: {server.url} (broker {args.broker}, federation {args.federation}); Ctrl-C stops",
                  flush=True)
            while True:
                time.sleep(3600)
