"""The page's own promises: a browser that cannot run the device, a link without an identity and a bundle that
fails verification each get one clear message and nothing reaches the broker; a provisioned link (password and
Ed25519 key from `fmfl provision`) signs updates that a gateway with a device registry accepts, and leaves the
address bar without its secrets; photos picked with a label, or a folder of labelled photos, are read on the
page and the page joins."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmfl.bundle import verify_bundle
from fmfl.mqtt import make_client, parse_broker_url
from fmfl.protocol import Topics

pytestmark = pytest.mark.web

STATUS = "(async () => ({status: window.fmfl.status, banner: document.getElementById('message').textContent, " \
         "hash: location.hash, events: window.fmfl.events}))()"


class Everything:
    """Records every message published under the federation's topics (what the page sent, if anything)."""

    def __init__(self, url: str, federation: str) -> None:
        opts = parse_broker_url(url)
        self.topics: list[str] = []
        self.lock = threading.Lock()
        self.client = make_client("test-everything", opts, clean_session=True)
        self.client.on_message = self._on_message
        self.client.connect(opts.host, opts.port)
        self.client.subscribe(f"{Topics(federation).root}/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self.lock:
            self.topics.append(msg.topic)

    def close(self) -> list[str]:
        time.sleep(0.5)  # whatever was in flight arrives
        self.client.loop_stop()
        self.client.disconnect()
        with self.lock:
            return list(self.topics)


@pytest.mark.parametrize(("init", "lacks"), [
    ("delete window.WebAssembly", "WebAssembly"),
    ("Object.defineProperty(window, 'indexedDB', {value: undefined})", "IndexedDB"),
    ("Object.defineProperty(window.crypto, 'subtle', {value: undefined})", "WebCrypto"),
])
def test_a_browser_without_what_the_device_needs_gets_a_clear_message(
    tiny_vit_bundle: Path, ws_broker: Any, make_site: Any, browser: Any, init: str, lacks: str,
) -> None:
    site = make_site(tiny_vit_bundle, ws_broker.ws_url)
    watcher = Everything(ws_broker.url, browser.federation)
    report = browser.run_page(f"{site.url}index.html#client=web-1", init=init,
                              wait="window.fmfl && window.fmfl.status.error", result=STATUS, timeout_s=60)
    assert report["ok"], report
    result = report["result"]
    assert result["status"]["errorKind"] == "unsupported"
    assert f"lacks {lacks}" in result["banner"]
    assert "Nothing was downloaded or sent" in result["banner"]
    assert watcher.close() == []


def test_a_link_without_identity_asks_for_the_right_link(
    tiny_vit_bundle: Path, ws_broker: Any, make_site: Any, browser: Any,
) -> None:
    site = make_site(tiny_vit_bundle, ws_broker.ws_url)
    watcher = Everything(ws_broker.url, browser.federation)
    report = browser.run_page(f"{site.url}index.html", wait="window.fmfl && window.fmfl.status.error",
                              result=STATUS, timeout_s=60)
    assert report["ok"], report
    assert report["result"]["status"]["errorKind"] == "identity"
    assert "#client=" in report["result"]["banner"]
    assert watcher.close() == []


def test_a_tampered_bundle_is_refused_and_the_page_never_connects(
    tiny_vit_bundle: Path, fmnist_shard: Path, ws_broker: Any, make_site: Any, browser: Any,
) -> None:
    # Prepare: one byte of the served train-step graph changed after `fmfl web` verified and copied it
    site = make_site(tiny_vit_bundle, ws_broker.ws_url)
    graph = site.root / "bundle" / "train_step.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0x01
    graph.write_bytes(bytes(data))
    watcher = Everything(ws_broker.url, browser.federation)

    # Execute
    report = browser.run_page(f"{site.url}index.html#client=web-1", upload={"#data-files": [fmnist_shard]},
                              wait="window.fmfl && window.fmfl.status.error", result=STATUS, timeout_s=60)

    # Assert: the message names the file, and not one MQTT message left the page
    assert report["ok"], report
    result = report["result"]
    assert result["status"]["errorKind"] == "bundle", result
    assert "failed verification" in result["banner"], result["banner"]
    assert "train_step.onnx" in result["banner"], result["banner"]
    assert not result["status"]["connected"]
    assert watcher.close() == []


def test_a_provisioned_link_signs_updates_the_registry_gateway_accepts(
    tiny_vit_bundle: Path, fmnist_shard: Path, ws_broker: Any, make_site: Any, processes: Any, browser: Any,
    tmp_path: Path,
) -> None:
    # Prepare: fmfl provision writes the device's link fragment (password, PKCS#8 Ed25519 key) and the registry
    federation = browser.federation
    creds = tmp_path / "creds"
    provision = processes(tmp_path, "provision", ["provision", "--out", str(creds), "--devices", "web-1",
                                                  "--federation", federation])
    assert provision.wait(120) == 0, provision.output
    fragment = (creds / "devices" / "web-1" / "web-fragment").read_text().strip()
    assert fragment.startswith("#client=web-1&password=")
    assert "&key=" in fragment
    state = tmp_path / "gateway"
    gateway = processes(tmp_path, "aggregator", [
        "aggregator", "--bundle", str(tiny_vit_bundle), "--broker", ws_broker.url, "--federation", federation,
        "--state-dir", str(state), "--rounds", "1", "--clients-per-round", "1", "--min-clients", "1",
        "--over-select", "1.0", "--round-timeout", "180", "--start-timeout", "180", "--selection-window", "0",
        "--device-registry", str(creds / "devices.json"),
    ])
    site = make_site(tiny_vit_bundle, ws_broker.ws_url)

    # Execute
    report = browser.run_page(f"{site.url}index.html{fragment}", upload={"#data-files": [fmnist_shard]},
                              wait="window.fmfl && (window.fmfl.status.acked + window.fmfl.status.refused >= 1)",
                              result=STATUS, timeout_s=180)

    # Assert: accepted (an unsigned or badly signed update is refused by this gateway), secrets out of the URL
    assert report["ok"], report
    assert gateway.wait(60) == 0, gateway.output
    result = report["result"]
    acks = [e for e in result["events"] if e["type"] == "acked"]
    assert [(a["accepted"], a["reason"]) for a in acks] == [(True, "")], acks
    assert result["hash"] == "", "the link's secrets stayed in the address bar"
    lines = browser.read_metrics(state)
    assert [(m["round"], m["participants"]) for m in lines] == [(1, 1)], lines


def write_photos(shard: Path, folder: Path, count: int, label: int) -> list[Path]:
    """``count`` real Fashion-MNIST images of class ``label`` from the shard as PNG files (a camera roll)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    with np.load(shard) as data:
        images, labels = data["images"], data["labels"]
    picked = np.flatnonzero(labels == label)[:count]
    paths = []
    for i in picked:
        path = folder / f"photo-{i}.png"
        Image.fromarray(images[i].reshape(28, 28).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def test_photos_picked_with_a_label_and_a_folder_of_labelled_photos_join(
    tiny_vit_bundle: Path, fmnist_shard: Path, ws_broker: Any, make_site: Any, browser: Any, tmp_path: Path,
) -> None:
    # Prepare: 12 trousers as loose photos; a folder with one sub-folder per label (trousers and bags)
    site = make_site(tiny_vit_bundle, ws_broker.ws_url)
    manifest = verify_bundle(tiny_vit_bundle)
    trouser, bag = manifest.labels[1], manifest.labels[8]
    photos = write_photos(fmnist_shard, tmp_path / "roll", 12, 1)
    folder = tmp_path / "mine"
    write_photos(fmnist_shard, folder / trouser, 6, 1)
    write_photos(fmnist_shard, folder / bag, 6, 8)
    wait = "window.fmfl && (window.fmfl.status.joined || window.fmfl.status.error)"

    # Execute
    loose = browser.run_page(f"{site.url}index.html#client=web-1", select={"#data-label": trouser},
                             upload={"#data-files": photos}, wait=wait, result=STATUS, timeout_s=60)
    tree = browser.run_page(f"{site.url}index.html#client=web-2", upload={"#data-folder": [folder]},
                            wait=wait, result=STATUS, timeout_s=60)

    # Assert: both read on the page and joined; the folder's two labels came from the sub-folder names
    for report, samples, labels in ((loose, 12, 1), (tree, 12, 2)):
        assert report["ok"], report
        result = report["result"]
        assert result["status"]["error"] is None, result["status"]
        data = [e for e in result["events"] if e["type"] == "data"]
        assert [(d["samples"], d["labels"]) for d in data] == [(samples, labels)], data
        assert result["status"]["joined"]
