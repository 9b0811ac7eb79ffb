"""A round of N real MQTT devices through one Mosquitto and one gateway process, and where the time goes.

Run: ``.venv/bin/python -m benchmarks.aggregator_round --devices 10000 [--repeats 3] [--no-write]`` (about
three minutes for 10,000 devices). The output ends with one line ``devices=N ingest_s=X round_s=Y acked=A``
(medians over the repeats). Without ``--no-write`` the run is stored under its N in
docs/bench_aggregator_round.json and the ``## Round through one Mosquitto`` section of docs/benchmarks.md is
rewritten from every N stored there (so the 1,000- and 10,000-device figures sit side by side); every other
section is left alone.

Set-up. A synthetic bundle of 149,380 trainable floats (the size of a MiniLM classification head plus
LoRA, as elsewhere in docs/benchmarks.md); N real updates encoded with the default codec
(``topk:0.01+int8+ef``) from random deltas, prepared before the clock starts. The gateway is the real
``RoundEngine`` behind the real ``MqttGateway`` (paho, manual acks, group commit: the updates that queued
while the previous commit ran are fsynced together, and Acked after), in this process. The devices are
lightweight: sender processes of at most 2,500 MQTT 3.1.1 connections each, over raw sockets (paho per
device would measure paho, not the gateway); each device connects, subscribes to its Ack topic, publishes
its retained online status and hello, and, when the round's task arrives, publishes its update at QoS 1.
K = N, so the round closes on the last update. Two times: ingest (the gateway receives the round's first
update -> the round is closed, new version saved) and round (the devices start sending -> closed).

A second run drives the same engine with the same update bytes and no MQTT at all (batches of 100, the
broker's in-flight window to the gateway), to separate the gateway's own cost from the broker's and the
network's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._docs import cpu_model

N_FLOATS = 149_380
FEDERATION = "bench"
SECTION = "## Round through one Mosquitto"
OLD_SECTIONS = ("## Round of 1,000 clients",)  # the section's title before --devices
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
RESULTS = DOCS.parent / "bench_aggregator_round.json"
CACHE = Path.home() / ".cache" / "fmfl" / "bench-round"
PER_SENDER = 2_500  # device connections per sender process
INPROC_BATCH = 100  # Mosquitto's max_inflight_messages in fmfl.mqtt.mosquitto: the most one batch can hold
# A task naming 10,000 devices is about 150 KB; the gateway refuses a task that does not fit one packet.
MAX_PACKET_BYTES = 4 * 2**20


# --- inputs ----------------------------------------------------------------------------------------


def make_bundle(path: Path) -> Path:
    """A verifiable bundle with only a manifest and initial weights (all a gateway reads)."""
    import hashlib

    from fmfl.bundle import Manifest, TrainableTensor

    path.mkdir(parents=True, exist_ok=True)
    weights = (np.random.default_rng(0).standard_normal(N_FLOATS) * 0.05).astype(np.float32)
    np.save(path / "initial_weights.npy", weights, allow_pickle=False)
    data = (path / "initial_weights.npy").read_bytes()
    manifest = Manifest(
        model={"family": "synthetic", "id": "bench", "ref": "bench", "revision": "local"},
        task={"kind": "classify", "labels": ["0", "1"], "output": "logits"},
        train_spec="head",
        optimizer={"lr": 0.01, "name": "sgd"},
        split={},
        graph={},
        preprocessing={},
        trainable=(TrainableTensor("head", (N_FLOATS,), "float32", 0),),
        artifacts={"initial_weights": "initial_weights.npy"},
        versions={"schema": "fmfl.bundle/1"},
        files={"initial_weights.npy": {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}},
    )
    manifest = Manifest(**{**manifest.__dict__, "bundle_id": manifest.derive_bundle_id()})
    (path / "manifest.json").write_bytes(manifest.to_json())
    return path


def make_updates(bundle_id: str, n_clients: int) -> list[tuple[str, list[bytes]]]:
    """Each client's round-1 update on version 0, as the MQTT payloads (chunks) it sends."""
    from fmfl.protocol import DEFAULT_CODEC, ClientUpdate, UpdateEncoder, new_update_id, split_message

    rng = np.random.default_rng(1)
    out = []
    for i in range(n_clients):
        cid = f"dev-{i:05d}"
        encoder = UpdateEncoder(DEFAULT_CODEC, N_FLOATS, seed=i)
        payload = encoder.encode((rng.standard_normal(N_FLOATS) * 0.01).astype(np.float32))
        update = ClientUpdate(
            federation=FEDERATION, bundle_id=bundle_id, round=1, model_version=0, client_id=cid,
            num_samples=int(rng.integers(10, 200)), update_id=new_update_id(), payload=payload,
            metrics={"train_loss": float(rng.uniform(0.5, 1.5))},
        )  # fmt: skip
        out.append((cid, split_message(update.to_bytes())))
    return out


def cached_updates(bundle_id: str, n: int) -> list[tuple[str, list[bytes]]]:
    """``make_updates``, kept in ~/.cache/fmfl: encoding 10,000 updates takes minutes on a busy machine, and
    the bundle (seeded) and the deltas (seeded) are the same every time; each run starts a fresh state dir,
    so reusing the update ids is harmless."""
    path = CACHE / f"updates-{bundle_id[:16]}-{n}.bin"
    if path.exists():
        return load_updates(path)
    t = time.perf_counter()
    updates = make_updates(bundle_id, n)
    print(f"encoded {n} updates in {time.perf_counter() - t:.1f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_updates(path.with_suffix(".tmp"), updates)
    path.with_suffix(".tmp").replace(path)
    return updates


def save_updates(path: Path, updates: list[tuple[str, list[bytes]]]) -> None:
    with path.open("wb") as fh:
        for cid, chunks in updates:
            fh.write(struct.pack("<HI", len(cid), len(chunks)) + cid.encode())
            for c in chunks:
                fh.write(struct.pack("<I", len(c)) + c)


def load_updates(path: Path) -> list[tuple[str, list[bytes]]]:
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        n_id, n_chunks = struct.unpack_from("<HI", data, pos)
        pos += 6
        cid = data[pos : pos + n_id].decode()
        pos += n_id
        chunks = []
        for _ in range(n_chunks):
            (size,) = struct.unpack_from("<I", data, pos)
            chunks.append(data[pos + 4 : pos + 4 + size])
            pos += 4 + size
        out.append((cid, chunks))
    return out


# --- a minimal MQTT 3.1.1 publisher (the sender processes) ---------------------------------------


def _packet(first: int, body: bytes) -> bytes:
    n, rl = len(body), bytearray()
    while True:
        byte, n = n % 128, n // 128
        rl.append(byte | (0x80 if n else 0))
        if not n:
            return bytes([first]) + bytes(rl) + body


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _connect(cid: str) -> bytes:
    # Keep-alive 900 s: a device says nothing between its hello and its update (10,000 connect slowly).
    return _packet(0x10, _s("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 900) + _s(cid))


def _subscribe(pid: int, topic: str) -> bytes:
    return _packet(0x82, struct.pack("!H", pid) + _s(topic) + b"\x01")


def _publish(topic: str, payload: bytes, pid: int, retain: bool = False) -> bytes:
    return _packet(0x32 | int(retain), _s(topic) + struct.pack("!H", pid) + payload)


class _Tally:
    """Devices of one sender past each milestone (counted as packets arrive: no scan per select)."""

    def __init__(self) -> None:
        self.ready = 0  # subscribed, status and hello PUBACKed
        self.pubacked = 0  # every chunk of the update PUBACKed by the broker
        self.acked = 0  # the gateway's Ack message received


class _Conn:
    """One device's socket and what came back on it."""

    def __init__(self, cid: str, port: int, tally: _Tally, want_pubacks: int = 2) -> None:
        self.cid = cid
        self.tally = tally
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pubacks = 0
        self.want_pubacks = want_pubacks  # raised when the update goes out
        self.suback = False
        self.ready = self.pubacked = False
        self.publishes: list[tuple[str, bytes]] = []

    def feed(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError(f"{self.cid}: broker closed the connection")
        self.buf += data
        while len(self.buf) >= 2:
            mult, length, i = 1, 0, 1
            while True:
                if i >= len(self.buf):
                    return
                byte = self.buf[i]
                length += (byte & 0x7F) * mult
                mult *= 128
                i += 1
                if not byte & 0x80:
                    break
            if len(self.buf) < i + length:
                return
            first, body = self.buf[0], bytes(self.buf[i : i + length])
            del self.buf[: i + length]
            kind = first >> 4
            if kind == 4:
                self.pubacks += 1
            elif kind == 9:
                self.suback = True
            elif kind == 3:
                (tlen,) = struct.unpack_from("!H", body)
                topic = body[2 : 2 + tlen].decode()
                pos = 2 + tlen
                if (first >> 1) & 3:
                    (pid,) = struct.unpack_from("!H", body, pos)
                    pos += 2
                    self.sock.sendall(_packet(0x40, struct.pack("!H", pid)))
                if not self.publishes:
                    self.tally.acked += 1
                self.publishes.append((topic, body[pos:]))
            if not self.ready and self.suback and self.pubacks >= 2:
                self.ready = True
                self.tally.ready += 1
            if not self.pubacked and self.want_pubacks > 2 and self.pubacks >= self.want_pubacks:
                self.pubacked = True
                self.tally.pubacked += 1


def _pump(sel: selectors.BaseSelector, until: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("sender: timed out")
        for key, _ in sel.select(min(left, 0.5)):
            key.data.feed()


def run_sender(port: int, updates_path: Path, bundle_id: str, first: int, count: int) -> None:
    """Devices ``first`` .. ``first + count - 1``. Prints READY, then one JSON line of timings."""
    from fmfl.protocol import ClientHello, ClientStatus, Topics, split_message

    topics = Topics(FEDERATION)
    updates = load_updates(updates_path)[first : first + count]
    sel = selectors.DefaultSelector()
    tally = _Tally()
    conns = []
    t0 = time.perf_counter()
    for cid, _ in updates:
        c = _Conn(cid, port, tally)
        hello = split_message(ClientHello(cid, {"cores": 4}, bundle_id=bundle_id).to_bytes())[0]
        status = split_message(ClientStatus(cid, True).to_bytes())[0]
        c.sock.sendall(
            _connect(cid)
            + _subscribe(1, topics.ack(cid))
            + _publish(topics.status(cid), status, 2, retain=True)
            + _publish(topics.hello(cid), hello, 3)
        )
        c.sock.setblocking(False)
        sel.register(c.sock, selectors.EVENT_READ, c)
        conns.append(c)
    control = _Conn(f"bench-control-{first}", port, _Tally())
    control.sock.sendall(_connect(control.cid) + _subscribe(1, topics.task))
    control.sock.setblocking(False)
    sel.register(control.sock, selectors.EVENT_READ, control)
    _pump(sel, lambda: tally.ready == len(conns) and control.suback, 600)
    connected_s = time.perf_counter() - t0
    print("READY", flush=True)
    _pump(sel, lambda: bool(control.publishes), 600)
    start_wall = time.time()
    t_task = time.perf_counter()
    for c, (_, chunks) in zip(conns, updates, strict=True):
        c.want_pubacks = 2 + len(chunks)
        c.sock.setblocking(True)
        c.sock.sendall(b"".join(_publish(topics.update(c.cid), ch, 10 + i) for i, ch in enumerate(chunks)))
        c.sock.setblocking(False)
    t_sent = time.perf_counter()
    _pump(sel, lambda: tally.pubacked == len(conns), 600)
    t_pubacked = time.perf_counter()
    _pump(sel, lambda: tally.acked == len(conns), 600)
    t_acked = time.perf_counter()
    print(
        json.dumps(
            {
                "start_wall": start_wall,
                "connect_s": connected_s,
                "send_s": t_sent - t_task,
                "all_pubacks_wall": start_wall + t_pubacked - t_task,
                "all_acks_wall": start_wall + t_acked - t_task,
                "acks": sum(1 for c in conns if c.publishes),
                "cpu_s": time.process_time(),
            }
        ),
        flush=True,
    )
    for c in conns:
        c.sock.close()


# --- the gateway side ------------------------------------------------------------------------------


def _cpu_of(pid: int, tid: int | None = None) -> float:
    """CPU seconds of a process, or of one of its threads (``tid``: a native thread id)."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Clock:
    """Wraps a method so its total wall time is counted under ``name``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, obj: Any, method: str, name: str) -> None:
        inner = getattr(obj, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

        setattr(obj, method, timed)


def make_engine(bundle: Path, state_dir: Path, n: int, observer: Any = None) -> Any:
    from fmfl.aggregation import make_strategy
    from fmfl.aggregator.app.server import load_initial_weights
    from fmfl.aggregator.core.engine import RoundEngine
    from fmfl.aggregator.core.round_config import RoundConfig

    bundle_id, weights = load_initial_weights(bundle, None)
    config = RoundConfig(
        federation=FEDERATION, rounds=1, clients_per_round=n, min_clients=n, round_timeout=600, over_select=1.0,
        local_epochs=1, selection_window=0.0, start_timeout=900, max_packet_bytes=MAX_PACKET_BYTES,
    )  # fmt: skip
    return RoundEngine(
        config=config, bundle_id=bundle_id, initial_weights=weights, strategy=make_strategy("fedavg"),
        state_dir=state_dir, observer=observer,
    )  # fmt: skip


def run_in_process(bundle: Path, workdir: Path, updates: list[tuple[str, list[bytes]]]) -> dict[str, Any]:
    """The same round without MQTT, in batches of INPROC_BATCH messages: the engine's own cost."""
    from fmfl.protocol import ClientHello, Topics, split_message

    engine = make_engine(bundle, workdir / "state-inproc", len(updates))
    topics = Topics(FEDERATION)
    now = time.time()
    engine.start(now)
    for cid, _ in updates:
        hello = split_message(ClientHello(cid, {"cores": 4}, bundle_id=engine.bundle_id).to_bytes())[0]
        engine.handle(topics.hello(cid), hello, now)
    clock = _Clock()
    clock.wrap(engine, "_close", "close")
    messages = [(topics.update(cid), c) for cid, chunks in updates for c in chunks]
    t0 = time.perf_counter()
    engine.tick(time.time())
    for i in range(0, len(messages), INPROC_BATCH):
        engine.handle_batch(messages[i : i + INPROC_BATCH], time.time())
    total = time.perf_counter() - t0
    assert engine.version == 1, "the round did not close"
    engine.close()
    return {"round_s": total, "stages": dict(engine.ingest.times.seconds), "close_s": clock.seconds["close"]}


def run_over_mqtt(bundle: Path, workdir: Path, updates_path: Path, bundle_id: str, n: int) -> dict[str, Any]:
    from fmfl.aggregator.app.mqtt_gateway import MqttGateway
    from fmfl.aggregator.core.observer import RoundObserver
    from fmfl.mqtt import parse_broker_url
    from fmfl.mqtt.mosquitto import Mosquitto
    from fmfl.protocol import ProtocolError

    marks: dict[str, float] = {}

    class Marks(RoundObserver):
        def round_started(self, round: int, version: int, selected: int) -> None:
            clock.seconds.clear()  # hellos and status before the round are not the round's cost
            engine.ingest.times.seconds.clear()
            marks["commits0"] = engine.wal.commits

        def round_closed(self, summary: Any) -> None:
            marks["closed"] = time.time()
            cpu["closed"] = cpu_now()
            marks["participants"] = summary.participants
            marks["commits"] = engine.wal.commits - marks["commits0"]

    def is_update(topic: str) -> bool:
        try:
            return bool(engine.topics.parse(topic)[0] == "update")
        except ProtocolError:
            return False

    cpu: dict[str, dict[str, float]] = {}

    def cpu_now() -> dict[str, float]:
        """CPU seconds so far: this process, its engine thread (the caller), paho's network thread, the broker."""
        assert broker.process is not None
        return {"gateway": time.process_time(), "engine_thread": _cpu_of(os.getpid(), threading.get_native_id()),
                "paho_thread": _cpu_of(os.getpid(), gateway.pump.client._thread.native_id),
                "broker": _cpu_of(broker.process.pid)}  # fmt: skip

    clock = _Clock()
    broker = Mosquitto(workdir / "mosquitto").start()
    assert broker.process is not None
    senders: list[subprocess.Popen[str]] = []
    try:
        engine = make_engine(bundle, workdir / "state-mqtt", n, Marks())
        gateway = MqttGateway(engine, parse_broker_url(broker.url))
        batch = engine.handle_batch

        def first_update(messages: Any, now: float) -> Any:
            if "first_update" not in marks and "commits0" in marks and any(is_update(t) for t, _ in messages):
                marks["first_update"] = time.time()
                cpu["first_update"] = cpu_now()
            marks["batches"] = marks.get("batches", 0) + 1
            return batch(messages, now)

        engine.handle_batch = first_update
        clock.wrap(engine, "handle_batch", "handle")
        clock.wrap(engine, "_close", "close")
        clock.wrap(gateway, "_publish", "publish")
        stop = threading.Event()
        gateway.connect()
        clock.wrap(gateway.pump.client, "ack", "mqtt_ack")
        thread = threading.Thread(target=gateway.run, args=(stop,), daemon=True)
        cpu0, broker_cpu0 = time.process_time(), _cpu_of(broker.process.pid)
        thread.start()
        for first in range(0, n, PER_SENDER):
            senders.append(subprocess.Popen(
                [sys.executable, "-m", "benchmarks.aggregator_round", "--sender", "--port", str(broker.port),
                 "--updates", str(updates_path), "--bundle-id", bundle_id, "--first", str(first),
                 "--count", str(min(PER_SENDER, n - first))],
                stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
            ))  # fmt: skip
        for s in senders:
            assert s.stdout is not None
            assert s.stdout.readline().strip() == "READY"
        results = [json.loads(s.stdout.readline()) for s in senders if s.stdout is not None]
        sender_cpu = 0.0
        for s in senders:
            s.wait(60)
        thread.join(120)
        stop.set()
        cpu_s = time.process_time() - cpu0
        broker_cpu = _cpu_of(broker.process.pid) - broker_cpu0
        sender_cpu = sum(r["cpu_s"] for r in results)
    finally:
        for s in senders:
            if s.poll() is None:
                s.kill()
        broker.stop()
    assert marks.get("participants") == n, marks
    start = min(r["start_wall"] for r in results)
    return {
        "ingest_s": marks["closed"] - marks["first_update"],
        "round_s": marks["closed"] - start,
        "acked": sum(r["acks"] for r in results),
        "stages": dict(engine.ingest.times.seconds),
        "clock": clock.seconds,
        "commits": marks["commits"],
        "connect_s": max(r["connect_s"] for r in results),
        "send_s": max(r["start_wall"] + r["send_s"] for r in results) - start,
        "all_pubacks_s": max(r["all_pubacks_wall"] for r in results) - start,
        "all_acks_s": max(r["all_acks_wall"] for r in results) - start,
        "gateway_cpu_s": cpu_s,
        "broker_cpu_s": broker_cpu,
        "ingest_cpu_s": {k: v - cpu["first_update"][k] for k, v in cpu["closed"].items()},
        "sender_cpu_s": sender_cpu,
        "senders": len(results),
    }


# --- report ----------------------------------------------------------------------------------------


def machine() -> str:
    cpu = cpu_model("?")
    return (
        f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), shared with other work; "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"Mosquitto {_mosquitto_version()}, paho-mqtt {_paho_version()}"
    )


def _mosquitto_version() -> str:
    from fmfl.mqtt.mosquitto import mosquitto_binary

    binary = mosquitto_binary()
    if binary is None:
        return "?"
    out = subprocess.run([binary, "-h"], capture_output=True, text=True).stdout.splitlines()
    return out[0].split("version")[-1].strip() if out else "?"


def _paho_version() -> str:
    import paho.mqtt

    return str(paho.mqtt.__version__)


STAGES = {
    "parse": "parse ClientUpdate (framing, metadata)",
    "dedupe": "duplicate check (WAL + journal lookups)",
    "decode": "decode payload (`decode_update`)",
    "validate": "validate (`strategy.check`)",
    "wal": "write-ahead log append (insert, no fsync)",
    "accumulate": "accumulate (`strategy.accept`)",
    "commit": "group commit: one fsync per batch",
    "journal": "journal the batch's metadata (one transaction)",
}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose ingest time is the median (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda r: r["ingest_s"])
    return ordered[(len(ordered) - 1) // 2]


def summarize(n: int, runs: list[dict[str, Any]], inproc: list[dict[str, Any]], update_bytes: float,
              load: tuple[float, float]) -> dict[str, Any]:  # fmt: skip
    """What docs/bench_aggregator_round.json keeps of one invocation."""
    return {
        "devices": n,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "load_before_after": list(load),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "update_bytes": update_bytes,
        "ingest_s": statistics.median(r["ingest_s"] for r in runs),
        "round_s": statistics.median(r["round_s"] for r in runs),
        "acked": statistics.median(r["acked"] for r in runs),
        "runs": [{k: r[k] for k in ("ingest_s", "round_s", "acked", "commits")} for r in runs],
        "median": median_run(runs),
        "inproc_s": sorted(r["round_s"] for r in inproc),
        "inproc": median_run([{**r, "ingest_s": r["round_s"]} for r in inproc]),
    }


def render(results: dict[str, dict[str, Any]]) -> str:
    """The docs section from every N stored in docs/bench_aggregator_round.json, side by side."""
    cols = [results[k] for k in sorted(results, key=int)]
    head = " | ".join(f"{c['devices']:,} devices" for c in cols)
    sep = "|---|" + "---:|" * len(cols)

    def row(label: str, cell: Callable[[dict[str, Any]], str]) -> str:
        return f"| {label} | " + " | ".join(cell(c) for c in cols) + " |"

    def runs(c: dict[str, Any], key: str) -> str:
        return " / ".join(f"{r[key]:.2f}" for r in sorted(c["runs"], key=lambda r: r[key]))

    lines = [
        SECTION,
        "",
        "Written by `python -m benchmarks.aggregator_round --devices N` (one invocation per N, stored in "
        "docs/bench_aggregator_round.json). Each column's machine, date and load are below the tables.",
        "",
        f"One round, K = N selected and N accepted, model of {N_FLOATS:,} floats, default codec "
        f"`topk:0.01+int8+ef` ({cols[0]['update_bytes'] / 1024:.1f} KiB per update, one MQTT packet each). "
        f"Devices: N MQTT connections held by sender processes of at most {PER_SENDER:,} raw sockets each, all on "
        "this machine with the broker (one Mosquitto) and the gateway (one process, group commit). Ingest = from "
        "the gateway receiving the round's first update to the round closed (new version saved, K-th update "
        "committed); round = from the devices starting to send (task in hand) to the same point. Medians of the "
        "repeats, every run listed; the stage table is the median run's.",
        "",
        f"| | {head} |",
        sep,
        row("**ingest: first update received -> round closed** (median)", lambda c: f"**{c['ingest_s']:.2f}**"),
        row("ingest, every run (s)", lambda c: runs(c, "ingest_s")),
        row("round: devices start sending -> round closed (median)", lambda c: f"{c['round_s']:.2f}"),
        row("devices holding their Ack at the end (median)", lambda c: f"{c['acked']:,.0f}"),
        row("devices: all updates written to their sockets", lambda c: f"{c['median']['send_s']:.2f}"),
        row("devices: all broker PUBACKs received", lambda c: f"{c['median']['all_pubacks_s']:.2f}"),
        row("devices: all gateway Acks received", lambda c: f"{c['median']['all_acks_s']:.2f}"),
        row("WAL commits (fsyncs) in the round / updates per commit",
            lambda c: f"{c['median']['commits']:,} / {c['devices'] / max(c['median']['commits'], 1):.0f}"),
        row(f"same updates fed to the engine in-process, batches of {INPROC_BATCH}, no MQTT (one run)",
            lambda c: " / ".join(f"{x:.2f}" for x in c["inproc_s"])),
        row("(before the round: devices connect, subscribe, say hello)", lambda c: f"{c['median']['connect_s']:.1f}"),
        row("CPU s during ingest: gateway process (its engine thread + paho's network thread) / Mosquitto",
            lambda c: "{gateway:.2f} ({engine_thread:.2f} + {paho_thread:.2f}) / {broker:.2f}".format(
                **c["median"]["ingest_cpu_s"])),
        row("CPU s from the senders' start: gateway / Mosquitto / senders",
            lambda c: f"{c['median']['gateway_cpu_s']:.1f} / {c['median']['broker_cpu_s']:.1f} / "
                      f"{c['median']['sender_cpu_s']:.1f}"),
        "",
        "Where the gateway's time goes (wall seconds summed over the round's updates, and per update in µs):",
        "",
        "| stage | " + " | ".join(f"{c['devices']:,}: s | µs/update" for c in cols) + " |",
        "|---|" + "---:|---:|" * len(cols),
    ]  # fmt: skip

    def stage_row(label: str, seconds: Callable[[dict[str, Any]], float]) -> str:
        cells = [f"{seconds(c):.3f} | {1e6 * seconds(c) / c['devices']:.0f}" for c in cols]
        return f"| {label} | " + " | ".join(cells) + " |"

    def stage(key: str) -> Callable[[dict[str, Any]], float]:
        return lambda c: float(c["median"]["stages"].get(key, 0.0))

    for key, label in STAGES.items():
        lines.append(stage_row(label, stage(key)))

    def other(c: dict[str, Any]) -> float:
        m = c["median"]
        return max(0.0, float(m["clock"].get("handle", 0.0) - sum(m["stages"].values()) - m["clock"].get("close", 0.0)))

    lines += [
        stage_row("reassembly, Ack building, engine bookkeeping", other),
        stage_row("close: aggregate, save version 1, metrics line, prune", lambda c: c["median"]["clock"]["close"]),
        stage_row("MQTT out: publish Acks (paho)", lambda c: c["median"]["clock"].get("publish", 0.0)),
        stage_row("MQTT in: acknowledge packets (paho)", lambda c: c["median"]["clock"].get("mqtt_ack", 0.0)),
        "",
    ]
    for c in cols:
        lo, hi = c["load_before_after"]
        lines.append(f"{c['devices']:,} devices: {c['date']}, load average {lo:.1f} before / {hi:.1f} after; "
                     f"{c['machine']}.")  # fmt: skip
    lines += ["", _reading(cols)]
    # Prose paragraphs wrapped like the rest of docs/benchmarks.md; table rows stay on one line.
    wrapped = [ln if ln.startswith("|") else textwrap.fill(ln, 110, break_on_hyphens=False) for ln in lines]
    return "\n".join(wrapped) + "\n"


def _reading(cols: list[dict[str, Any]]) -> str:
    big = cols[-1]
    m = big["median"]
    n = big["devices"]
    cpu = m["ingest_cpu_s"]
    lo, hi = big["load_before_after"]
    commit = m["stages"].get("commit", 0.0)
    return (
        f"Reading: {n:,} devices are ingested in {big['ingest_s']:.2f} s wall (median), every update Acked after "
        f"its commit ({big['acked']:,.0f} Acks received). During ingest the gateway process used {cpu['gateway']:.2f} "
        f"CPU seconds ({1e6 * cpu['gateway'] / n:.0f} µs per update: {cpu['engine_thread']:.2f} s in the engine's "
        f"thread, {cpu['paho_thread']:.2f} s in paho's network thread) and Mosquitto {cpu['broker']:.2f} s: the "
        "gateway is one Python process, so its two threads share one core, and that CPU time is the floor of the "
        f"ingest time on this machine. Wall time above it is waiting: for the CPU (load average {lo:.0f}-{hi:.0f} "
        "on 2 cores during this run: other work shared the machine) and for the disk. Group commit makes the "
        f"write-ahead log's fsync {1e6 * commit / n:.0f} µs of wall per update ({m['commits']:,} commits for {n:,} "
        "updates), where one fsync per update cost 411 µs on 2026-11-25 (the 1,000-client table of that date). "
        + (
            f"No socket, broker or memory limit was met at {n:,} devices (open files limit {big['nofile']:,}: the "
            f"broker holds one socket per device, each sender process {PER_SENDER:,})."
            if big["acked"] == n
            else f"{n - big['acked']:,.0f} devices got no Ack: a limit was met (see the run's output)."
        )
    )


def write_section(text: str) -> None:
    doc = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    lines = doc.splitlines(keepends=True)
    titles = (SECTION, *OLD_SECTIONS)
    start = next((i for i, line in enumerate(lines) if line.strip() in titles), None)
    if start is None:
        DOCS.write_text(doc.rstrip("\n") + "\n\n" + text)
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    doc = "".join(lines[:start]) + text + ("\n" if end < len(lines) else "") + "".join(lines[end:])
    # The index at the top links the section by its title.
    doc = doc.replace("[Round of 1,000 clients](#round-of-1000-clients)",
                      "[Round through one Mosquitto](#round-through-one-mosquitto)")  # fmt: skip
    DOCS.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sender", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--updates", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bundle-id", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1_000, help="devices in the round (K = N)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds to run (medians reported)")
    parser.add_argument("--no-write", action="store_true", help="print, do not edit docs/")
    args = parser.parse_args()
    if args.sender:
        run_sender(args.port, args.updates, args.bundle_id, args.first, args.count)
        return
    n = args.devices
    if n < 1 or args.repeats < 1:
        parser.error("--devices and --repeats must be at least 1")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fmfl-round-bench-") as tmp:
        work = Path(tmp)
        bundle = make_bundle(work / "bundle")
        from fmfl.bundle import verify_bundle

        bundle_id = verify_bundle(bundle).bundle_id
        updates = cached_updates(bundle_id, n)
        update_bytes = float(np.mean([sum(len(c) for c in ch) for _, ch in updates]))
        save_updates(work / "updates.bin", updates)
        # One in-process run: a reference for the engine's own cost, not the figure (10,000 take a minute here).
        inproc = [run_in_process(bundle, work / "inproc", updates)]
        print(f"in-process round: {inproc[-1]['round_s']:.2f} s", flush=True)
        del updates
        runs = []
        for i in range(args.repeats):
            runs.append(run_over_mqtt(bundle, work / f"mqtt-{i}", work / "updates.bin", bundle_id, n))
            r = runs[-1]
            print(f"MQTT round: ingest {r['ingest_s']:.2f} s, round {r['round_s']:.2f} s, acked {r['acked']}, "
                  f"{r['commits']} commits  {json.dumps(r['clock'])}", flush=True)  # fmt: skip
    summary = summarize(n, runs, inproc, update_bytes, (load_before, os.getloadavg()[0]))
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    stored[str(n)] = summary
    print(render(stored))
    if not args.no_write:
        RESULTS.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
        write_section(render(stored))
        print(f"wrote {RESULTS.name} and the section of {DOCS}")
    ingest, rnd, acked = summary["ingest_s"], summary["round_s"], summary["acked"]
    print(f"devices={n} ingest_s={ingest:.3f} round_s={rnd:.3f} acked={acked:.0f}")


if __name__ == "__main__":
    main()
