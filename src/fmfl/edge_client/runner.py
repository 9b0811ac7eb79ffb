"""The device's MQTT loop: wait for round tasks that select it, train, upload, repeat.

A thin adapter: the protocol (hello, status and will, runs, tasks, global models dense or delta, Acks,
resends) is ``DeviceSession`` (``session.py``), the MQTT connection is ``MqttPump`` (paho's network thread
only enqueues; decoding, training and state changes happen on the runner's own thread, so a long local
round never stalls keep-alives), and the round is ``EdgeDevice.run_round``. The device holds the last good
global model at all times: a malformed, wrong-bundle or wrong-version global model is logged and ignored,
never applied.

Downlink deltas (1.2, docs/protocol.md 2b): the runner always holds ``delta/+`` and holds ``global/+`` only
while the session wants a whole model, so a device that keeps up receives each version as a delta.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from fmfl.edge_client.device import EdgeDevice, capabilities
from fmfl.edge_client.model_feed import ModelFeed
from fmfl.edge_client.session import DeviceSession, SessionConfig
from fmfl.failpoints import armed, failpoint
from fmfl.mqtt import MqttOptions
from fmfl.mqtt.pump import MqttPump
from fmfl.protocol import DEFAULT_MAX_PACKET_BYTES, Limits
from fmfl.protocol.outgoing import Outgoing

log = logging.getLogger(__name__)

POLL_S = 0.5  # the loop wakes at least this often (resends, stop)
SHUTDOWN_FLUSH_S = 2.0  # the clean-shutdown notice (and what is still queued) gets this long to reach the broker


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
        self.stop_event = threading.Event()
        self.rounds_done = 0
        session_config = SessionConfig(
            federation=cfg.federation, client_id=self.client_id, bundle_id=device.manifest.bundle_id,
            max_packet_bytes=cfg.max_packet_bytes, resend_after=cfg.resend_after,
            capabilities=capabilities(cfg.threads, device.trainer.providers),
        )  # fmt: skip
        limits = Limits.for_vector_size(device.manifest.num_trainable)
        self.session = DeviceSession(session_config, device, device.state, limits)
        self.topics = self.session.topics
        self.mqtt_opts = mqtt
        self.pump = MqttPump(f"fmfl-{self.client_id}", mqtt, subscriptions=self.session.subscriptions,
                             will=self.session.will())  # fmt: skip
        self.client = self.pump.client
        self._announced = 0  # the connection generation the session was told about
        self._dense_subscribed: bool | None = None  # holding global/+ (None: not known since connecting)

    @property
    def feed(self) -> ModelFeed:
        return self.session.feed

    # -- the runner's thread -------------------------------------------------------------------------
    def run(self) -> int:
        self.pump.start(attempts=self.cfg.connect_attempts)
        try:
            while not self.stop_event.is_set():
                self._step()
                if self.cfg.max_rounds is not None and self.rounds_done >= self.cfg.max_rounds:
                    self._drain_acks(timeout=10.0)
                    break
        finally:
            self._shutdown()
        return 0

    def _step(self, timeout: float = POLL_S, *, train: bool = True) -> None:
        """Announce after a (re)connect, resend what is due, handle one message, train what is ready."""
        now = time.time()
        if self.pump.generation != self._announced:
            self._announced = self.pump.generation
            out = self.session.connected(now)  # decides first whether a whole model is wanted
            self._dense_subscribed = None  # a persistent session may still hold global/+: set it either way
            self._sync_dense()
            self._publish(out)
        elif self.pump.connected.is_set():
            # Not while disconnected: paho would queue a full copy each time; the reconnect resends the outbox.
            self._publish(self.session.tick(now))
        for item in self.pump.next_batch(timeout):
            self._publish(self.session.handle(item.topic, item.payload, time.time()))
        self._sync_dense()
        if train:
            self._maybe_train()

    def stop(self, *_args: Any) -> None:
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def _shutdown(self) -> None:
        self.stop_event.set()
        self.feed.counter.save(self.feed.counter_path)
        with contextlib.suppress(RuntimeError, ValueError, OSError):
            self.pump.publish([self.session.goodbye()])
        self.pump.close(SHUTDOWN_FLUSH_S)

    def _drain_acks(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.device.state.pending() and time.monotonic() < deadline:
            self._step(timeout=0.2, train=False)  # max_rounds reached: Acks only

    def _sync_dense(self) -> None:
        """Subscribe to or drop ``global/+`` as the session wants."""
        wanted = self.session.wants_dense
        if wanted == self._dense_subscribed:
            return
        if wanted:
            self.pump.subscribe(self.topics.global_model)
        else:
            self.pump.unsubscribe(self.topics.global_model)
        self._dense_subscribed = wanted

    def _publish(self, out: list[Outgoing]) -> None:
        if out:
            self.pump.publish(out)

    def _upload(self, message: bytes) -> None:
        """A fresh update's packets; the outbox entry already holds it for resends."""
        out = self.session.upload(message, time.time())
        if not armed("client.mid_upload"):
            self._publish(out)
            return
        for i, packet in enumerate(out):
            if i:
                failpoint("client.mid_upload")  # @N: killed after N chunks reached the broker
            self.client.publish(packet.topic, packet.payload, qos=1).wait_for_publish(5)

    def _maybe_train(self) -> None:
        ready = self.session.take(time.time())
        if ready is None:
            return
        task, weights = ready
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
