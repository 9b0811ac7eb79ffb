"""Edit a bundle and make its manifest consistent again (hashes, sizes, bundle id), as a careless or hostile
exporter would ship it: what the device then refuses is the content, not a broken hash."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fmfl.bundle.manifest import MANIFEST_FILE, SIGNATURE_FILE, Manifest
from fmfl.bundle.verify import sha256_file


def edited_bundle(src: Path, dst: Path, edit: Callable[[dict[str, Any], Path], None]) -> Path:
    """Copy ``src`` to ``dst``, let ``edit(manifest_dict, folder)`` change files or fields, then re-hash."""
    shutil.copytree(src, dst)
    (dst / SIGNATURE_FILE).unlink(missing_ok=True)
    raw = json.loads((dst / MANIFEST_FILE).read_text())
    edit(raw, dst)
    raw["files"] = {
        name: {"sha256": sha256_file(dst / name), "size": (dst / name).stat().st_size} for name in raw["files"]
    }
    manifest = Manifest.from_dict(raw, check=False)
    manifest = dataclasses.replace(manifest, bundle_id=manifest.derive_bundle_id())
    (dst / MANIFEST_FILE).write_bytes(manifest.to_json())
    return dst
