"""The Flower side of ``benchmarks.run``: the demo's vision task as a Flower user would write it.

Runs in its own virtual environment (``.venv-flwr``: flwr 1.42, torch 2.13.0 CPU, numpy, pillow, and
fmfl installed ``--no-deps`` for its EfficientNet-Lite0 definition, its image reader and its aggregator).
Invoked by ``benchmarks.run`` as ``.venv-flwr/bin/python -m benchmarks.flower <command> ...``:

- ``federate``: a real Flower deployment on loopback: one SuperLink, one SuperNode per client (each
  launches its ClientApp through its own SuperExec), ``flwr run`` of this file packaged as a Flower App
  (FAB). Every SuperNode talks to the SuperLink through a byte-counting TCP relay, so the bytes up and
  down are what crossed the socket (HTTP framing, polling and heartbeats included).
- ``coldstart``: one fresh process doing what the ClientApp does before its first step (imports, model,
  weights, local data, one step), for the interleaved cold-start comparison.

The aggregation comparisons are in ``benchmarks/flower_aggregate.py``; the cached-features ClientApp under
the Simulation Engine in ``benchmarks/flower_sim.py``.

The ClientApp follows Flower's PyTorch quickstart: the frozen EfficientNet-Lite0 trunk (``requires_grad``
off) is recomputed every step, the 1280->10 linear head is trained with ``torch.optim.AdamW`` (created
fresh every round, as fmfl's client resets its optimizer state), and the head's dense fp32 state dict goes
back in an ``ArrayRecord``. Inputs are bit-identical to fmfl's client: the same shard file, fmfl's reader
(Pillow bilinear resize to 64 px, RGB, mean/std 0.5), the same 80/20 local split and batch order.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

APP_MODULE = "fmflbench_flower"

# ------------------------------------------------------------------------------------------ shared helpers


def proc_status_mb(pid: int | str, key: str) -> float:
    """VmHWM / VmRSS of a process in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def process_start_epoch(pid: int | str = "self") -> float:
    """Wall-clock time the process started (``/proc/PID/stat`` field 22, in clock ticks since boot)."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                 if line.startswith("btime"))
    return btime + ticks / os.sysconf("SC_CLK_TCK")


def load_shard(shard: Path, image_size: int, eval_fraction: float = 0.2,
               seed: int = 0) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The client's ((train pixels, labels), (eval pixels, labels)), as a Flower user would load them.

    Written to give the same arrays as fmfl's reader (checked by ``benchmarks.run``): Pillow
    ``convert("RGB")`` then a bilinear resize, ``(x / 255 - 0.5) / 0.5``, NCHW float32, and the same
    seeded 80/20 split as ``LocalDataset.split``.
    """
    from PIL import Image

    with np.load(shard, allow_pickle=False) as archive:
        images, labels = archive["images"], archive["labels"].astype(np.int64)
    out = np.empty((len(images), image_size, image_size, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        out[i] = np.asarray(Image.fromarray(img).convert("RGB").resize((image_size, image_size),
                                                                        Image.Resampling.BILINEAR))
    table = ((np.arange(256, dtype=np.float64) / 255.0 - 0.5) / 0.5).astype(np.float32)
    pixels = table[np.ascontiguousarray(out.transpose(0, 3, 1, 2))]
    n = len(labels)
    n_eval = max(min(round(eval_fraction * n), max(n - 1, 0)), 1 if n >= 2 else 0)
    order = np.random.default_rng(seed).permutation(n)
    tr, ev = np.sort(order[n_eval:]), np.sort(order[:n_eval])
    return (pixels[tr], labels[tr]), (pixels[ev], labels[ev])


class TorchClient:
    """The Flower user's model: frozen trunk + trainable linear head."""

    def __init__(self, weights: Path, init: Path, threads: int) -> None:
        import torch

        from fmfl.models.efficientnet_lite import EfficientNetLite0

        torch.set_num_threads(threads)
        self.torch = torch
        self.trunk = EfficientNetLite0()
        self.trunk.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
        self.trunk.eval().requires_grad_(False)
        self.head = torch.nn.Linear(1280, 10)
        start = np.load(init)
        self.set_head({"weight": start["weight"], "bias": start["bias"]})

    def set_head(self, arrays: dict[str, np.ndarray]) -> None:
        with self.torch.no_grad():
            self.head.weight.copy_(self.torch.from_numpy(np.asarray(arrays["weight"])))
            self.head.bias.copy_(self.torch.from_numpy(np.asarray(arrays["bias"])))

    def head_arrays(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy().copy() for k, v in self.head.state_dict().items()}

    def train_epoch(self, pixels: np.ndarray, labels: np.ndarray, lr: float, seed: int, batch: int,
                    max_steps: int | None = None) -> tuple[list[float], list[float]]:
        """One local epoch in fmfl's batch order; returns (losses, seconds per step)."""
        torch = self.torch
        opt = torch.optim.AdamW(self.head.parameters(), lr=lr)
        order = np.random.default_rng(seed).permutation(len(labels))
        losses, times = [], []
        for s in range(0, len(order), batch):
            idx = order[s : s + batch]
            t0 = time.perf_counter()
            x = torch.from_numpy(np.ascontiguousarray(pixels[idx]))
            y = torch.from_numpy(labels[idx].astype(np.int64))
            loss = torch.nn.functional.cross_entropy(self.head(self.trunk.features(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            times.append(time.perf_counter() - t0)
            if max_steps is not None and len(times) >= max_steps:
                break
        return losses, times


def cached_features(cache: Path, weights: Path, shard: Path, image_size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(training features, labels, seconds spent computing them now: 0 when read from ``cache``).

    What a Flower user fine-tuning only the head would add: the frozen trunk (eval mode, no grad) runs
    once over the client's training split and its output is kept on disk for the later rounds.
    """
    import torch

    if cache.exists():
        with np.load(cache) as f:
            return f["features"], f["labels"], 0.0
    from fmfl.models.efficientnet_lite import EfficientNetLite0

    t0 = time.perf_counter()
    trunk = EfficientNetLite0()
    trunk.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    trunk.eval().requires_grad_(False)
    (pixels, labels), _ = load_shard(shard, image_size)
    with torch.no_grad():
        feats = [trunk.features(torch.from_numpy(np.ascontiguousarray(pixels[s : s + 64]))).numpy()
                 for s in range(0, len(labels), 64)]
    features = np.concatenate(feats).astype(np.float32) if feats else np.zeros((0, 1280), np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, features=features, labels=labels)
    os.replace(tmp, cache)  # atomic: a concurrent reader never sees half a file
    return features, labels, time.perf_counter() - t0


def train_head(weight: np.ndarray, bias: np.ndarray, feats: np.ndarray, labels: np.ndarray, lr: float,
               seed: int, batch: int) -> tuple[dict[str, np.ndarray], list[float], list[float]]:
    """One local epoch of a fresh head (set to the global) on cached features, in fmfl's batch order."""
    import torch

    head = torch.nn.Linear(1280, 10)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))
    opt = torch.optim.AdamW(head.parameters(), lr=lr)
    order = np.random.default_rng(seed).permutation(len(labels))
    losses, times = [], []
    for s in range(0, len(order), batch):
        idx = order[s : s + batch]
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(head(torch.from_numpy(np.ascontiguousarray(feats[idx]))),
                                                 torch.from_numpy(labels[idx].astype(np.int64)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        times.append(time.perf_counter() - t0)
    return {k: v.detach().numpy().copy() for k, v in head.state_dict().items()}, losses, times


def cached_reply(msg: Message, cfg: dict[str, Any], shard: Path, cache: Path) -> Message:
    """The cached-features ClientApp's answer to one train message (deployed and simulated alike)."""
    import torch

    torch.set_num_threads(int(cfg["threads"]))
    feats, labels, feature_s = cached_features(cache, Path(str(cfg["weights"])), shard, int(cfg["image-size"]))
    arrays = {k: v.numpy() for k, v in msg.content["arrays"].items()}
    server_round = int(msg.content["config"]["server-round"])
    head, losses, times = train_head(arrays["weight"], arrays["bias"], feats, labels, float(cfg["lr"]),
                                     server_round * 1000, int(cfg["batch"]))
    metrics = MetricRecord({
        "num-examples": len(labels), "train-seconds": float(sum(times)), "steps": len(times),
        "step-median": float(statistics.median(times)), "train-loss": float(np.mean(losses)),
        "features-s": feature_s, "pid": os.getpid(), "process-age-s": time.time() - process_start_epoch(),
        "vmhwm-mb": proc_status_mb("self", "VmHWM")})
    reply = ArrayRecord(array_dict={k: Array(v) for k, v in head.items()})
    return Message(content=RecordDict({"arrays": reply, "metrics": metrics}), reply_to=msg)


# --------------------------------------------------------------------------------------------- ClientApp
client_app = ClientApp()
_CACHE: dict[str, Any] = {}


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    cfg, node = context.run_config, context.node_config
    if bool(cfg.get("cached-features", False)):
        shard = Path(str(node["shard"]))
        return cached_reply(msg, dict(cfg), shard, Path(str(cfg["features-dir"])) / f"{shard.parent.name}.npz")
    first_call = "client" not in _CACHE
    if first_call:
        _CACHE["client"] = TorchClient(Path(str(cfg["weights"])), Path(str(cfg["init"])), int(cfg["threads"]))
        _CACHE["data"] = load_shard(Path(str(node["shard"])), int(cfg["image-size"]))
    client: TorchClient = _CACHE["client"]
    (pixels, labels), _ = _CACHE["data"]
    client.set_head({k: v.numpy() for k, v in msg.content["arrays"].items()})
    server_round = int(msg.content["config"]["server-round"])
    losses, times = client.train_epoch(pixels, labels, float(cfg["lr"]), server_round * 1000, int(cfg["batch"]))
    start = process_start_epoch()
    metrics = MetricRecord({
        "num-examples": len(labels),
        "train-seconds": float(sum(times)),
        "steps": len(times),
        "step-median": float(statistics.median(times)),
        "train-loss": float(np.mean(losses)),
        "pid": os.getpid(),
        "first-call": int(first_call),
        # a fresh process: from its start to now (the whole first local epoch included)
        "process-age-s": time.time() - start,
        "vmhwm-mb": proc_status_mb("self", "VmHWM"),
    })
    arrays = ArrayRecord(array_dict={k: Array(v) for k, v in client.head_arrays().items()})
    return Message(content=RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)


# --------------------------------------------------------------------------------------------- ServerApp
server_app = ServerApp()


class RecordingFedAvg(FedAvg):
    """Flower's FedAvg, unchanged, with the replies, the aggregation time and the round ends recorded."""

    def __init__(self, out: Path, save_replies: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.out = out
        self.save_replies = save_replies  # the aggregation benchmark reads them; long runs skip them
        self.rounds: list[dict[str, Any]] = []
        self.t_configure: dict[int, float] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self.t_configure[server_round] = time.time()
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        t0 = time.perf_counter()
        arrays, metrics = super().aggregate_train(server_round, replies)
        seconds = time.perf_counter() - t0
        clients = []
        updates = {}
        for i, reply in enumerate(replies):
            if reply.has_error():
                clients.append({"error": str(reply.error)})
                continue
            clients.append({k: v for k, v in reply.content["metrics"].items()})
            clients[-1]["arrayrecord-bytes"] = reply.content["arrays"].count_bytes()
            for k, v in reply.content["arrays"].items():
                updates[f"c{i}/{k}"] = v.numpy()
        if self.save_replies:
            np.savez(self.out / f"replies-{server_round:03d}.npz", **updates)
        self.rounds.append({"round": server_round, "aggregate_s": seconds, "clients": clients,
                            "t_configure": self.t_configure.get(server_round), "t_aggregated": time.time()})
        return arrays, metrics


@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    serve(grid, dict(context.run_config), save_replies=True)


def serve(grid: Grid, cfg: dict[str, Any], save_replies: bool) -> None:
    """Flower's FedAvg for ``cfg["rounds"]`` rounds; every global and the round records go to ``cfg["out"]``."""
    out = Path(str(cfg["out"]))
    clients = int(cfg["clients"])
    init = np.load(str(cfg["init"]))
    initial = ArrayRecord(array_dict={"weight": Array(init["weight"]), "bias": Array(init["bias"])})
    strategy = RecordingFedAvg(out, save_replies, fraction_train=1.0, fraction_evaluate=0.0,
                               min_train_nodes=clients, min_available_nodes=clients)
    globals_: dict[str, np.ndarray] = {}
    t_start = time.time()

    def record_global(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        for k, v in arrays.items():
            globals_[f"v{server_round}/{k}"] = v.numpy()
        return None

    strategy.start(grid=grid, initial_arrays=initial, num_rounds=int(cfg["rounds"]),
                   train_config=ConfigRecord({"lr": float(cfg["lr"])}), evaluate_fn=record_global)
    np.savez(out / "globals.npz", **globals_)
    (out / "server.json").write_text(json.dumps({"t_start": t_start, "t_end": time.time(),
                                                 "rounds": strategy.rounds}, indent=1))


# ------------------------------------------------------------------------------------------ deployment
PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "fmflbench"
version = "1.0.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "fmfl"

[tool.flwr.app.components]
serverapp = "{module}:server_app"
clientapp = "{module}:client_app"

[tool.flwr.app.config]
{config}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ByteRelay:
    """A loopback TCP relay that counts the bytes each way (SuperNode -> SuperLink is "up")."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.up = 0
        self.down = 0
        self.connections = 0
        self.lock = threading.Lock()
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(256)
        self.port = int(self.server.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                conn.close()
                continue
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._pipe, args=(conn, upstream, "up"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, conn, "down"), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, way: str) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                with self.lock:
                    if way == "up":
                        self.up += len(data)
                    else:
                        self.down += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def snapshot(self) -> tuple[int, int]:
        with self.lock:
            return self.up, self.down


def child_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(root: int, children: dict[int, list[int]]) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


class RssPoller:
    """Peak RSS (VmHWM) of every process under the given roots, sampled until stopped."""

    def __init__(self, roots: list[int], interval: float = 0.25) -> None:
        self.roots = roots
        self.interval = interval
        self.peak: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self.root_of: dict[int, int] = {}
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)

    def sample(self) -> None:
        children = child_map()
        for root in self.roots:
            for pid in [root, *descendants(root, children)]:
                hwm = proc_status_mb(pid, "VmHWM")
                if hwm > self.peak.get(pid, 0.0):
                    self.peak[pid] = hwm
                    self.root_of[pid] = root
                    self.names.setdefault(pid, cmdline(pid)[:120])

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join()


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    deadline = time.time() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def federate(args: argparse.Namespace) -> dict[str, Any]:
    """One Flower deployment on loopback; returns what it measured (also written to OUT/flower.json)."""
    work: Path = args.work
    if work.exists():
        shutil.rmtree(work)
    out = work / "out"
    out.mkdir(parents=True)
    shards = [Path(s) for s in args.shards]
    bindir = Path(sys.executable).parent
    app = work / "app"
    app.mkdir()
    shutil.copyfile(Path(__file__), app / f"{APP_MODULE}.py")
    config = {"rounds": args.rounds, "clients": len(shards), "lr": args.lr, "batch": args.batch,
              "image-size": args.image_size, "threads": args.threads, "weights": str(args.weights),
              "init": str(args.init), "out": str(out), "cached-features": bool(args.cached_features),
              "features-dir": str(work / "features")}
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in config.items())
    (app / "pyproject.toml").write_text(PYPROJECT.format(module=APP_MODULE, config=lines))
    env = {**os.environ, "FLWR_HOME": str(work / "home-link"), "PYTHONUNBUFFERED": "1",
           "PATH": f"{bindir}:{os.environ.get('PATH', '')}"}
    link_port = free_port()
    (work / "home-link").mkdir()
    (work / "home-link" / "config.toml").write_text(
        f'[superlink]\ndefault = "bench"\n\n[superlink.bench]\naddress = "127.0.0.1:{link_port}"\ninsecure = true\n')
    logs = work / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, cmd: list[str], env_: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(logs / f"{name}.log", "wb") as log:
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env_, cwd=work,
                                 start_new_session=True)
        procs.append(p)
        return p

    result: dict[str, Any] = {"ok": False}
    t0 = time.time()
    try:
        spawn("superlink", [str(bindir / "flower-superlink"), "--insecure", "--disable-runtime-dependency-installation",
                            "--host", "127.0.0.1", "--port", str(link_port)], env)
        _wait_port(link_port, 60)
        relay = ByteRelay(link_port)
        nodes = []
        for i, shard in enumerate(shards):
            home = work / f"home-node{i}"
            home.mkdir()
            node_env = {**env, "FLWR_HOME": str(home)}
            nodes.append(spawn(f"supernode{i}", [
                str(bindir / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{relay.port}",
                "--host", "127.0.0.1", "--port", str(free_port()), "--node-config", f'shard="{shard}"',
            ], node_env))
        poller = RssPoller([p.pid for p in nodes])
        t_run = time.time()
        run = subprocess.run([str(bindir / "flwr"), "run", str(app), "bench", "--stream"], env=env, cwd=work,
                             capture_output=True, timeout=args.timeout)
        (logs / "flwr-run.log").write_bytes(run.stdout + run.stderr)
        t_done = time.time()
        poller.stop()
        up, down = relay.snapshot()
        server = json.loads((out / "server.json").read_text()) if (out / "server.json").exists() else None
        result = {
            "ok": server is not None and len(server["rounds"]) == args.rounds,
            "returncode": run.returncode,
            "startup_s": t_run - t0,
            "run_s": t_done - t_run,
            "wire_up": up, "wire_down": down, "connections": relay.connections,
            "server": server,
            "rss": [{"pid": pid, "node": [p.pid for p in nodes].index(poller.root_of[pid]), "peak_mb": mb,
                     "cmd": poller.names.get(pid, "")} for pid, mb in poller.peak.items()],
            "logs": str(logs),
            "tail": (run.stdout + run.stderr).decode(errors="replace")[-2000:],
        }
    finally:
        _stop(procs)
    (work / "flower.json").write_text(json.dumps(result, indent=1))
    return result


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# ------------------------------------------------------------------------------------------ cold start
def coldstart(args: argparse.Namespace) -> dict[str, Any]:
    """What a fresh ClientApp process does before its first step; ``t0`` is the parent's clock at spawn."""
    marks = {"imports": time.time() - args.t0}
    client = TorchClient(args.weights, args.init, args.threads)
    marks["model"] = time.time() - args.t0
    (pixels, labels), _ = load_shard(args.shard, args.image_size)
    marks["data"] = time.time() - args.t0
    client.train_epoch(pixels, labels, args.lr, 1000, args.batch, max_steps=1)
    marks["first_step"] = time.time() - args.t0
    _, times = client.train_epoch(pixels, labels, args.lr, 1000, args.batch, max_steps=args.steps)
    digest = __import__("hashlib").sha256(pixels.tobytes() + labels.tobytes()).hexdigest()
    return {"marks": marks, "cold_s": marks["first_step"], "vmhwm_mb": proc_status_mb("self", "VmHWM"),
            "steps": times, "train_sha256": digest, "samples": len(labels)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Flower side of benchmarks.run (runs in .venv-flwr)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("federate")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--shards", nargs="+", required=True)
    p.add_argument("--rounds", type=int, required=True)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--init", type=Path, required=True)
    p.add_argument("--timeout", type=float, default=1200)
    p.add_argument("--cached-features", action="store_true",
                   help="the ClientApp trains the head on trunk features cached on disk in the first round")
    c = sub.add_parser("coldstart")
    c.add_argument("--shard", type=Path, required=True)
    c.add_argument("--weights", type=Path, required=True)
    c.add_argument("--init", type=Path, required=True)
    c.add_argument("--t0", type=float, required=True)
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--image-size", type=int, default=64)
    c.add_argument("--batch", type=int, default=32)
    c.add_argument("--lr", type=float, default=1e-3)
    c.add_argument("--steps", type=int, default=8)
    args = parser.parse_args(argv)
    if args.command == "coldstart":
        print(json.dumps(coldstart(args)))
        return 0
    if args.command == "federate":
        res = federate(args)
        print(json.dumps({k: v for k, v in res.items() if k not in ("server", "rss")}))
        return 0 if res.get("ok") else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
