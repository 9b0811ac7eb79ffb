"""Serve a web device site over HTTP: static files only, with the headers a training page needs.

``Cross-Origin-Opener-Policy``/``Cross-Origin-Embedder-Policy`` make the page cross-origin isolated, which
is what lets onnxruntime-web use SharedArrayBuffer (its multi-threaded wasm); ``no-cache`` makes browsers
revalidate, so a re-published bundle is never mixed with a stale copy of one of its files.
"""

from __future__ import annotations

import functools
import os
import ssl
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CONTENT_TYPES = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
    ".npy": "application/octet-stream",
    ".sig": "application/octet-stream",
    ".json": "application/json",
}


class SiteHandler(SimpleHTTPRequestHandler):
    def guess_type(self, path: str | os.PathLike[str]) -> str:
        return CONTENT_TYPES.get(Path(path).suffix.lower()) or super().guess_type(path)

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per file of every page load would drown the operator's log


class SiteServer:
    """A threaded HTTP(S) server for ``root`` on ``host:port`` (port 0: a free one), run in a daemon thread;
    ``tls`` is (certificate chain PEM, private key PEM)."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0,
                 tls: tuple[Path, Path] | None = None) -> None:
        handler = functools.partial(SiteHandler, directory=str(root))
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._scheme = "http"
        if tls is not None:
            # Phones reach the page by a LAN name, and WebCrypto (bundle and update signatures) exists only in
            # secure contexts: https, or http on localhost.
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            self._scheme = "https"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fmfl-web", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}/"

    def start(self) -> SiteServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> SiteServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
