"""One round of 1,000 clients through one Mosquitto on this machine, and where the time goes.

Run: ``.venv/bin/python -m benchmarks.aggregator_round`` (about a minute). Writes the
``## Round of 1,000 clients`` section of docs/benchmarks.md and leaves every other section alone.

Set-up. A synthetic bundle of 149,380 trainable floats (the size of a MiniLM classification head plus
LoRA, as elsewhere in docs/benchmarks.md); 1,000 real updates encoded with the default codec
(``topk:0.01+int8+ef``) from random deltas, prepared before the clock starts. The gateway is the real
``RoundEngine`` behind the real ``MqttGateway`` (paho, manual acks, WAL fsynced before every Ack),
in this process. The 1,000 devices are lightweight: one sender process holds 1,000 MQTT 3.1.1
connections over raw sockets (a few hundred lines of paho per device would measure paho, not the
gateway); each device connects, subscribes to its Ack topic, publishes its retained online status and
hello, and, when the round's task arrives, publishes its update at QoS 1. The round is timed from the
moment the devices start sending (task in hand) to the saved new global version; K = 1,000, so it
closes on the last update.

A second run drives the same engine with the same update bytes and no MQTT at all, to separate the
gateway's own cost from the broker's and the network's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import selectors
import socket
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
N_CLIENTS = 1_000
FEDERATION = "bench"
SECTION = "## Round of 1,000 clients"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


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


# --- a minimal MQTT 3.1.1 publisher (the sender process) -------------------------------------------


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
    return _packet(0x10, _s("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 120) + _s(cid))


def _subscribe(pid: int, topic: str) -> bytes:
    return _packet(0x82, struct.pack("!H", pid) + _s(topic) + b"\x01")


def _publish(topic: str, payload: bytes, pid: int, retain: bool = False) -> bytes:
    return _packet(0x32 | int(retain), _s(topic) + struct.pack("!H", pid) + payload)


class _Conn:
    """One device's socket and what came back on it."""

    def __init__(self, cid: str, port: int) -> None:
        self.cid = cid
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pubacks = 0
        self.suback = False
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
                self.publishes.append((topic, body[pos:]))


def _pump(sel: selectors.BaseSelector, until: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("sender: timed out")
        for key, _ in sel.select(min(left, 0.5)):
            key.data.feed()


def run_sender(port: int, updates_path: Path) -> None:
    """The 1,000 devices. Prints READY, then one JSON line of timings."""
    from fmfl.protocol import ClientHello, ClientStatus, Topics, split_message

    topics = Topics(FEDERATION)
    updates = load_updates(updates_path)
    bundle_id = sys.argv[sys.argv.index("--bundle-id") + 1]
    sel = selectors.DefaultSelector()
    conns = []
    t0 = time.perf_counter()
    for cid, _ in updates:
        c = _Conn(cid, port)
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
    control = _Conn("bench-control", port)
    control.sock.sendall(_connect("bench-control") + _subscribe(1, topics.task))
    control.sock.setblocking(False)
    sel.register(control.sock, selectors.EVENT_READ, control)
    _pump(sel, lambda: all(c.suback and c.pubacks >= 2 for c in conns) and control.suback, 120)
    connected_s = time.perf_counter() - t0
    print("READY", flush=True)
    _pump(sel, lambda: bool(control.publishes), 300)
    start_wall = time.time()
    t_task = time.perf_counter()
    for c, (_, chunks) in zip(conns, updates, strict=True):
        c.sock.setblocking(True)
        c.sock.sendall(b"".join(_publish(topics.update(c.cid), ch, 10 + i) for i, ch in enumerate(chunks)))
        c.sock.setblocking(False)
    t_sent = time.perf_counter()
    want = {c.cid: 2 + len(ch) for c, (_, ch) in zip(conns, updates, strict=True)}
    _pump(sel, lambda: all(c.pubacks >= want[c.cid] for c in conns), 300)
    t_pubacked = time.perf_counter()
    _pump(sel, lambda: all(c.publishes for c in conns), 300)
    t_acked = time.perf_counter()
    print(
        json.dumps(
            {
                "start_wall": start_wall,
                "connect_s": connected_s,
                "send_s": t_sent - t_task,
                "all_pubacks_s": t_pubacked - t_task,
                "all_acks_s": t_acked - t_task,
                "acks": sum(len(c.publishes) for c in conns),
                "cpu_s": time.process_time(),
            }
        ),
        flush=True,
    )
    for c in conns:
        c.sock.close()


# --- the gateway side ------------------------------------------------------------------------------


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
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


def make_engine(bundle: Path, state_dir: Path, observer: Any = None) -> Any:
    from fmfl.aggregator import make_strategy
    from fmfl.aggregator.engine import RoundEngine
    from fmfl.aggregator.round_config import RoundConfig
    from fmfl.aggregator.server import load_initial_weights

    bundle_id, weights = load_initial_weights(bundle, None)
    config = RoundConfig(
        federation=FEDERATION, rounds=1, clients_per_round=N_CLIENTS, min_clients=N_CLIENTS,
        round_timeout=600, over_select=1.0, local_epochs=1, selection_window=0.0, start_timeout=600,
    )  # fmt: skip
    return RoundEngine(
        config=config, bundle_id=bundle_id, initial_weights=weights, strategy=make_strategy("fedavg"),
        state_dir=state_dir, observer=observer,
    )  # fmt: skip


def run_in_process(bundle: Path, workdir: Path, updates: list[tuple[str, list[bytes]]]) -> dict[str, Any]:
    """The same round without MQTT: the engine's own cost."""
    from fmfl.protocol import ClientHello, Topics, split_message

    engine = make_engine(bundle, workdir / "state-inproc")
    topics = Topics(FEDERATION)
    now = time.time()
    engine.start(now)
    for cid, _ in updates:
        hello = split_message(ClientHello(cid, {"cores": 4}, bundle_id=engine.bundle_id).to_bytes())[0]
        engine.handle(topics.hello(cid), hello, now)
    clock = _Clock()
    clock.wrap(engine, "_close", "close")
    t0 = time.perf_counter()
    engine.tick(time.time())
    for cid, chunks in updates:
        for c in chunks:
            engine.handle(topics.update(cid), c, time.time())
    total = time.perf_counter() - t0
    assert engine.version == 1, "the round did not close"
    engine.close()
    return {"round_s": total, "stages": dict(engine.ingest.times.seconds), "close_s": clock.seconds["close"]}


def run_over_mqtt(bundle: Path, workdir: Path, updates_path: Path, bundle_id: str) -> dict[str, Any]:
    from fmfl.aggregator.gateway import MqttGateway
    from fmfl.aggregator.observer import RoundObserver
    from fmfl.mqtt import parse_broker_url
    from fmfl.mqtt.mosquitto import Mosquitto

    marks: dict[str, float] = {}

    class Marks(RoundObserver):
        def round_started(self, round: int, version: int, selected: int) -> None:
            clock.seconds.clear()  # hellos and status before the round are not the round's cost

        def round_closed(self, summary: Any) -> None:
            marks["closed"] = time.time()
            marks["participants"] = summary.participants

    clock = _Clock()
    broker = Mosquitto(workdir / "mosquitto").start()
    assert broker.process is not None
    try:
        engine = make_engine(bundle, workdir / "state-mqtt", Marks())
        gateway = MqttGateway(engine, parse_broker_url(broker.url))
        clock.wrap(engine, "handle", "handle")
        clock.wrap(engine, "_close", "close")
        clock.wrap(gateway, "_publish", "publish")
        stop = threading.Event()
        gateway.connect()
        clock.wrap(gateway.client, "ack", "mqtt_ack")
        thread = threading.Thread(target=gateway.run, args=(stop,), daemon=True)
        cpu0, broker_cpu0 = time.process_time(), _cpu_of(broker.process.pid)
        thread.start()
        sender = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.aggregator_round", "--sender", "--port", str(broker.port),
             "--updates", str(updates_path), "--bundle-id", bundle_id],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        assert sender.stdout is not None
        assert sender.stdout.readline().strip() == "READY"
        result = json.loads(sender.stdout.readline())
        sender.wait(60)
        thread.join(60)
        stop.set()
        cpu = time.process_time() - cpu0
        broker_cpu = _cpu_of(broker.process.pid) - broker_cpu0
    finally:
        broker.stop()
    assert marks.get("participants") == N_CLIENTS, marks
    return {
        "round_s": marks["closed"] - result["start_wall"],
        "stages": dict(engine.ingest.times.seconds),
        "clock": clock.seconds,
        "sender": result,
        "gateway_cpu_s": cpu,
        "broker_cpu_s": broker_cpu,
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


def render(mqtt_runs: list[dict[str, Any]], inproc_runs: list[dict[str, Any]], update_bytes: float) -> str:
    best = min(mqtt_runs, key=lambda r: r["round_s"])
    ip = min(inproc_runs, key=lambda r: r["round_s"])
    rounds = " / ".join(f"{r['round_s']:.2f}" for r in sorted(mqtt_runs, key=lambda r: r["round_s"]))
    ip_rounds = " / ".join(f"{r['round_s']:.2f}" for r in sorted(inproc_runs, key=lambda r: r["round_s"]))
    n = N_CLIENTS
    stage_names = {
        "parse": "parse ClientUpdate (framing, metadata)",
        "dedupe": "duplicate check (WAL + journal lookups)",
        "decode": "decode payload (`decode_update`)",
        "validate": "validate (`strategy.check`)",
        "wal": "write-ahead log append + fsync",
        "accumulate": "accumulate (`strategy.accept`)",
        "journal": "journal the update's metadata",
    }
    lines = [
        SECTION,
        "",
        f"Written by `python -m benchmarks.aggregator_round` on {time.strftime('%Y-%m-%d')}.",
        f"Machine: {machine()}.",
        "",
        f"One round, K = {n:,} selected and {n:,} accepted, model of {N_FLOATS:,} floats, default codec "
        f"`topk:0.01+int8+ef` ({update_bytes / 1024:.1f} KiB per update, one MQTT packet each). Devices: "
        f"{n:,} MQTT connections held by one sender process (raw sockets), all on this machine with "
        "the broker and the gateway. Round time = from the devices starting to send (they have the "
        f"task) to the new global version saved (the round closes on the {n:,}th accepted update). Runs: "
        f"{len(mqtt_runs)} through Mosquitto, {len(inproc_runs)} in-process; best shown, all listed.",
        "",
        "| | seconds |",
        "|---|---:|",
        f"| **round through Mosquitto** (runs: {rounds}) | **{best['round_s']:.2f}** |",
        f"| same updates fed to the engine in-process, no MQTT (runs: {ip_rounds}) | {ip['round_s']:.2f} |",
        f"| devices: all {n:,} updates written to their sockets | {best['sender']['send_s']:.2f} |",
        f"| devices: all broker PUBACKs received | {best['sender']['all_pubacks_s']:.2f} |",
        f"| devices: all gateway Ack messages received | {best['sender']['all_acks_s']:.2f} |",
        f"| (before the round: {n:,} devices connect, subscribe, say hello) | "
        f"{best['sender']['connect_s']:.2f} |",
        "",
        "Where the gateway's time goes in the best MQTT run (wall seconds summed over the round's "
        f"{n:,} updates; per update in µs), next to the in-process run:",
        "",
        "| stage | through Mosquitto: s | µs/update | in-process: s |",
        "|---|---:|---:|---:|",
    ]
    stages_sum = 0.0
    for key, label in stage_names.items():
        s = best["stages"].get(key, 0.0)
        stages_sum += s
        lines.append(f"| {label} | {s:.3f} | {1e6 * s / n:.0f} | {ip['stages'].get(key, 0.0):.3f} |")
    handle = best["clock"].get("handle", 0.0)
    other = max(0.0, handle - stages_sum - best["clock"].get("close", 0.0))
    lines += [
        f"| reassembly, Ack building, engine bookkeeping | {other:.3f} | {1e6 * other / n:.0f} | |",
        f"| close: aggregate, save version 1, metrics line, prune | "
        f"{best['clock'].get('close', 0.0):.3f} | | {ip['close_s']:.3f} |",
        f"| MQTT out: publish Acks (paho) | {best['clock'].get('publish', 0.0):.3f} | "
        f"{1e6 * best['clock'].get('publish', 0.0) / n:.0f} | |",
        f"| MQTT in: acknowledge packets (paho) | {best['clock'].get('mqtt_ack', 0.0):.3f} | "
        f"{1e6 * best['clock'].get('mqtt_ack', 0.0) / n:.0f} | |",
        "",
        f"CPU seconds during the MQTT run: gateway process {best['gateway_cpu_s']:.2f} (engine + paho's "
        f"network thread), Mosquitto {best['broker_cpu_s']:.2f}, sender process "
        f"{best['sender']['cpu_s']:.2f} (including its set-up) - three processes on 2 cores.",
        "",
    ]
    lines += ["", _reading(best, ip)]
    # Prose paragraphs wrapped like the rest of docs/benchmarks.md; table rows stay on one line.
    wrapped = [ln if ln.startswith("|") else textwrap.fill(ln, 110, break_on_hyphens=False) for ln in lines]
    return "\n".join(wrapped) + "\n"


def _reading(best: dict[str, Any], ip: dict[str, Any]) -> str:
    wal = best["stages"].get("wal", 0.0)
    return (
        "Reading: the round costs "
        f"{best['round_s']:.2f} s through the broker against {ip['round_s']:.2f} s in-process; "
        f"the fsynced write-ahead log is {100 * wal / max(best['round_s'], 1e-9):.0f}% of the MQTT round "
        "(one fsync per update, before its Ack, is the crash-safety price; the disk is shared, so it "
        "varies between runs); decoding is the next cost, validating and accumulating a 1%-dense "
        "update cost tens of µs. The broker itself is cheap; the rest is paho's network thread and the "
        "sender sharing the two cores with the gateway."
    )


def write_section(text: str) -> None:
    doc = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    lines = doc.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        DOCS.write_text(doc.rstrip("\n") + "\n\n" + text)
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    DOCS.write_text("".join(lines[:start]) + text + ("\n" if end < len(lines) else "") + "".join(lines[end:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sender", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--updates", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bundle-id", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3, help="MQTT rounds to run (best reported)")
    parser.add_argument("--no-write", action="store_true", help="print, do not edit docs/benchmarks.md")
    args = parser.parse_args()
    if args.sender:
        run_sender(args.port, args.updates)
        return
    with tempfile.TemporaryDirectory(prefix="fmfl-round-bench-") as tmp:
        work = Path(tmp)
        bundle = make_bundle(work / "bundle")
        from fmfl.bundle import verify_bundle

        bundle_id = verify_bundle(bundle).bundle_id
        t = time.perf_counter()
        updates = make_updates(bundle_id, N_CLIENTS)
        print(f"encoded {N_CLIENTS} updates in {time.perf_counter() - t:.1f} s", flush=True)
        update_bytes = float(np.mean([sum(len(c) for c in ch) for _, ch in updates]))
        save_updates(work / "updates.bin", updates)
        inproc = []
        for i in range(args.repeats):
            inproc.append(run_in_process(bundle, work / f"inproc-{i}", updates))
            print(f"in-process round: {inproc[-1]['round_s']:.2f} s", flush=True)
        runs = []
        for i in range(args.repeats):
            runs.append(run_over_mqtt(bundle, work / f"mqtt-{i}", work / "updates.bin", bundle_id))
            print(f"MQTT round: {runs[-1]['round_s']:.2f} s  {json.dumps(runs[-1]['clock'])}", flush=True)
    text = render(runs, inproc, update_bytes)
    print(text)
    if not args.no_write:
        write_section(text)
        print(f"wrote the section to {DOCS}")


if __name__ == "__main__":
    main()
