"""Inputs of the trainable suffix for every local sample, with the frozen prefix's features cached on disk.

With a split bundle the frozen trunk runs once per sample (an ORT inference session over
``prefix.onnx``); its outputs are stored as ``.npy`` files under ``cache_dir/<bundle id>-<data hash>``
and memory-mapped on later rounds and restarts, so each local epoch costs only the suffix. The cache
folder is written under a temporary name and renamed when complete: a crash mid-way leaves no
half cache to trust.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from fmfl.bundle.manifest import Manifest
from fmfl.edge_client.data import LocalDataset
from fmfl.edge_client.runtime import check_runtime, open_session

log = logging.getLogger(__name__)

#: samples per prefix batch: the one-off trunk pass sets the device's peak memory (activations of a
#: transformer trunk grow with it; 64 measured ~30% more peak RSS than 8 on MiniLM for no speed gain on CPU)
PREFIX_BATCH = 16


class PrefixRunner:
    """The frozen trunk of a split bundle as an inference session: raw inputs -> features at the split point."""

    def __init__(self, bundle: Path, manifest: Manifest, threads: int | None = None) -> None:
        name = manifest.artifacts.get("prefix_model")
        if not name:
            raise ValueError("bundle has no frozen prefix (its spec trains from the first block)")
        check_runtime(manifest)
        self.session = open_session(bundle / name, threads, arena=True)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self.session.run(self.output_names, {n: inputs[n] for n in self.input_names})
        return dict(zip(self.output_names, outs, strict=True))


def cache_key(manifest: Manifest, data_hash: str) -> str:
    return f"{manifest.bundle_id}-{data_hash[:24]}"


def suffix_dataset(
    bundle: Path,
    manifest: Manifest,
    data: LocalDataset,
    *,
    data_hash: str,
    cache_dir: Path | None,
    threads: int | None = None,
) -> tuple[LocalDataset, dict[str, Any]]:
    """``data`` with its inputs replaced by what the suffix takes; also returns cache statistics."""
    names = list(manifest.graph["train_inputs"])
    if not manifest.has_prefix:
        return _with_inputs(data, {n: data.inputs[n] for n in names}), {"cache": "none", "prefix_seconds": 0.0}
    folder = cache_dir / cache_key(manifest, data_hash) if cache_dir is not None else None
    if folder is not None and (folder / "complete").is_file():
        features = {n: np.load(folder / f"{_safe(n)}.npy", mmap_mode="r") for n in _feature_names(manifest)}
        return _combine(data, features, names), {"cache": "hit", "prefix_seconds": 0.0}
    start = time.perf_counter()
    features = compute_features(bundle, manifest, data, threads)
    seconds = time.perf_counter() - start
    if folder is not None:
        _store(folder, features)
        # Read back memory-mapped: the rows a batch needs come from the page cache, not from RAM held for good.
        features = {n: np.load(folder / f"{_safe(n)}.npy", mmap_mode="r") for n in features}
    log.info("frozen prefix ran over %d samples in %.1f s", len(data), seconds)
    return _combine(data, features, names), {"cache": "miss", "prefix_seconds": seconds}


def compute_features(
    bundle: Path, manifest: Manifest, data: LocalDataset, threads: int | None
) -> dict[str, np.ndarray]:
    runner = PrefixRunner(bundle, manifest, threads)
    # Filled in place (no list of parts and concatenate, which held every feature twice at the end).
    out: dict[str, np.ndarray] = {}
    for batch in data.batches(PREFIX_BATCH, shuffle=False):
        for name, value in runner(batch.inputs).items():
            if name not in out:
                out[name] = np.empty((len(data), *value.shape[1:]), dtype=value.dtype)
            out[name][batch.indices] = value
    del runner
    release_freed_memory()
    return out


def release_freed_memory() -> None:
    """Hand memory freed by the prefix session back to the system (glibc keeps it in its heap otherwise).

    The one-off prefix pass is the device's memory peak; without this, training then runs on top of the
    prefix session's freed-but-kept pages (MiniLM last:1 here: 385 MB peak instead of the prefix's 346 MB).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, macOS, Windows): nothing to do
        return
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def _feature_names(manifest: Manifest) -> list[str]:
    return [str(f["name"]) for f in manifest.split["features"]]


def _safe(name: str) -> str:
    return name.replace("/", "_")


def _store(folder: Path, features: dict[str, np.ndarray]) -> None:
    tmp = folder.with_name(folder.name + f".partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, value in features.items():
        np.save(tmp / f"{_safe(name)}.npy", value)
    (tmp / "complete").write_text("ok\n")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def _combine(data: LocalDataset, features: dict[str, Any], names: list[str]) -> LocalDataset:
    inputs = {n: features[n] if n in features else data.inputs[n] for n in names}
    return _with_inputs(data, inputs)


def _with_inputs(data: LocalDataset, inputs: dict[str, Any]) -> LocalDataset:
    return LocalDataset(inputs=inputs, labels=data.labels, label_names=data.label_names, source=data.source)
