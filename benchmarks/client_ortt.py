"""The onnxruntime-training 1.19.2 side of the edge-client benchmark, run by the OLD fmfl's python.

Not imported by anything: ``benchmarks/client.py`` runs it as a script with the python of the separate venv
that ``benchmarks.bench_envs.ortt_export()`` builds (old fmfl of commit 45aa688, torch 2.13.0,
onnxruntime-training-cpu 1.19.2), with ``-I`` so that nothing of this checkout is importable. It uses only the
standard library, numpy and that old fmfl.

- ``export CONFIG_JSON OUT [--force]``: export the case's bundle with the old fmfl (ORT training artifacts), or
  reuse the one in ``OUT`` when it still verifies (not with ``--force``); prints ``REPORT {json}``.
- ``time ARGS_JSON``: one fresh timing process: the old client's ``OrtTrainer`` (ORT ``Module`` + ORT's
  ``AdamW`` optimizer graph) on the suffix, fed the batches of an ``.npz`` of prefix features written by the
  parent (the same features, labels, batch order and initial weights as the new client; random arrays of the
  manifest's feature shapes if the names do not match), timed in chunks after a warm-up. Prints
  ``REPORT {json}``. Asserts that torch never entered the process.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def vm(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def export(config: dict[str, Any], out: Path, force: bool = False) -> dict[str, Any]:
    start = time.perf_counter()
    from fmfl.bundle import verify_bundle

    if not force and (out / "manifest.json").is_file():
        try:
            verify_bundle(out)
            return {"reused": True, "seconds": None}
        except Exception:
            pass
    from fmfl.export.pipeline import ExportConfig, export_bundle

    imports = time.perf_counter() - start
    result = export_bundle(ExportConfig(out=out, force=True, **config))
    files = {n: int(m["size"]) for n, m in result.manifest.files.items()}
    return {"reused": False, "seconds": result.seconds, "imports_s": imports, "total": sum(files.values()),
            "device": result.device_bytes, "files": files}


def batch_order(n: int, batch: int) -> list[np.ndarray]:
    """The parent's batch order (``benchmarks.client.batch_order``): one shuffled epoch for seed 0."""
    order = np.random.default_rng(0).permutation(n)
    return [order[s : s + batch] for s in range(0, n, batch)]


def timing(args: dict[str, Any]) -> dict[str, Any]:
    t0 = float(args["t0"])
    marks: dict[str, float] = {"python_started": time.time() - t0}
    from fmfl.edge_client.ort_training import OrtTrainer, onnxruntime_module

    from fmfl.bundle import verify_bundle

    bundle = Path(args["bundle"])
    manifest = verify_bundle(bundle)
    trainer = OrtTrainer(bundle, manifest, args["threads"])
    trainer.set_learning_rate(float(args["lr"]))
    marks["sessions_created"] = time.time() - t0

    # The same initial weights as the other clients when the trainable tensors line up (same names, shapes).
    mine = [[t.name, [int(d) for d in t.shape]] for t in manifest.trainable]
    weights_from = "its own bundle"
    if args.get("weights") and mine == args.get("trainable"):
        trainer.set_weights(np.load(args["weights"]).astype(np.float32))
        weights_from = "the new bundle's initial_weights.npy"

    loaded = dict(np.load(args["features"]))
    names = list(manifest.graph["train_inputs"])
    n = len(loaded["__labels__"])
    if all(k in loaded for k in names):
        features = {k: loaded[k] for k in names}
        source = "the new prefix's features of the real data"
    else:  # random arrays of the manifest's feature shapes
        rng = np.random.default_rng(0)
        spec = {str(f["name"]): f for f in manifest.split["features"]}
        features = {}
        for k in names:
            shape, dtype = [n, *spec[k]["shape"]], np.dtype(str(spec[k]["dtype"]))
            features[k] = (rng.standard_normal(shape).astype(dtype) if dtype.kind == "f"
                           else np.ones(shape, dtype=dtype))
        source = "random arrays of the manifest's feature shapes"
    labels = loaded["__labels__"].astype(np.int64)
    with_labels = "labels" in manifest.graph.get("targets", [])
    batches = batch_order(n, int(args["batch"]))

    def feed(idx: np.ndarray) -> dict[str, np.ndarray]:
        f = {k: np.ascontiguousarray(v[idx]) for k, v in features.items()}
        if with_labels:
            f["labels"] = labels[idx]
        return f

    first_loss = trainer.train_step(feed(batches[0]))
    marks["first_step"] = time.time() - t0
    i = 1

    def steps(count: int) -> None:
        nonlocal i
        for _ in range(count):
            trainer.train_step(feed(batches[i % len(batches)]))
            i += 1

    steps(max(int(args["warmup"]), 1))
    chunk = int(args["steps"])
    times = []
    for _ in range(int(args["step_repeats"])):
        start = time.perf_counter()
        steps(chunk)
        times.append((time.perf_counter() - start) / chunk)

    # Where a step goes: the ORT Module's forward + backward, then the optimizer graph (one step each, timed).
    module_s, optim_s = [], []
    for _ in range(chunk * 2):
        f = feed(batches[i % len(batches)])
        i += 1
        a = time.perf_counter()
        trainer.module.train()
        trainer.module(*[f[name] for name in trainer.input_names])
        b = time.perf_counter()
        trainer.optimizer.step()
        trainer.module.lazy_reset_grad()
        c = time.perf_counter()
        module_s.append(b - a)
        optim_s.append(c - b)

    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
    assert not heavy, f"the onnxruntime-training client imported {heavy[:5]}"
    return {
        "first_loss": first_loss, "steps": times, "marks": marks, "vmhwm_mb": vm("VmHWM"),
        "breakdown": {"module_ms": statistics.median(module_s) * 1e3, "optimizer_ms": statistics.median(optim_s) * 1e3},
        "features": source, "weights": weights_from,
        "onnxruntime": onnxruntime_module().__version__,
    }


def main(argv: list[str]) -> int:
    if argv[0] == "export":
        report = export(json.loads(argv[1]), Path(argv[2]), force="--force" in argv[3:])
    elif argv[0] == "time":
        report = timing(json.loads(argv[1]))
    else:
        raise SystemExit(f"unknown mode {argv[0]!r}")
    print("REPORT " + json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
