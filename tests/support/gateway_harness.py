"""Support for the gateway tests: bundles, update bytes, simulated devices, an aggregator subprocess.

A test module by name only (so it may live here), imported by its siblings as ``gateway_harness``
(pyproject.toml lists this folder in pytest's ``pythonpath``); its own tests check the helpers themselves.

Simulated devices run the real device session (``fmfl.edge_client.session``) over the real MQTT pump:
they register (retained online status and hello, offline status as the MQTT will), wait for a RoundTask
selecting them and its global model, encode a known delta with ``UpdateEncoder`` under the task's codec,
publish it as chunks at QoS 1 and resend it until an Ack message for its update id arrives. What each
sent (the decoded ``SparseUpdate``, bit for bit what the gateway decodes) is recorded for the FedAvg oracle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from fmfl.aggregation import make_strategy
from fmfl.aggregator.core.engine import RoundEngine
from fmfl.aggregator.core.outbound import Outgoing
from fmfl.aggregator.core.round_config import RoundConfig
from fmfl.bundle import Manifest, TrainableTensor, verify_bundle
from fmfl.edge_client.held_model import HeldModel
from fmfl.edge_client.session import DeviceSession, SessionConfig
from fmfl.mqtt import MqttOptions
from fmfl.mqtt.pump import MqttPump
from fmfl.protocol import (
    Ack,
    ClientHello,
    ClientStatus,
    ClientUpdate,
    GlobalModel,
    Limits,
    ProtocolError,
    Reason,
    Reassembler,
    RoundTask,
    SparseUpdate,
    Topics,
    UpdateEncoder,
    decode_update,
    new_update_id,
    split_message,
)

REPO = Path(__file__).resolve().parents[2]
Delta = Callable[[int, int], np.ndarray]  # (round, size) -> float32 delta


# --- bundles ---------------------------------------------------------------------------------------


def make_synthetic_bundle(path: Path, size: int, *, seed: int = 0) -> Path:
    """A verifiable bundle holding only a manifest and ``initial_weights.npy`` (all the gateway reads).

    For gateway-only installs where torch is absent; with torch the session fixture exports a real one.
    """
    path.mkdir(parents=True, exist_ok=True)
    weights = np.random.default_rng(seed).standard_normal(size).astype(np.float32) * 0.1
    np.save(path / "initial_weights.npy", weights, allow_pickle=False)
    data = (path / "initial_weights.npy").read_bytes()
    manifest = Manifest(
        model={"family": "synthetic", "id": "synthetic", "ref": "synthetic", "revision": "local"},
        task={"kind": "classify", "labels": ["0", "1", "2"], "output": "logits"},
        train_spec="head",
        optimizer={"lr": 0.01, "name": "sgd"},
        split={},
        graph={},
        preprocessing={},
        trainable=(TrainableTensor("head.weight", (size,), "float32", 0),),
        artifacts={"initial_weights": "initial_weights.npy"},
        versions={"schema": "fmfl.bundle/1"},
        files={"initial_weights.npy": {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}},
    )
    manifest = Manifest(**{**manifest.__dict__, "bundle_id": manifest.derive_bundle_id()})
    (path / "manifest.json").write_bytes(manifest.to_json())
    verify_bundle(path)
    return path


def export_tiny_bundle(workdir: Path, tokenizer: Path) -> Path:
    """A real bundle: a tiny BERT (as tests/export/conftest.py makes it), head-only, 3 labels, 16 tokens."""
    import shutil

    import torch
    import transformers

    from fmfl.export.pipeline import ExportConfig, export_bundle

    torch.manual_seed(0)
    model_dir = workdir / "tiny-bert"
    config = transformers.BertConfig(  # type: ignore[no-untyped-call]
        vocab_size=30522,
        max_position_embeddings=128,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    transformers.BertModel(config, add_pooling_layer=False).save_pretrained(model_dir)  # type: ignore[no-untyped-call]
    shutil.copy(tokenizer, model_dir / "tokenizer.json")
    out = workdir / "bundle"
    cfg = ExportConfig(model=str(model_dir), task="classify", train="head", out=out, num_labels=3, max_seq_len=16)
    return export_bundle(cfg).path


def bundle_info(bundle: Path) -> tuple[str, np.ndarray]:
    manifest = verify_bundle(bundle)
    weights = np.load(bundle / str(manifest.artifacts["initial_weights"]))
    return manifest.bundle_id, weights


# --- messages --------------------------------------------------------------------------------------


def frames(message: Any, max_packet: int = 128 * 1024) -> list[bytes]:
    return split_message(message.to_bytes(), max_packet)


def make_update(
    task: RoundTask,
    client_id: str,
    delta: np.ndarray,
    *,
    num_samples: int = 10,
    metrics: dict[str, float] | None = None,
    update_id: str | None = None,
    **overrides: Any,
) -> tuple[ClientUpdate, SparseUpdate]:
    """A real encoded update for ``task`` (its codec) and what the gateway will decode from it."""
    encoder = UpdateEncoder(task.codec, int(delta.shape[0]), seed=task.seed)
    payload, sent = encoder.encode_sparse(delta.astype(np.float32))
    fields: dict[str, Any] = {
        "federation": task.federation,
        "bundle_id": task.bundle_id,
        "round": task.round,
        "model_version": task.model_version,
        "client_id": client_id,
        "num_samples": num_samples,
        "update_id": update_id or new_update_id(),
        "payload": payload,
        "metrics": metrics or {},
    }
    fields.update(overrides)
    return ClientUpdate(**fields), sent


def fedavg(weights: np.ndarray, sent: list[tuple[SparseUpdate, float]]) -> np.ndarray:
    """The oracle: ``w + sum(n_i d_i) / sum(n_i)``, dense, in float64, as float32."""
    acc = np.zeros(weights.shape[0], dtype=np.float64)
    for update, n in sent:
        acc += n * update.to_dense().astype(np.float64)
    total = sum(n for _, n in sent)
    return (weights.astype(np.float64) + acc / total).astype(np.float32)


# --- a paho client that records what it receives ---------------------------------------------------


class Listener:
    """Subscribes to topic filters and keeps (topic, payload, retain) of everything that arrives."""

    def __init__(self, port: int, filters: list[str], client_id: str | None = None) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "")  # type: ignore[attr-defined]
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(f, 1) for f in filters])
        self.client.loop_start()
        assert self._subscribed.wait(5), "no SUBACK"

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def snapshot(self) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, predicate: Callable[[list[tuple[str, bytes, bool]]], bool], timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            time.sleep(0.02)
        return predicate(self.snapshot())

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def decode_all(messages: list[tuple[str, bytes, bool]], limits: Limits, cls: Any) -> list[Any]:
    """Every complete message of type ``cls`` in the received chunks, in arrival order."""
    reassembler = Reassembler(2**28, 1024)
    out = []
    for topic, payload, _ in messages:
        if not payload:
            continue
        source = topic if cls is not GlobalModel else "global"
        data = reassembler.add(payload, source)
        if data is not None:
            try:
                out.append(cls.from_bytes(data, limits))
            except ProtocolError as exc:  # other message types on a shared filter; a decoding bug still raises
                if exc.reason != Reason.WRONG_TYPE:
                    raise
    return out


def acks_for(listener: Listener, limits: Limits) -> list[Ack]:
    return decode_all([m for m in listener.snapshot() if "/ack/" in m[0]], limits, Ack)


# --- simulated devices -----------------------------------------------------------------------------


class _SimOutbox:
    """A simulated device's outbox (the session's ``Outbox``), in memory."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[int, str, bytes]] = {}
        self.last_round = -1

    def pending(self) -> list[_SimEntry]:
        return [_SimEntry(*e) for e in self.entries.values()]

    def acknowledge(self, update_id: str) -> bool:
        return self.entries.pop(update_id, None) is not None


@dataclass(frozen=True)
class _SimEntry:
    round: int
    update_id: str
    message: bytes


@dataclass
class SimDevice:
    """One device: answers every task that selects it with ``delta(round, size)`` instead of training.

    The protocol side is the real device's (``DeviceSession`` over ``MqttPump``): it says hello, follows runs,
    takes the global model (dense, on ``global/+``) and answers a task once it holds the task's version,
    resends until an Ack. ``answer`` and ``republish`` let a test act for it.
    """

    port: int
    client_id: str
    bundle_id: str
    size: int
    delta: Delta
    federation: str = "default"
    num_samples: int = 10
    capabilities: dict[str, Any] = field(default_factory=lambda: {"memory_bytes": 4 * 2**30, "cores": 4})
    metrics: dict[str, float] = field(default_factory=dict)
    respond: bool = True
    resend_s: float = 1.0
    train_s: float = 0.0  # simulated local training time before the update goes out
    sent: dict[int, tuple[ClientUpdate, SparseUpdate]] = field(default_factory=dict)
    acks: list[Ack] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.topics = Topics(self.federation)
        self.limits = Limits.for_vector_size(self.size)
        self._dir = Path(tempfile.mkdtemp(prefix=f"sim-{self.client_id}-"))  # the feed's downlink counts
        self._outbox = _SimOutbox()
        config = SessionConfig(
            federation=self.federation, client_id=self.client_id, bundle_id=self.bundle_id,
            max_packet_bytes=128 * 1024, resend_after=self.resend_s, capabilities=dict(self.capabilities),
            downlink_deltas=False,
        )  # fmt: skip
        self.session = DeviceSession(
            config, HeldModel(self.size, self._dir), self._outbox, self.limits,
            on_ack=self.acks.append, reassembler=Reassembler(2**26, 64),
        )  # fmt: skip
        self.pump = MqttPump(
            f"sim-{self.client_id}",
            MqttOptions("127.0.0.1", self.port),
            subscriptions=self.session.subscriptions,
            will=self.session.will(),
            clean_session=True,
        )
        self.client = self.pump.client
        self._lock = threading.RLock()  # the loop and a test's answer/republish share the session
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._due: list[tuple[float, ClientUpdate]] = []  # updates "in training": published at their time

    def start(self) -> SimDevice:
        assert self.pump.start(connack_timeout=5), f"{self.client_id}: no CONNACK"
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        assert self._ready.wait(5), f"{self.client_id}: no hello"
        return self

    def _loop(self) -> None:
        announced = 0
        while not self._stop.is_set():
            batch = self.pump.next_batch(0.05, max_items=64)
            with self._lock:
                now = time.time()
                if self.pump.generation != announced:
                    announced = self.pump.generation
                    self.pump.publish(self.session.connected(now))
                    self._ready.set()
                for item in batch:
                    self.pump.publish(self.session.handle(item.topic, item.payload, now))
                self.pump.publish(self.session.tick(now))
                ready = self.session.take(now) if self.respond else None
                if ready is not None:
                    self._answer(ready[0], now)
                due = [u for t, u in self._due if t <= now]
                self._due = [(t, u) for t, u in self._due if t > now]
                for update in due:
                    self.pump.publish(self.session.upload(update.to_bytes(), now))

    def _answer(self, task: RoundTask, now: float) -> None:
        if self.client_id not in task.selected or task.round in self.sent:
            return
        update, sent = make_update(
            task, self.client_id, self.delta(task.round, self.size), num_samples=self.num_samples,
            metrics=dict(self.metrics),
        )  # fmt: skip
        self.sent[task.round] = (update, sent)
        self._outbox.entries[update.update_id] = (task.round, update.update_id, update.to_bytes())
        self._outbox.last_round = max(self._outbox.last_round, task.round)
        if self.train_s > 0:
            self._due.append((now + self.train_s, update))
        else:
            self.pump.publish(self.session.upload(update.to_bytes(), now))

    def answer(self, task: RoundTask) -> None:
        """Answer ``task`` now (for devices made with ``respond=False``; set ``respond`` first)."""
        with self._lock:
            if self.respond:
                self._answer(task, time.time())

    def republish(self, rnd: int) -> None:
        """Send round ``rnd``'s update again, as a device does whose Ack was lost."""
        with self._lock:
            self.pump.publish([Outgoing(self.topics.update(self.client_id), c) for c in frames(self.sent[rnd][0])])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.pump.close(1.0)
        shutil.rmtree(self._dir, ignore_errors=True)


# --- the engine without MQTT ---------------------------------------------------------------------

SIZE = 200
T0 = 1_000_000.0
TOPICS = Topics("default")
LIMITS = Limits.for_vector_size(SIZE)


def _whole(chunk: bytes) -> bytes:
    """The message of a one-chunk frame (the engine's tasks and Acks fit one chunk)."""
    message = Reassembler(2**20).add(chunk)
    assert message is not None, "a message split over several chunks"
    return message


class Harness:
    """An engine on a synthetic bundle, with helpers to register clients and send updates."""

    def __init__(
        self,
        tmp: Path,
        *,
        resume: bool = False,
        strategy: str = "fedavg",
        strategy_options: dict[str, Any] | None = None,
        workers: tuple[str, ...] = (),
        upstream: Any = None,
        verifier: Any = None,
        prior: Any = None,
        **cfg: object,
    ) -> None:
        bundle = tmp / "bundle"
        if not bundle.exists():
            make_synthetic_bundle(bundle, SIZE)
        self.initial = np.load(bundle / "initial_weights.npy")
        manifest = json.loads((bundle / "manifest.json").read_text())
        self.bundle_id: str = manifest["bundle_id"]
        settings: dict[str, object] = {
            "rounds": 3,
            "clients_per_round": 4,
            "min_clients": 3,
            "round_timeout": 60.0,
            "over_select": 1.0,
            "local_epochs": 1,
            "codec": "topk:0.25+int8",
            # Versions equal to the rule's models, as the oracles compute them; deltas: tests/aggregator/test_downlink*.
            "downlink_codec": "dense",
        }
        settings.update(cfg)
        self.config = RoundConfig(**settings)  # type: ignore[arg-type]
        self.engine = RoundEngine(
            config=self.config,
            bundle_id=self.bundle_id,
            initial_weights=self.initial,
            strategy=make_strategy(strategy, **(strategy_options or {})),
            state_dir=tmp / "state",
            resume=resume,
            now=T0,
            workers=workers,
            upstream=upstream,
            verifier=verifier,
            prior=prior,
        )
        self.topics = Topics(self.config.federation)
        self.out: list[Outgoing] = self.engine.start(T0)

    def register(self, *ids: str, **capabilities: str | int | float | list[str]) -> None:
        for cid in ids:
            hello = ClientHello(cid, dict(capabilities) or {"memory_bytes": 2**32}, bundle_id=self.bundle_id)
            for chunk in frames(hello):
                self.engine.handle(self.topics.hello(cid), chunk, T0)
            self.engine.handle(self.topics.status(cid), frames(ClientStatus(cid, True))[0], T0)

    def tick(self, now: float = T0) -> list[Outgoing]:
        out = self.engine.tick(now)
        self.out += out
        return out

    def task(self) -> RoundTask:
        tasks = [o for o in self.out if o.topic == self.topics.task]
        assert tasks, "no task published"
        return RoundTask.from_bytes(_whole(tasks[-1].payload), LIMITS)

    def send(self, cid: str, payload_chunks: list[bytes], now: float = T0) -> list[Ack]:
        out: list[Outgoing] = []
        for chunk in payload_chunks:
            out += self.engine.handle(self.topics.update(cid), chunk, now)
        self.out += out
        return [Ack.from_bytes(_whole(o.payload), LIMITS) for o in out if o.topic == self.topics.ack(cid)]

    def global_model(self) -> tuple[int, np.ndarray]:
        chunks = [o for o in self.out if o.topic.startswith(self.topics.root + "/global/") and o.payload]
        r = Reassembler(2**26)
        message = None
        for c in chunks:
            data = r.add(c.payload, "g")
            if data is not None:
                message = GlobalModel.from_bytes(data, LIMITS)
        assert message is not None
        return message.model_version, decode_update(message.payload, SIZE, LIMITS).to_dense()


def matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` only), ``$share/{group}/`` stripped."""
    if pattern.startswith("$share/"):
        pattern = pattern.split("/", 2)[2]
    p, t = pattern.split("/"), topic.split("/")
    return len(p) == len(t) and all(a in ("+", b) for a, b in zip(p, t, strict=True))


class Bus:
    """An in-process broker for engines: delivers publishes to every subscribed node, keeps retained
    messages. Updates on shared subscriptions are not routed: the test picks the node (``update``)."""

    def __init__(self, share_group: str | None = "g") -> None:
        self.share_group = share_group
        self.nodes: dict[str, Any] = {}
        self.retained: dict[str, bytes] = {}

    def add(self, name: str, engine: Any) -> None:
        self.nodes[name] = engine
        for topic, payload in self.retained.items():  # what a subscriber gets on subscribing
            self.publish(name, [Outgoing(topic, payload)], only=name)

    def publish(self, sender: str, out: list[Outgoing], only: str | None = None) -> None:
        from collections import deque

        queue = deque(out)
        while queue:
            o = queue.popleft()
            if o.retain:
                self.retained[o.topic] = o.payload
            for name, engine in self.nodes.items():
                if only is not None and name != only:
                    continue
                for f in engine.subscriptions(self.share_group):
                    if matches(f, o.topic) and not f.startswith("$share/"):
                        queue.extend(engine.handle(o.topic, o.payload, T0))
                        break

    def update(self, node: str, topic: str, chunks: list[bytes]) -> list[Outgoing]:
        """Feed an update's chunks to ``node``; publish what it answers except the Acks (returned)."""
        out: list[Outgoing] = []
        for c in chunks:
            out += self.nodes[node].handle(topic, c, T0)
        acks = [o for o in out if "/ack/" in o.topic]
        self.publish(node, [o for o in out if "/ack/" not in o.topic])
        return acks


# --- the aggregator as a subprocess ----------------------------------------------------------------


class AggregatorProcess:
    """``python -m fmfl.cli aggregator ...`` with stdout/stderr captured to files."""

    def __init__(
        self,
        workdir: Path,
        args: list[str],
        *,
        extra_env: dict[str, str] | None = None,
        subcommand: str = "aggregator",
        extra_args: list[str] | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = workdir / f"aggregator-{time.monotonic_ns()}.out"
        self.stderr_path = self.stdout_path.with_suffix(".err")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fmfl.cli", subcommand, *args, *(extra_args or [])],
            stdout=self.stdout_path.open("wb"),
            stderr=self.stderr_path.open("wb"),
            env=env,
            cwd=REPO,
        )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"aggregator did not exit in {timeout} s\n{self.stdout}\n{self.stderr}") from None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)


def aggregator_args(
    bundle: Path, port: int, state_dir: Path, *, rounds: int, k: int, m: int | None = None, **extra: Any
) -> list[str]:
    args = [
        "--bundle", str(bundle),
        "--broker", f"mqtt://127.0.0.1:{port}",
        "--state-dir", str(state_dir),
        "--rounds", str(rounds),
        "--clients-per-round", str(k),
        "--min-clients", str(m if m is not None else k),
    ]  # fmt: skip
    # The oracles of these tests are the aggregation rule's models; downlink deltas re-base versions
    # (docs/protocol.md 2b) and have their own tests (tests/aggregator/test_downlink*).
    extra.setdefault("downlink_codec", "dense")
    for key, value in extra.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not None and value is not False:
            args += [flag, str(value)]
    return args


def read_metrics(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_until(predicate: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
