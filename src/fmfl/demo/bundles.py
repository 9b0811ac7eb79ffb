"""Export the demo's preset bundle once and keep it in a cache folder keyed by everything that shapes it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fmfl.bundle import Manifest, verify_bundle
from fmfl.errors import FmflError


def ensure_bundle(cache: Path, model: str, task: str, spec: str, labels: tuple[str, ...] | None,
                  image_size: int | None, max_seq_len: int, lr: float,
                  optimizer: str = "adamw") -> tuple[Path, Manifest, bool]:
    """The cached bundle for these settings, exporting it first when absent or invalid. Returns (path, manifest,
    exported_now)."""
    shape: list[object] = [model, task, spec, labels, image_size, max_seq_len, lr]
    # AdamW bundles keep the key they had before the optimizer was a setting (their cached prefix features too).
    shape += [optimizer] if optimizer != "adamw" else []
    key = hashlib.sha256(json.dumps(shape).encode()).hexdigest()
    path = cache / "bundles" / f"{model}-{task}-{key[:12]}"
    if path.is_dir():
        try:
            return path, verify_bundle(path), False
        except FmflError:
            pass  # a damaged cache entry is re-exported below
    try:
        from fmfl.export.pipeline import ExportConfig, export_bundle
    except ImportError as exc:
        raise FmflError("exporting the demo bundle needs the workstation extra: pip install 'fmfl[export]'") from exc
    export_bundle(ExportConfig(model=model, task=task, train=spec, out=path, labels=labels,
                               image_size=image_size, max_seq_len=max_seq_len, optimizer=optimizer, lr=lr,
                               force=True))
    return path, verify_bundle(path), True
