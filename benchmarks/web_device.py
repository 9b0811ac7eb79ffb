"""The web device against the Python device, side by side on the same bundle and shard, on this machine.

    .venv/bin/python -m benchmarks.web_device [--bundles demo,vit] [--samples 600] [--repeats 3]

For each bundle (``demo``: the demo's vision bundle, EfficientNet-Lite0 at 64 px with a trainable head, exported
once into .fmfl-cache; ``vit``: the tests' tiny ViT with its last block and head trainable, exported into a
temporary folder), on the first ``--samples`` Fashion-MNIST training images as an .npz shard:

- step time: median ms of one train step (graph run + optimizer) over one local epoch (batch 32), the browser
  (headless Debian Chromium, onnxruntime-web wasm, one thread: the page is not cross-origin isolated) against the
  Python device (onnxruntime CPU + numpy) with one thread and with onnxruntime's default threads; first steps
  (session warm-up) are excluded from the medians and shown apart. The browser runs twice: as shipped (V8 first
  runs wasm with its baseline compiler, Liftoff, and swaps in optimized code in the background, which a loaded
  machine delays), and with ``--js-flags=--no-liftoff`` (everything optimized before the first run: what the
  wasm kernels cost once tiered up; a flag a phone's browser does not have, so only an explanation);
- page load to the end of the first training step, from the page's navigation start (it includes puppeteer
  picking the shard file), with an empty browser profile (bundle downloaded and verified, prefix features
  computed) and again in the same profile (bundle files and features from IndexedDB);
- bytes downloaded to join (manifest and every bundle file; a cached visit downloads the manifest only);
- peak memory of the page: the renderer process's peak resident set (VmHWM, from /proc; the wasm heap, the
  onnxruntime sessions and the page's JavaScript) over an uncached visit, and the JS heap in use at its end.

The browser runs tests/web/pages/training_probe.* (the device core, js/device/, without the session) inside the
site `fmfl web` builds. Prints a table; docs/benchmarks.md is written by hand from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._docs import cpu_model

REPO = Path(__file__).resolve().parents[1]
PAGES = REPO / "tests" / "web" / "pages"
RUN_PAGE = REPO / "web" / "tools" / "run_page.mjs"
BATCH = 32
TASK = {"round": 1, "seed": 0, "batch_size": BATCH, "local_epochs": 1, "local_steps": None}


def demo_bundle() -> Path:
    from fmfl.datasets.fashion_mnist import FASHION_MNIST_CLASSES
    from fmfl.demo.bundles import ensure_bundle
    from fmfl.demo.tasks import TASKS

    task = TASKS["vision"]
    path, _, _ = ensure_bundle(REPO / ".fmfl-cache", task.model, task.export_task, task.train_spec,
                               tuple(FASHION_MNIST_CLASSES), task.image_size, task.max_seq_len, task.lr,
                               task.optimizer)
    return path


def vit_bundle(tmp: Path) -> Path:
    import sys

    sys.path.insert(0, str(REPO / "tests"))
    from support.real_data import export_tiny_vit  # type: ignore[import-not-found]

    return Path(export_tiny_vit(tmp / "vit"))


def python_steps(bundle: Path, shard: Path, lr: float, threads: int | None) -> dict[str, Any]:
    """One local round of the Python device (EdgeDevice, as `fmfl client` builds it), each train step timed."""
    from fmfl.edge_client.device import DeviceConfig, EdgeDevice
    from fmfl.edge_client.local_training import LocalTrainConfig, local_round

    with tempfile.TemporaryDirectory() as state:
        dev = EdgeDevice(DeviceConfig(bundle=bundle, data=shard, state_dir=Path(state), client_id="bench",
                                      threads=threads))
        times: list[float] = []
        step = dev.trainer.train_step

        def timed(batch: Any) -> float:
            t0 = time.perf_counter()
            loss = step(batch)
            times.append((time.perf_counter() - t0) * 1000)
            return loss

        dev.trainer.train_step = timed  # type: ignore[method-assign]
        cfg = LocalTrainConfig(batch_size=BATCH, lr=lr, local_epochs=1, seed=1)  # seed: TASK seed + round
        local_round(dev.trainer, dev.initial, dev.train_data, cfg, None)
    return {"first": times[0], "median": statistics.median(times[1:]), "steps": len(times)}


def eager_chromium(folder: Path) -> Path:
    """A Chromium that compiles wasm with V8's optimizing tier up front (run_page.mjs takes --chromium)."""
    path = folder / "chromium-no-liftoff"
    path.write_text('#!/bin/sh\nexec /usr/bin/chromium --js-flags=--no-liftoff "$@"\n')
    path.chmod(0o755)
    return path


def browser_round(url: str, shard: Path, lr: float, profile: Path, chromium: Path = Path("/usr/bin/chromium"),
                  ) -> dict[str, Any]:
    task = {**TASK, "lr": lr}
    args = ["node", str(RUN_PAGE), "--url", url + "training_probe.html", "--upload", f"#npz={shard}",
            "--chromium", str(chromium),
            "--wait", "window.probe && window.probe.ready", "--profile", str(profile), "--timeout", "600000",
            "--result", f"probe.round({json.dumps(task)}, {{cacheName: 'bench'}}).then(r => ({{...r, delta: null}}))"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=REPO)
    report = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    result = report.get("result") or {}
    if not report.get("ok") or "error" in result:
        raise RuntimeError(f"the page failed: {report.get('error') or result}")
    steps = result["stats"]["step_ms"]
    return {"first": steps[0], "median": statistics.median(steps[1:]), "steps": len(steps),
            "to_first_step_ms": result["pageToFirstStepMs"], "downloaded": result["bundleStats"]["bytesDownloaded"],
            "from_cache": result["bundleStats"]["bytesFromCache"], "features": result["cacheInfo"]["cache"],
            "prefix_s": result["cacheInfo"]["prefix_seconds"],
            "peak_rss": (report.get("memory") or {}).get("renderer_peak_rss_bytes"),
            "js_heap": (report.get("memory") or {}).get("js_heap_used_bytes")}


def measure(name: str, bundle: Path, shard: Path, repeats: int) -> dict[str, Any]:
    from fmfl.web.server import SiteServer
    from fmfl.web.site import SiteConfig, build_site

    lr = float(json.loads((bundle / "manifest.json").read_text())["optimizer"]["lr"])
    with tempfile.TemporaryDirectory() as tmp:
        root = build_site(bundle, Path(tmp) / "site", SiteConfig(broker="ws://127.0.0.1:9", federation="bench"))
        for page in ("training_probe.html", "training_probe.js"):
            shutil.copy(PAGES / page, root / page)
        server = SiteServer(root).start()
        try:
            cold, warm, web_medians, eager_medians = [], [], [], []
            eager = eager_chromium(Path(tmp))
            for i in range(repeats):
                profile = Path(tmp) / f"profile-{i}"
                cold.append(browser_round(server.url, shard, lr, profile))
                warm.append(browser_round(server.url, shard, lr, profile))
                web_medians += [cold[-1]["median"], warm[-1]["median"]]
                eager_medians.append(browser_round(server.url, shard, lr, Path(tmp) / f"eager-{i}", eager)["median"])
        finally:
            server.stop()
    py1 = [python_steps(bundle, shard, lr, 1) for _ in range(repeats)]
    pyn = [python_steps(bundle, shard, lr, None) for _ in range(repeats)]
    size = sum(int(m["size"]) for m in json.loads((bundle / "manifest.json").read_text())["files"].values())
    return {
        "name": name, "steps": cold[0]["steps"], "bundle_bytes": size,
        "web_step": statistics.median(web_medians), "web_first": statistics.median(c["first"] for c in cold),
        "eager_step": statistics.median(eager_medians),
        "py1_step": statistics.median(p["median"] for p in py1),
        "pyn_step": statistics.median(p["median"] for p in pyn),
        "py_first": statistics.median(p["first"] for p in py1),
        "cold_ms": statistics.median(c["to_first_step_ms"] for c in cold),
        "warm_ms": statistics.median(w["to_first_step_ms"] for w in warm),
        "cold_prefix_s": statistics.median(c["prefix_s"] for c in cold),
        "cold_bytes": cold[0]["downloaded"], "warm_bytes": warm[0]["downloaded"],
        "warm_features": warm[0]["features"], "warm_from_cache": warm[0]["from_cache"],
        "peak_rss": max(c["peak_rss"] or 0 for c in cold), "js_heap": max(c["js_heap"] or 0 for c in cold),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundles", default="demo,vit", help="comma-separated: demo, vit")
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import sys

    sys.path.insert(0, str(REPO / "tests"))
    from support.real_data import write_fmnist_shard  # type: ignore[import-not-found]

    with tempfile.TemporaryDirectory() as tmp:
        shard = write_fmnist_shard(Path(tmp) / "shard.npz", args.samples)
        makers = {"demo": ("EfficientNet-Lite0 64 px, head (demo vision)", demo_bundle),
                  "vit": ("tiny ViT 32 px, last block + head (tests)", lambda: vit_bundle(Path(tmp)))}
        load_before = os.getloadavg()
        rows = [measure(makers[b][0], makers[b][1](), shard, args.repeats) for b in args.bundles.split(",")]
        load_after = os.getloadavg()
    chromium = subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()}; {chromium}; onnxruntime-web 1.31.1 "
          f"(wasm, 1 thread); load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
          f"{args.samples} Fashion-MNIST images ({round(args.samples * 0.8)} train), batch 32, one epoch, "
          f"{args.repeats} repeats")
    print("| bundle | steps | browser ms/step | browser, wasm optimized up front | Python ms/step (1 thread) "
          "| Python (default threads) | browser / Python (1 thread) | optimized / Python "
          "| first step browser / Python ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['steps']} | {r['web_step']:.2f} | {r['eager_step']:.2f} | {r['py1_step']:.2f} "
              f"| {r['pyn_step']:.2f} | {r['web_step'] / r['py1_step']:.1f}x | {r['eager_step'] / r['py1_step']:.1f}x "
              f"| {r['web_first']:.0f} / {r['py_first']:.0f} |")
    print()
    print("| bundle | bundle bytes | page load to first step, uncached (prefix pass) | cached (bundle + features) "
          "| bytes downloaded uncached | cached |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['bundle_bytes']:,} | {r['cold_ms'] / 1000:.2f} s ({r['cold_prefix_s']:.2f} s) "
              f"| {r['warm_ms'] / 1000:.2f} s (features: {r['warm_features']}) | {r['cold_bytes']:,} "
              f"| {r['warm_bytes']:,} ({r['warm_from_cache']:,} from IndexedDB) |")
    print()
    print("| bundle | page peak memory (renderer VmHWM, uncached round) | JS heap used at the end |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['peak_rss'] / 2**20:.0f} MiB | {r['js_heap'] / 2**20:.1f} MiB |")


if __name__ == "__main__":
    main()
