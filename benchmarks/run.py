"""fmfl against Flower on the demo's vision task, in one run on this machine, and against the machine's limits.

Run: ``.venv/bin/python -m benchmarks.run [--quick] [--output FILE]``. Rewrites the ``## fmfl vs Flower``
section of docs/benchmarks.md (or of ``--output``) and leaves every other section alone; the full run also
draws docs/bench_*.png.

Sides (details in ``benchmarks/flower.py`` and ``benchmarks/flower_sim.py``):
- fmfl: ``fmfl demo --task vision`` as a subprocess (aggregator, one ``fmfl client`` process per client,
  Mosquitto when installed), read back from its ``run.json`` / ``metrics.jsonl``; its client processes'
  peak RSS is polled from ``/proc``.
- Flower 1.42 in ``.venv-flwr`` (created here when missing): SuperLink + one SuperNode per client on
  loopback, ``flwr run`` of a ClientApp that trains the same head on the same shards, recomputing the
  frozen trunk every step (a few rounds: per-round cost, bytes, RSS).
- Flower + cached features: the same head trained by torch on trunk features computed once per client,
  Flower's FedAvg, under the Simulation Engine, for as many rounds as fmfl (accuracy after the same rounds).
The report itself is rendered by ``benchmarks/run_report.py``; the plans are in ``benchmarks/run_plan.py``.
Cold starts alternate fmfl / Flower in fresh processes; the aggregation comparison alternates the sides
in one process; the federations run one after the other (each needs both cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._docs import replace_section
from benchmarks.run_plan import ALPHA, BATCH, FULL, IMAGE, LR, QUICK, SEED, Plan, stats
from benchmarks.run_report import report_body

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## fmfl vs Flower"
FLWR_VENV = ROOT / ".venv-flwr"
# ray: the Simulation Engine's backend (flwr[simulation] pins ray==2.55.1), for Flower + cached features
FLWR_PINS = ("flwr==1.42.0", "ray==2.55.1", "torch==2.13.0", "numpy", "pillow")
CACHE = ROOT / ".fmfl-cache"


# ------------------------------------------------------------------------------------------------ helpers
def load_avg() -> str:
    return ", ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine(flwr_python: Path | None) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    versions = {p: metadata.version(p) for p in ("onnxruntime", "torch", "numpy")}
    flwr = "not installed"
    if flwr_python is not None:
        out = subprocess.run([str(flwr_python), "-c", "import flwr, torch; print(flwr.__version__, torch.__version__)"],
                             capture_output=True, text=True)
        flwr = out.stdout.strip().replace(" ", ", torch (Flower venv) ") if out.returncode == 0 else "broken"
    return (f"{platform.machine()}, {os.cpu_count()} cores ({cpu}); Python {platform.python_version()}; "
            f"flwr {flwr}; torch {versions['torch']}, onnxruntime "
            f"{versions['onnxruntime']}, numpy {versions['numpy']}")


def status_mb(pid: int | str, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children_of(root: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in kids.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# ------------------------------------------------------------------------------------------- Flower venv
def ensure_flwr_venv(create: bool, timeout: float) -> tuple[Path | None, str]:
    """The Flower venv's python, or None and why not."""
    python = FLWR_VENV / "bin" / "python"
    ok = python.exists() and subprocess.run([str(python), "-c", "import flwr, ray, torch, fmfl, PIL"],
                                            capture_output=True).returncode == 0
    if ok:
        return python, ""
    if not create:
        return None, (".venv-flwr is absent and --quick does not spend CI time on its 1-2 minute install; "
                      "run the full benchmark once (it creates it)")
    t0 = time.time()
    try:
        if not python.exists():
            subprocess.run(["python3", "-m", "venv", str(FLWR_VENV)], check=True, timeout=timeout)
        pip = [str(FLWR_VENV / "bin" / "pip"), "install", "-q"]
        subprocess.run(pip + list(FLWR_PINS), check=True, timeout=max(1.0, timeout - (time.time() - t0)))
        subprocess.run([*pip, "--no-deps", "zstandard", "-e", str(ROOT)], check=True,
                       timeout=max(1.0, timeout - (time.time() - t0)))
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"creating .venv-flwr failed: {exc}"
    print(f"created .venv-flwr in {time.time() - t0:.0f} s", flush=True)
    return python, ""


# ---------------------------------------------------------------------------------------------- the task
@dataclass(frozen=True)
class Task:
    bundle: Path
    manifest: Any
    shards: list[Path]
    init: Path  # the bundle's initial head as weight/bias (Flower's initial ArrayRecord)
    weights: Path  # EfficientNet-Lite0 ImageNet state dict
    test_x: np.ndarray
    test_y: np.ndarray


def prepare(work: Path, plan: Plan) -> Task:
    """The demo's data, partitions and bundle, written once for both sides (the demo writes its own copy)."""
    from fmfl.datasets import load_fashion_mnist
    from fmfl.datasets.partition import dirichlet_partition
    from fmfl.demo.bundles import ensure_bundle
    from fmfl.demo.tasks import TASKS, load_vision, write_image_shard
    from fmfl.models.efficientnet_lite import pretrained_weights_path

    task = TASKS["vision"]
    data = load_vision(plan.max_samples, SEED)
    parts = dirichlet_partition(data.train_y, plan.clients, ALPHA, SEED)
    shards = []
    for i, index in enumerate(parts):
        folder = work / "shards" / f"c{i:02d}"
        folder.mkdir(parents=True)
        shards.append(write_image_shard(folder, data, index, SEED + i))
    bundle, manifest, _ = ensure_bundle(CACHE, task.model, task.export_task, task.train_spec, data.label_names,
                                        task.image_size, task.max_seq_len, task.lr, task.optimizer)
    flat = np.load(bundle / "initial_weights.npy")
    (w,), (b,) = ([t for t in manifest.trainable if t.name.endswith(".weight")],
                  [t for t in manifest.trainable if t.name.endswith(".bias")])
    init = work / "init.npz"
    np.savez(init, weight=flat[w.offset : w.offset + w.size].reshape(w.shape), bias=flat[b.offset : b.offset + b.size])
    test = load_fashion_mnist("test")
    n_test = plan.test_samples or len(test.labels)
    return Task(bundle, manifest, shards, init, pretrained_weights_path(), test.images[:n_test],
                test.labels[:n_test].astype(np.int64))


# ------------------------------------------------------------------------------------------- cold starts
FMFL_COLD = r"""
import json, sys, time
t0 = float(sys.argv[1])
from pathlib import Path
marks = {}
from fmfl.edge_client.device import DeviceConfig, EdgeDevice
from fmfl.edge_client.local_training import LocalTrainConfig, train_locally
marks["imports"] = time.time() - t0
dev = EdgeDevice(DeviceConfig(bundle=Path(sys.argv[2]), data=Path(sys.argv[3]), state_dir=Path(sys.argv[4]),
                              client_id="c00", threads=1))
marks["device"] = time.time() - t0
dev.trainer.set_weights(dev.initial)
train_locally(dev.trainer, dev.train_data, LocalTrainConfig(batch_size=32, lr=1e-3, local_epochs=None,
                                                              local_steps=1, seed=1))
marks["first_step"] = time.time() - t0
steps = []
for i in range(8):
    s = train_locally(dev.trainer, dev.train_data, LocalTrainConfig(batch_size=32, lr=1e-3, local_epochs=None,
                                                                     local_steps=1, seed=2 + i))
    steps.append(s.seconds)
hwm = next(int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
heavy = [m for m in sys.modules if m.split(".")[0] in ("torch", "transformers")]
print(json.dumps({"marks": marks, "cold_s": marks["first_step"], "vmhwm_mb": hwm, "steps": steps,
                  "cache": dev.cache_info.__class__.__name__ and str(dev.cache_info), "heavy_modules": len(heavy)}))
"""


def cold_starts(task: Task, plan: Plan, work: Path, flwr: Path | None) -> dict[str, list[dict[str, Any]]]:
    """Fresh processes on client 0's shard, alternating fmfl (empty cache), Flower, fmfl (cache on disk)."""
    out: dict[str, list[dict[str, Any]]] = {"fmfl": [], "fmfl_restart": [], "flower": []}
    shard = task.shards[0]
    for r in range(plan.repeats):
        state = work / "cold" / f"state{r}"
        order = ["fmfl", "flower"] if r % 2 == 0 else ["flower", "fmfl"]
        for side in order:
            if side == "fmfl":
                for variant in ("fmfl", "fmfl_restart"):  # restart: same state folder, features cached
                    t0 = time.time()
                    res = subprocess.run([sys.executable, "-c", FMFL_COLD, repr(t0), str(task.bundle), str(shard),
                                          str(state)], capture_output=True, text=True, cwd=ROOT)
                    if res.returncode != 0:
                        raise RuntimeError(f"fmfl cold start failed: {res.stderr[-2000:]}")
                    out[variant].append(json.loads(res.stdout.strip().splitlines()[-1]))
            elif flwr is not None:
                t0 = time.time()
                res = subprocess.run([str(flwr), "-m", "benchmarks.flower", "coldstart", "--shard", str(shard),
                                      "--weights", str(task.weights), "--init", str(task.init), "--t0", repr(t0)],
                                     capture_output=True, text=True, cwd=ROOT)
                if res.returncode != 0:
                    raise RuntimeError(f"Flower cold start failed: {res.stderr[-2000:]}")
                out["flower"].append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(f"cold start pair {r + 1}/{plan.repeats} done (load {load_avg()})", flush=True)
    return out


def fmfl_train_digest(task: Task) -> str:
    """sha256 of client 0's training pixels and labels as fmfl's reader gives them (Flower's must match)."""
    import hashlib

    from fmfl.edge_client.data import read_local_data
    from fmfl.edge_client.device import resolved_preprocessing

    data = read_local_data(task.shards[0], resolved_preprocessing(task.bundle, task.manifest), task.manifest.labels)
    train, _ = data.split(0.2, 0)
    assert train.labels is not None
    return hashlib.sha256(train.inputs["pixel_values"].tobytes() + train.labels.tobytes()).hexdigest()


# ------------------------------------------------------------------------------------------- federations
def run_fmfl(task: Task, plan: Plan, work: Path, codec: str | None = None) -> dict[str, Any]:
    """``fmfl demo --task vision`` with the same clients, rounds, samples and seed; client RSS polled."""
    runs = work / "runs"
    run_id = "fmfl" if codec is None else f"fmfl-{codec}"
    cmd = [str(Path(sys.executable).parent / "fmfl"), "demo", "--task", "vision", "--clients", str(plan.clients),
           "--rounds", str(plan.rounds), "--alpha", str(ALPHA), "--seed", str(SEED), "--max-samples",
           str(plan.max_samples), "--runs-dir", str(runs), "--run-id", run_id, "--cache-dir", str(CACHE)]
    cmd += [] if codec is None else ["--codec", codec]
    t0 = time.time()
    with open(work / f"{run_id}.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        peaks: dict[int, float] = {}
        names: dict[int, str] = {}
        while proc.poll() is None:
            for pid in children_of(proc.pid):
                hwm = status_mb(pid, "VmHWM")
                if hwm > peaks.get(pid, 0.0):
                    peaks[pid] = hwm
                    names.setdefault(pid, cmdline(pid))
            time.sleep(0.25)
    if proc.returncode != 0:
        raise RuntimeError(f"fmfl demo failed ({proc.returncode}); see {work / f'{run_id}.log'}")
    run_dir = runs / run_id
    record = json.loads((run_dir / "run.json").read_text())
    clients = [mb for pid, mb in peaks.items() if " client " in names[pid]]
    others = {names[pid].split(" --")[0][-60:]: mb for pid, mb in peaks.items() if " client " not in names[pid]}
    return {"record": record, "wall_s": time.time() - t0, "client_rss": clients, "other_rss": others,
            "run_dir": str(run_dir)}


def run_flower(task: Task, plan: Plan, work: Path, flwr: Path, cached_features: bool = False) -> dict[str, Any]:
    """Flower as deployed for ``plan.deployed_rounds`` rounds; with ``cached_features`` its ClientApp trains
    the head on trunk features cached in the first round (still a fresh ClientApp process every round)."""
    folder = work / ("flower-cached-deployed" if cached_features else "flower")
    cmd = [str(flwr), "-m", "benchmarks.flower", "federate", "--work", str(folder), "--rounds",
           str(plan.deployed_rounds), "--weights", str(task.weights), "--init", str(task.init), "--lr", str(LR),
           "--batch", str(BATCH), "--image-size", str(IMAGE), "--threads", "1", "--shards",
           *[str(s) for s in task.shards]] + (["--cached-features"] if cached_features else [])
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    result_file = folder / "flower.json"
    if not result_file.exists():
        raise RuntimeError(f"Flower federation failed: {res.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(result_file.read_text())
    out["wall_s"] = time.time() - t0
    if not out.get("ok"):
        raise RuntimeError(f"Flower federation incomplete: {out.get('tail', '')[-1500:]}")
    return out


def run_flower_cached(task: Task, plan: Plan, work: Path, flwr: Path) -> dict[str, Any]:
    """Flower + cached trunk features for ``plan.rounds`` rounds under the Simulation Engine
    (``benchmarks.flower_sim``); Ray's workers find ``benchmarks`` through PYTHONPATH."""
    out = work / "flower-cached"
    cmd = [str(flwr), "-m", "benchmarks.flower_sim", "--out", str(out), "--rounds", str(plan.rounds),
           "--weights", str(task.weights), "--init", str(task.init), "--lr", str(LR), "--batch", str(BATCH),
           "--image-size", str(IMAGE), "--shards", *[str(s) for s in task.shards]]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    t0 = time.time()
    with open(work / "flower-cached.log", "wb") as log:
        res = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    wall = time.time() - t0
    if res.returncode != 0 or not (out / "server.json").exists():
        tail = (work / "flower-cached.log").read_text(errors="replace")[-1500:]
        raise RuntimeError(f"Flower + cached features failed ({res.returncode}): {tail}")
    server = json.loads((out / "server.json").read_text())
    return {"server": server, "wall_s": wall, "out": str(out)}


def accuracies(task: Task, plan: Plan, fm: dict[str, Any], fl: dict[str, Any] | None, dense: dict[str, Any] | None,
               cached: dict[str, Any] | None, fl_cached: dict[str, Any] | None) -> dict[str, dict[int, float]]:
    """Every run's global model after each checkpoint round, scored by one evaluator (the demo's, ORT with
    the bundle's weights) on the same test images: ``{side: {round: accuracy}}``."""
    from fmfl.aggregator.durable.store import GlobalStore
    from fmfl.demo.evaluate import Evaluator
    from fmfl.demo.tasks import ZERO_SHOT_NAMES

    evaluator = Evaluator(task.bundle, task.manifest, task.test_x, task.test_y, ZERO_SHOT_NAMES, threads=None)
    out = {"initial": {0: evaluator.accuracy(np.load(task.bundle / "initial_weights.npy"))}}
    for name, run in (("fmfl", fm), ("fmfl_dense", dense)):
        if run is not None:
            store = GlobalStore(Path(run["run_dir"]) / "aggregator" / "models")
            out[name] = {r: evaluator.accuracy(store.load_weights(r)[1]) for r in plan.checkpoints}
    for name, folder, rounds in (("flower", Path(fl["logs"]).parent / "out" if fl else None, (plan.deployed_rounds,)),
                                 ("flower_cached_deployed", Path(fl_cached["logs"]).parent / "out" if fl_cached
                                  else None, (plan.deployed_rounds,)),
                                 ("flower_cached", Path(cached["out"]) if cached else None, plan.checkpoints)):
        if folder is not None:
            with np.load(folder / "globals.npz") as g:
                out[name] = {r: evaluator.accuracy(np.concatenate([g[f"v{r}/weight"].ravel(), g[f"v{r}/bias"]]))
                             for r in rounds}
    return out


def aggregation(flwr: Path, flower_out: Path, repeats: int) -> dict[str, Any]:
    res = subprocess.run([str(flwr), "-m", "benchmarks.flower_aggregate", "aggregate", "--flower-out", str(flower_out),
                          "--repeats", str(repeats)], capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"aggregation benchmark failed: {res.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


# ------------------------------------------------------------------------------------------------ limits
MATMUL = r"""
import json, sys, time
import numpy as np
n = int(sys.argv[1])
a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
b = a.copy()
a @ b
ts = []
for _ in range(5):
    t0 = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t0)
print(json.dumps({"gflops": 2 * n ** 3 / min(ts) / 1e9}))
"""


def matmul_rates() -> dict[str, float]:
    """numpy (OpenBLAS) float32 matmul GFLOP/s with 1 thread (a client's setting) and with every core."""
    out = {}
    for threads in (1, os.cpu_count() or 1):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        res = subprocess.run([sys.executable, "-c", MATMUL, "1024"], capture_output=True, text=True, env=env)
        out[f"{threads}"] = float(json.loads(res.stdout)["gflops"])
    return out


def step_flops(task: Task) -> dict[str, float]:
    """FLOPs of one training step, batch 32: counted by torch's FlopCounterMode on the real modules."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fmfl.models.efficientnet_lite import load_pretrained_lite0

    trunk = load_pretrained_lite0().eval().requires_grad_(False)
    head = torch.nn.Linear(1280, 10)
    x = torch.zeros(BATCH, 3, IMAGE, IMAGE)
    y = torch.zeros(BATCH, dtype=torch.long)
    with FlopCounterMode(display=False) as trunk_count:
        emb = trunk.features(x)
    with FlopCounterMode(display=False) as head_count:
        torch.nn.functional.cross_entropy(head(emb), y).backward()  # type: ignore[no-untyped-call]
    return {"trunk": float(trunk_count.get_total_flops()), "head": float(head_count.get_total_flops())}


# ----------------------------------------------------------------------------------------------- scaling
LORA = "head+lora:r={r},alpha={a},targets=query,value,layers=2"
STEP_SETS = [("head", "head"), ("last:1", "last:1"), ("last:2", "last:2")] + [
    (f"LoRA r={r}", LORA.format(r=r, a=2 * r)) for r in (4, 8, 16, 32)]


def aggregator_scaling(flwr: Path | None, quick: bool) -> dict[str, Any]:
    """fmfl ingestion (decode-free accumulate, as benchmarks.aggregator measures it) against clients and
    density, 149,380 floats; Flower's real aggregate() at the same client counts, dense."""
    from benchmarks.aggregator import ingest_times, make_pool

    rng = np.random.default_rng(0)
    size = 149_380
    clients = (10, 100, 1_000) if quick else (10, 100, 1_000, 10_000)
    by_clients = {}
    pool = make_pool(rng, size, 0.01, 64)
    for n in clients:
        by_clients[n] = min(ingest_times(pool, n, 3))
    by_density = {}
    for d in (0.001, 0.01, 0.1, 1.0):
        by_density[d] = min(ingest_times(make_pool(rng, size, d, 16), 100, 3))
    flower: dict[str, list[float]] = {}
    if flwr is not None:
        res = subprocess.run([str(flwr), "-m", "benchmarks.flower_aggregate", "scaling", "--size", str(size),
                              "--clients", *[str(n) for n in clients if n <= 1_000]], capture_output=True, text=True,
                             cwd=ROOT)
        if res.returncode == 0:
            flower = json.loads(res.stdout.strip().splitlines()[-1])
    return {"size": size, "by_clients": by_clients, "by_density": by_density, "flower": flower}


def step_scaling(work: Path) -> list[tuple[str, int, list[float]]]:
    """ORT client step time (cached prefix features, 1 thread) on MiniLM for each trainable set."""
    from benchmarks.client import Case, export, local_data, write_data
    from fmfl.edge_client.features import compute_features
    from fmfl.edge_client.trainer import Trainer

    data_dir = work / "minilm-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    data = None
    rows = []
    for label, spec in STEP_SETS:
        case = Case(f"MiniLM {label}", "minilm", spec, 8, 256)
        if data is None:
            data = write_data(case, data_dir)
        slug = "".join(c if c.isalnum() else "-" for c in spec)
        bundle = export(case, CACHE / "bench-scaling" / f"minilm-{slug}")
        manifest, raw = local_data(bundle, data)
        feats = compute_features(bundle, manifest, raw, 1) if manifest.has_prefix else dict(raw.inputs)
        names = manifest.graph["train_inputs"]
        inputs = {n: feats[n] if n in feats else raw.inputs[n] for n in names}
        trainer = Trainer(bundle, manifest, 1)
        trainer.set_weights(np.load(bundle / str(manifest.artifacts["initial_weights"])))
        trainer.set_learning_rate(LR)
        order = np.random.default_rng(0).permutation(len(raw))
        batches = [order[s : s + 8] for s in range(0, len(order), 8)]
        times = []
        for i in range(3 + 24):
            idx = batches[i % len(batches)]
            t0 = time.perf_counter()
            trainer.train_step({**{k: np.ascontiguousarray(v[idx]) for k, v in inputs.items()},
                                "labels": raw.labels[idx].astype(np.int64)})
            if i >= 3:
                times.append(time.perf_counter() - t0)
        rows.append((label, int(manifest.num_trainable), times))
        print(f"step scaling {label}: {manifest.num_trainable:,} trainable, median "
              f"{statistics.median(times) * 1e3:.1f} ms", flush=True)
        del trainer
    return rows


def plots(agg: dict[str, Any], steps: list[tuple[str, int, list[float]]], folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    xs = sorted(agg["by_clients"])
    a.loglog(xs, [agg["by_clients"][n] * 1e3 for n in xs], "o-", label="fmfl ingest, 1% dense")
    if agg["flower"]:
        fx = sorted(int(k) for k in agg["flower"])
        a.loglog(fx, [min(agg["flower"][str(n)]) * 1e3 for n in fx], "s--", label="Flower aggregate(), dense")
    a.set_xlabel("clients (simulated updates)")
    a.set_ylabel("ms per round")
    a.set_title(f"Aggregation, {agg['size']:,} floats")
    a.legend()
    ds = sorted(agg["by_density"])
    b.loglog([d * 100 for d in ds], [agg["by_density"][d] * 1e3 for d in ds], "o-", label="fmfl ingest, 100 clients")
    b.set_xlabel("density (% of coordinates sent)")
    b.set_ylabel("ms per round")
    b.set_title("Aggregation against density")
    b.legend()
    fig.tight_layout()
    path = folder / "bench_aggregator_scaling.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path.name)
    if steps:
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, n, ts in steps:
            lo, med, hi = stats(ts)
            ax.errorbar([n], [med * 1e3], yerr=[[med * 1e3 - lo * 1e3], [hi * 1e3 - med * 1e3]], fmt="o")
            ax.annotate(label, (n, med * 1e3), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters")
        ax.set_ylabel("ms per step (min/median/max)")
        ax.set_title("ORT client step, MiniLM, batch 8, 1 thread, cached prefix")
        fig.tight_layout()
        path = folder / "bench_step_scaling.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path.name)
    return written


def write_section(body: list[str], output: Path) -> None:
    """Replace (or append) the section in ``output`` (docs/benchmarks.md by default), nothing else."""
    replace_section(output, SECTION, "\n".join([SECTION, "", *body]))



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 clients, 2 rounds, 2,000 samples, one repeat")
    parser.add_argument("--output", type=Path, default=DOC, help="markdown file whose section is rewritten")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a fresh temporary one)")
    parser.add_argument("--no-flower", action="store_true", help="run the fmfl side only")
    parser.add_argument("--results", type=Path, help="also keep every measurement here as JSON")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="measure nothing: rewrite the section from a --results file")
    args = parser.parse_args(argv)
    if args.render:
        return render(json.loads(args.render.read_text()), args.output)
    plan = QUICK if args.quick else FULL
    t_start = time.time()
    load_start = load_avg()
    work = args.work or Path(tempfile.mkdtemp(prefix="fmfl-bench-run-"))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    flwr, why = (None, "--no-flower") if args.no_flower else ensure_flwr_venv(not args.quick, 900)
    machine_text = machine(flwr)  # asks the Flower venv for its versions: a few seconds, so once
    print(f"machine: {machine_text}; load {load_start}; work {work}", flush=True)
    stages: list[tuple[str, float, str]] = []  # (stage, seconds, load average when it ended): the machine is shared
    t_stage = time.time()

    def stage(name: str) -> None:
        nonlocal t_stage
        stages.append((name, time.time() - t_stage, load_avg()))
        print(f"{name} done in {stages[-1][1]:.0f} s (load {stages[-1][2]})", flush=True)
        t_stage = time.time()

    task = prepare(work, plan)
    cold = cold_starts(task, plan, work, flwr)
    same_data = None
    if cold["flower"]:
        same_data = cold["flower"][0]["train_sha256"] == fmfl_train_digest(task)
    stage("data, bundle and cold starts")
    fm = run_fmfl(task, plan, work)
    stage(f"fmfl, {plan.rounds} rounds")
    fl = agg = None
    if flwr is not None:
        try:
            fl = run_flower(task, plan, work, flwr)
            stage(f"Flower as deployed, {plan.deployed_rounds} round(s)")
            agg = aggregation(flwr, work / "flower" / "out", plan.agg_repeats)
            stage("aggregation")
        except RuntimeError as exc:
            why = f"failed: {exc}"
            print(why, flush=True)
            fl = agg = None
    cached = fl_cached = None
    if flwr is not None:
        try:
            if plan.deployed_cached:
                fl_cached = run_flower(task, plan, work, flwr, cached_features=True)
                stage(f"Flower + cached features, deployed, {plan.deployed_rounds} round(s)")
            cached = run_flower_cached(task, plan, work, flwr)
            stage(f"Flower + cached features, simulated, {plan.rounds} rounds")
        except RuntimeError as exc:
            why = f"Flower + cached features failed: {exc}"
            print(why, flush=True)
    dense = None
    if plan.dense_run:
        dense = run_fmfl(task, plan, work, codec="dense")
        stage(f"fmfl --codec dense, {plan.rounds} rounds")
    acc = accuracies(task, plan, fm, fl, dense, cached, fl_cached)
    flops, matmul = step_flops(task), matmul_rates()
    stage("accuracy, FLOPs, matmul rate")
    figures: list[str] = []
    steps: list[tuple[str, int, list[float]]] = []
    if plan.scaling:
        scaling = aggregator_scaling(flwr, args.quick)
        steps = step_scaling(work)
        figures = plots(scaling, steps, args.output.parent)
        stage("scaling curves")
    results = {"quick": args.quick, "machine": machine_text, "why": why, "fm": fm, "dense": dense, "fl": fl,
               "fl_cached": fl_cached, "stages": stages, "cached": cached, "cold": cold, "agg": agg, "acc": acc,
               "flops": flops, "matmul": matmul,
               "same_data": same_data, "steps": steps, "figures": figures,
               "dense_bytes": 4 * int(task.manifest.num_trainable), "loads": [load_start, load_avg()],
               "seconds": time.time() - t_start}
    if args.results:
        args.results.write_text(json.dumps(results, default=str))
    render(json.loads(json.dumps(results, default=str)), args.output)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def render(r: dict[str, Any], output: Path) -> int:
    """Write the section from the measurements as JSON gives them back (accuracy rounds as string keys)."""
    acc = {side: {int(k): float(v) for k, v in by_round.items()} for side, by_round in r["acc"].items()}
    steps = [(label, int(n), list(ts)) for label, n, ts in r["steps"]]
    body = report_body(QUICK if r["quick"] else FULL, r["quick"], r["machine"], r["why"], r["fm"], r["dense"],
                       r["fl"], r.get("fl_cached"), r["cached"], r["cold"], r["agg"], acc, r["flops"], r["matmul"],
                       r["same_data"], steps, r["figures"], int(r["dense_bytes"]), (r["loads"][0], r["loads"][1]),
                       float(r["seconds"]), [(str(n), float(t), str(load)) for n, t, load in r.get("stages", [])])
    write_section(body, output)
    print(f"wrote {SECTION!r} in {output} ({r['seconds']:.0f} s of measurements)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
