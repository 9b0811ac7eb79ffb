"""Bundle verification: run before ONNX Runtime parses a single byte of the bundle.

Order matters: the signature (when a trust key is given) covers manifest.json, and manifest.json
covers every other file by sha256, so a verified bundle is exactly what the workstation exported.
Symlinks and files the manifest does not list are refused, and so are ONNX files whose tensors refer
to external data (ONNX Runtime would follow such a reference anywhere on the device), so nothing
outside the verified set (an external-data file, a link to /etc/passwd) can be reached through it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fmfl.bundle.manifest import MANIFEST_FILE, SIGNATURE_FILE, Manifest
from fmfl.bundle.onnx_scan import ExternalDataError, has_external_data
from fmfl.bundle.signing import is_valid, load_public_key
from fmfl.errors import FmflError

CHUNK = 1 << 20


class BundleError(FmflError):
    """A bundle that is incomplete, tampered with, unsigned or signed by someone else."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _walk(root: Path) -> list[str]:
    names = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            raise BundleError(f"bundle {root}: {rel} is a symlink; bundles may not contain links")
        if path.is_file():
            names.append(rel)
        elif not path.is_dir():
            raise BundleError(f"bundle {root}: {rel} is not a regular file")
    return names


def verify_bundle(root: Path, trust_key: Path | None = None) -> Manifest:
    """Check a bundle's signature (when ``trust_key`` is given), file set and hashes; return its manifest."""
    root = Path(root)
    if root.is_symlink() or not root.is_dir():
        raise BundleError(f"bundle {root} is not a directory")
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"bundle {root}: {MANIFEST_FILE} is missing (is this an fmfl bundle?)")
    files = _walk(root)
    raw = manifest_path.read_bytes()
    if trust_key is not None:
        sig_path = root / SIGNATURE_FILE
        if not sig_path.is_file():
            raise BundleError(f"bundle {root} is unsigned ({SIGNATURE_FILE} missing) but a trust key is configured")
        if not is_valid(load_public_key(trust_key), sig_path.read_bytes(), raw):
            raise BundleError(
                f"bundle {root}: {SIGNATURE_FILE} does not verify with {trust_key} (manifest.json was changed "
                "or the bundle was signed with another key)"
            )
    try:
        manifest = Manifest.from_json(raw)
    except FmflError as exc:
        raise BundleError(f"bundle {root}: {MANIFEST_FILE}: {exc}") from exc
    expected = set(manifest.files)
    extra = [f for f in files if f not in expected and f not in (MANIFEST_FILE, SIGNATURE_FILE)]
    if extra:
        raise BundleError(f"bundle {root}: unexpected file(s) not listed in the manifest: {', '.join(extra)}")
    for name, meta in sorted(manifest.files.items()):
        path = root / name
        if not path.is_file():
            raise BundleError(f"bundle {root}: {name} is missing")
        if path.stat().st_size != int(meta["size"]) or sha256_file(path) != meta["sha256"]:
            raise BundleError(f"bundle {root}: {name} does not match its sha256 in the manifest (tampered or corrupt)")
    for name in sorted(manifest.files):
        if name.endswith(".onnx"):
            try:
                external = has_external_data(root / name)
            except ExternalDataError as exc:
                raise BundleError(f"bundle {root}: {name} is not a well-formed ONNX file: {exc}") from exc
            if external:
                raise BundleError(
                    f"bundle {root}: {name} refers to tensor data in external files; fmfl bundles never do, "
                    "and ONNX Runtime would read such a file wherever it points"
                )
    return manifest
