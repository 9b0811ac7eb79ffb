"""The device's MQTT loop: wait for round tasks that select it, train, upload, repeat.

paho's network thread only enqueues messages; all decoding, training and state changes happen on
the runner's own thread, so a long local round never stalls keep-alives. The runner holds the last
good global model at all times: a malformed, wrong-bundle or wrong-version global model is logged
and ignored, never applied.

Runs (protocol 1.2): the runner follows the newest run it has seen on a task or a model and ignores
what an older run left behind (chunks, tasks, models); a newer run's model replaces the held one
whatever its version. Messages without a run (a 1.1 gateway) are judged by versions and rounds alone.

Downlink deltas (1.2, docs/protocol.md 2b): the runner always holds ``delta/+`` and holds ``global/+``
only while ``ModelFeed`` wants a whole model, so a device that keeps up receives each version as a delta.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from fmfl.edge_client.device import EdgeDevice, capabilities
from fmfl.edge_client.model_feed import ModelFeed
from fmfl.failpoints import armed, failpoint
from fmfl.mqtt import MqttOptions, connect_with_backoff, make_client
from fmfl.protocol import (
    DEFAULT_MAX_PACKET_BYTES,
    Ack,
    ClientHello,
    ClientStatus,
    GlobalModel,
    Limits,
    ProtocolError,
    Reassembler,
    RoundTask,
    Topics,
    split_message,
)
from fmfl.protocol.chunking import chunk_run
from fmfl.protocol.framing import is_compact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerConfig:
    federation: str = "default"
    max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES
    #: stop after this many completed rounds (None: run until stopped)
    max_rounds: int | None = None
    threads: int | None = None
    connect_attempts: int = 8
    #: send unacknowledged updates again after this many seconds without an Ack (also on every reconnect)
    resend_after: float = 30.0


class EdgeRunner:
    def __init__(self, device: EdgeDevice, mqtt: MqttOptions, cfg: RunnerConfig) -> None:
        self.device = device
        self.cfg = cfg
        self.client_id = device.cfg.client_id
        self.topics = Topics(cfg.federation)
        n = device.manifest.num_trainable
        self.limits = Limits.for_vector_size(n)
        self.reassembler = Reassembler(max_total_bytes=self.limits.max_message_bytes, max_pending_messages=4)
        self.inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.stop_event = threading.Event()
        self.pending_task: RoundTask | None = None
        self.rounds_done = 0
        self.followed_run = 0  # the newest run seen on a task or model (0: none yet, or a 1.1 gateway)
        self.feed = ModelFeed(device, self.limits)
        self._dense_subscribed: bool | None = None  # holding global/+ (None: not known since connecting)
        self._last_upload = time.monotonic()
        # A status message is one chunk; the same bytes serve as the MQTT will and the clean-shutdown notice.
        self.offline_status = split_message(ClientStatus(self.client_id, online=False).to_bytes())[0]
        self.mqtt_opts = mqtt
        self.client = make_client(
            f"fmfl-{self.client_id}", mqtt, will=(self.topics.status(self.client_id), self.offline_status)
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    # -- paho callbacks (network thread) -------------------------------------------------------------
    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the connection: %s", reason)
            return
        t = self.topics
        # delta/+ before the task, so a retained delta lands before the retained task that names its version.
        for topic in (t.global_delta, t.task, t.ack(self.client_id)):
            client.subscribe(topic, qos=1)
        self.feed.reset()
        self._dense_subscribed = None  # a persistent session may still hold global/+: set it either way
        self._sync_dense()
        version, _ = self.device.global_model()
        caps = capabilities(self.cfg.threads, self.device.trainer.providers)
        hello = ClientHello(self.client_id, caps, self.device.manifest.bundle_id, version)
        # Retained, so a gateway that (re)starts after this device connected still learns of it.
        self._publish(t.hello(self.client_id), hello.to_bytes(), retain=True)
        self._publish(t.status(self.client_id), ClientStatus(self.client_id, online=True).to_bytes(), retain=True)
        # Updates the gateway has not acknowledged yet go out again; it counts each update id once.
        for entry in self.device.state.pending():
            log.info("resending update %s for round %d", entry.update_id, entry.round)
            self._publish_update(entry.message)
        log.info("connected to %s:%d as %s", self.mqtt_opts.host, self.mqtt_opts.port, self.client_id)

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        if not self.stop_event.is_set():
            log.warning("disconnected from the broker (%s); paho reconnects with backoff", reason)

    def _on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        self.inbox.put((msg.topic, bytes(msg.payload)))

    def _sync_dense(self) -> None:
        """Subscribe to or drop ``global/+`` as the model feed wants (any thread: paho's calls are safe)."""
        wanted = self.feed.wants_dense
        if wanted == self._dense_subscribed:
            return
        if wanted:
            self.client.subscribe(self.topics.global_model, qos=1)
        else:
            self.client.unsubscribe(self.topics.global_model)
        self._dense_subscribed = wanted

    def _publish(self, topic: str, message: bytes, retain: bool = False, bare: bool = False) -> None:
        for chunk in split_message(message, self.cfg.max_packet_bytes, bare=bare):
            self.client.publish(topic, chunk, qos=1, retain=retain)

    def _publish_update(self, message: bytes) -> None:
        # A compact update (written only for a 1.2 gateway) goes out as a bare frame when it fits a packet.
        self._publish(self.topics.update(self.client_id), message, bare=is_compact(message))

    def _maybe_resend(self) -> None:
        """Resend what is still unacknowledged ``resend_after`` seconds after the last upload.

        A gateway killed while an update's chunks arrive has acknowledged the first chunks to the broker,
        so the broker's redelivery cannot complete the update; without this the device, still connected,
        would wait for an Ack that never comes (found by tests/faults). The gateway counts an id once.
        """
        if time.monotonic() - self._last_upload < self.cfg.resend_after:
            return
        self._last_upload = time.monotonic()
        if not self.client.is_connected():
            # paho would queue a full copy each time; on_connect resends the outbox once reconnected.
            return
        for entry in self.device.state.pending():
            log.info("no Ack after %.0f s: resending update %s for round %d",
                     self.cfg.resend_after, entry.update_id, entry.round)
            self._publish_update(entry.message)

    def _upload(self, message: bytes) -> None:
        """A fresh update's chunks (runner thread); the outbox entry already holds it for resends."""
        self._last_upload = time.monotonic()
        topic = self.topics.update(self.client_id)
        if not armed("client.mid_upload"):
            self._publish_update(message)
            return
        for i, chunk in enumerate(split_message(message, self.cfg.max_packet_bytes)):
            if i:
                failpoint("client.mid_upload")  # @N: killed after N chunks reached the broker
            self.client.publish(topic, chunk, qos=1).wait_for_publish(5)

    # -- the runner's thread -------------------------------------------------------------------------
    def run(self) -> int:
        connect_with_backoff(self.client, self.mqtt_opts, attempts=self.cfg.connect_attempts)
        self.client.loop_start()
        try:
            while not self.stop_event.is_set():
                self._maybe_resend()
                try:
                    topic, payload = self.inbox.get(timeout=0.5)
                except queue.Empty:
                    continue
                self._handle(topic, payload)
                self._sync_dense()
                self._maybe_train()
                if self.cfg.max_rounds is not None and self.rounds_done >= self.cfg.max_rounds:
                    self._drain_acks(timeout=10.0)
                    break
        finally:
            self._shutdown()
        return 0

    def stop(self, *_args: Any) -> None:
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def _shutdown(self) -> None:
        self.stop_event.set()
        self.feed.counter.save(self.feed.counter_path)
        try:
            info = self.client.publish(self.topics.status(self.client_id), self.offline_status, qos=1, retain=True)
            info.wait_for_publish(timeout=2.0)
        except (RuntimeError, ValueError, OSError):
            pass
        self.client.disconnect()
        self.client.loop_stop()

    def _drain_acks(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.device.state.pending() and time.monotonic() < deadline:
            try:
                topic, payload = self.inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            self._handle(topic, payload)

    def _handle(self, topic: str, payload: bytes) -> None:
        try:
            kind, _ = self.topics.parse(topic)
            self.feed.counter.received(kind, len(payload))
            hint = chunk_run(payload)
            if hint is not None and hint < self.followed_run:
                return  # an older run's leftover (e.g. a surplus retained chunk): never buffered
            message = self.reassembler.add(payload, source=kind)
            if message is None:
                return
            if kind == "task":
                self._on_task(RoundTask.from_bytes(message, self.limits))
            elif kind in ("global", "delta"):
                self._on_global(GlobalModel.from_bytes(message, self.limits))
            elif kind == "ack":
                self._on_ack(Ack.from_bytes(message, self.limits))
        except ProtocolError as exc:
            log.warning("ignored a bad message on %s: %s", topic, exc)

    def _follow(self, run: int | None, what: str) -> bool:
        """False for a message of a run older than the one followed; adopts a newer run."""
        if run is None:
            return True
        if run < self.followed_run:
            log.info("ignored %s of run %d: following run %d", what, run, self.followed_run)
            return False
        if run > self.followed_run:
            if self.followed_run:
                log.info("a new run %d replaces run %d", run, self.followed_run)
            self.followed_run = run
            self.feed.new_run()
            if self.pending_task is not None and self.pending_task.run != run:
                self.pending_task = None  # the old run's task will never be aggregated
        return True

    def _on_task(self, task: RoundTask) -> None:
        if not self._follow(task.run, f"round {task.round}'s task"):
            return
        if task.bundle_id != self.device.manifest.bundle_id:
            log.warning("round task for bundle %s, this device holds %s: ignored",
                        task.bundle_id, self.device.manifest.bundle_id)
            return
        self.feed.on_task(task)
        if self.client_id not in task.selected or task.round <= self.device.state.last_round:
            return
        if task.deadline < time.time():
            log.info("round %d task arrived after its deadline: skipped", task.round)
            return
        self.pending_task = task

    def _on_global(self, model: GlobalModel) -> None:
        if not self._follow(model.run, f"global model v{model.model_version}"):
            return
        if model.bundle_id != self.device.manifest.bundle_id:
            return
        self.feed.on_model(model)  # a delta or the dense model (docs/protocol.md 2b)

    def _on_ack(self, ack: Ack) -> None:
        if ack.client_id != self.client_id:
            return
        if self.device.state.acknowledge(ack.update_id):
            if ack.accepted:
                log.info("round %d update %s accepted", ack.round, ack.update_id)
            else:
                log.warning("round %d update %s rejected: %s", ack.round, ack.update_id, ack.reason)

    def _maybe_train(self) -> None:
        task = self.pending_task
        if task is None:
            return
        version, weights = self.device.global_model()
        if version != task.model_version:
            return  # the matching global model has not arrived yet
        self.pending_task = None
        start = time.perf_counter()
        try:
            update = self.device.run_round(task, weights)
        except (ValueError, FloatingPointError) as exc:
            log.error("round %d: local training failed: %s", task.round, exc)
            return
        failpoint("client.before_upload")  # committed to the outbox, nothing sent
        self._upload(update.wire_bytes())
        self.rounds_done += 1
        log.info("round %d: trained %d samples in %.1f s, sent %d bytes (accuracy %.3f)", task.round,
                 update.num_samples, time.perf_counter() - start, len(update.payload),
                 update.metrics.get("eval_accuracy", float("nan")))
