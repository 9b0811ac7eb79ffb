"""``fmfl web``'s site: what it writes, what it refuses (nothing written), and how it serves files."""

from __future__ import annotations

import base64
import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from fmfl.bundle.signing import generate_keypair, load_private_key, sign
from fmfl.bundle.verify import BundleError
from fmfl.cli import main
from fmfl.web.server import SiteServer
from fmfl.web.site import NODE_MODULES_ENV, VENDOR_FILES, SiteConfig, WebSiteError, build_site, raw_public_key_b64

CONFIG = SiteConfig(broker="ws://127.0.0.1:9001", federation="demo")


def test_site_holds_app_vendor_files_bundle_and_config(tiny_vit_bundle: Path, tmp_path: Path) -> None:
    out = build_site(tiny_vit_bundle, tmp_path / "site", CONFIG)
    for name in VENDOR_FILES:
        assert (out / name).stat().st_size > 0, name
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    for name in manifest["files"]:
        assert (out / "bundle" / name).read_bytes() == (tiny_vit_bundle / name).read_bytes()
    assert json.loads((out / "config.json").read_text()) == {
        "broker": "ws://127.0.0.1:9001", "federation": "demo", "prefix": "fmfl", "bundle": "bundle/", "trust_key": None}


def test_signed_bundle_carries_signature_and_raw_trust_key(tiny_vit_bundle: Path, tmp_path: Path) -> None:
    bundle = shutil.copytree(tiny_vit_bundle, tmp_path / "bundle")
    private, public = generate_keypair(tmp_path / "keys" / "signer")
    (bundle / "manifest.sig").write_bytes(sign(load_private_key(private), (bundle / "manifest.json").read_bytes()))
    raw = raw_public_key_b64(public)
    assert len(base64.b64decode(raw)) == 32  # what WebCrypto's importKey("raw", ..., "Ed25519") takes
    config = SiteConfig(broker="wss://gw.example:8884", federation="f", trust_key=raw)
    out = build_site(bundle, tmp_path / "site", config, public)
    assert (out / "bundle" / "manifest.sig").read_bytes() == (bundle / "manifest.sig").read_bytes()
    assert json.loads((out / "config.json").read_text())["trust_key"] == raw


def test_tampered_bundle_is_refused_and_nothing_written(tiny_vit_bundle: Path, tmp_path: Path) -> None:
    bundle = shutil.copytree(tiny_vit_bundle, tmp_path / "bundle")
    with (bundle / "train_step.onnx").open("r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01")
    with pytest.raises(BundleError, match=r"train_step.onnx does not match its sha256"):
        build_site(bundle, tmp_path / "site", CONFIG)
    assert not (tmp_path / "site").exists()


def test_unsigned_bundle_refused_when_a_trust_key_is_given(tiny_vit_bundle: Path, tmp_path: Path) -> None:
    _, public = generate_keypair(tmp_path / "keys" / "signer")
    config = SiteConfig(broker="ws://h:1", federation="f", trust_key=raw_public_key_b64(public))
    with pytest.raises(BundleError, match="unsigned"):
        build_site(tiny_vit_bundle, tmp_path / "site", config, public)
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize("broker", ["mqtt://127.0.0.1:1883", "http://h:80", "ws://", "127.0.0.1:9001"])
def test_broker_must_be_a_websockets_url(broker: str) -> None:
    with pytest.raises(WebSiteError, match="over WebSockets"):
        SiteConfig(broker=broker, federation="demo")


def test_missing_npm_packages_name_the_fix(tiny_vit_bundle: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NODE_MODULES_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(WebSiteError, match=r"scripts/install.sh web"):
        build_site(tiny_vit_bundle, tmp_path / "site", CONFIG)
    assert not (tmp_path / "site").exists()


def test_an_existing_folder_that_is_not_a_site_is_not_replaced(tiny_vit_bundle: Path, tmp_path: Path) -> None:
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(WebSiteError, match="not a web device site"):
        build_site(tiny_vit_bundle, precious, CONFIG)
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_rebuild_replaces_a_previous_site(tiny_vit_bundle: Path, tmp_path: Path) -> None:
    out = build_site(tiny_vit_bundle, tmp_path / "site", CONFIG)
    (out / "stale.txt").write_text("old")
    build_site(tiny_vit_bundle, out, SiteConfig(broker="ws://127.0.0.1:1", federation="other"))
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "config.json").read_text())["federation"] == "other"


def test_server_sends_wasm_type_and_isolation_headers(tiny_vit_bundle: Path, tmp_path: Path) -> None:
    out = build_site(tiny_vit_bundle, tmp_path / "site", CONFIG)
    with SiteServer(out) as server:
        with urllib.request.urlopen(server.url + "vendor/ort/ort-wasm-simd-threaded.wasm") as response:
            assert response.headers["Content-Type"] == "application/wasm"
            assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
            assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert response.read()[:4] == b"\x00asm"
        with urllib.request.urlopen(server.url + "vendor/mqtt/mqtt.esm.js") as response:
            assert response.headers["Content-Type"] == "text/javascript"


def test_cli_writes_the_site(tiny_vit_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["web", "--bundle", str(tiny_vit_bundle), "--broker", "ws://127.0.0.1:9001", "--federation", "demo",
               "--out", str(tmp_path / "site")])
    assert rc == 0
    assert "written to" in capsys.readouterr().out
    assert (tmp_path / "site" / "config.json").is_file()


def test_cli_refuses_half_tls(tiny_vit_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["web", "--bundle", str(tiny_vit_bundle), "--broker", "ws://127.0.0.1:9001", "--federation", "demo",
               "--out", str(tmp_path / "site"), "--tls-cert", str(tmp_path / "c.pem")])
    assert rc == 2
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err
    assert not (tmp_path / "site").exists()
