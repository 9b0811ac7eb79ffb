"""manifest.js against src/fmfl/bundle/manifest.py: the browser re-derives the bundle id from Python's canonical
JSON (so it must print numbers and strings exactly as ``json.dumps`` does), and refuses what from_dict refuses."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from support.web_training_node import run_js

PARSE = """
  try {
    const m = await device.parseManifest(Uint8Array.from(Buffer.from(input, "base64")));
    output({bundle_id: m.bundle_id, numTrainable: m.numTrainable, labels: m.labels,
            offsets: m.trainable.map((t) => t.offset)});
  } catch (e) { output({error: e.name, message: e.message}); }
"""


def _parse(raw: bytes) -> dict[str, object]:
    return run_js(PARSE, base64.b64encode(raw).decode())  # type: ignore[no-any-return]


def test_real_manifest_parses_and_its_bundle_id_is_rederived(tiny_vit_bundle: Path) -> None:
    from fmfl.bundle.verify import verify_bundle

    manifest = verify_bundle(tiny_vit_bundle)
    got = _parse((tiny_vit_bundle / "manifest.json").read_bytes())
    assert got == {"bundle_id": manifest.bundle_id, "numTrainable": manifest.num_trainable, "labels": manifest.labels,
                   "offsets": [t.offset for t in manifest.trainable]}


def test_canonical_json_prints_like_python() -> None:
    value = {"b": [1e-08, 0.0001, 1e-05, 1e16, 123456789.125, -0.0, 2.5e-300, 1.0, 3, 1e22, 0.1 + 0.2],
             "a": "T-shirt/top \u00e9 \u00fc \u65e5\u672c \U0001f600 \n\t\"\\ \x01",
             "c": {"z": None, "y": True, "x": [], "w": {}},
             "d": 7.152557373046875e-07, "e": 10**20, "f": -17, "g": 1e-4 * 3}
    text = json.dumps(value, indent=1)  # the token forms a manifest file holds
    got = run_js("output(device.canonicalJsonText(input));", text)
    assert got == json.dumps(value, sort_keys=True, separators=(",", ":"))


def test_changed_field_wrong_schema_and_bad_offsets_are_refused(tiny_vit_bundle: Path) -> None:
    data = json.loads((tiny_vit_bundle / "manifest.json").read_text())
    changed = {**data, "optimizer": {**data["optimizer"], "lr": 0.5}}
    assert _parse(json.dumps(changed).encode()) == {
        "error": "BundleError", "message": "manifest.json: bundle_id does not match the manifest's content"}
    got = _parse(json.dumps({**data, "schema": "fmfl.bundle/1"}).encode())
    assert got["error"] == "BundleError"
    assert "schema 'fmfl.bundle/1'" in str(got["message"])
    assert "re-export" in str(got["message"])
    got = _parse(json.dumps({**data, "schema": "fmfl.bundle/9"}).encode())
    assert got == {"error": "BundleError",
                   "message": "manifest schema \"fmfl.bundle/9\" is not supported (this device reads 'fmfl.bundle/2')"}
    shifted = {**data, "trainable": [{**data["trainable"][0], "offset": 5}, *data["trainable"][1:]]}
    got = _parse(json.dumps(shifted).encode())
    assert got["error"] == "BundleError"
    assert "has offset 5, expected 0" in str(got["message"])
    got = _parse(b"{not json")
    assert got["error"] == "BundleError"
    assert str(got["message"]).startswith("manifest.json is not valid JSON")
