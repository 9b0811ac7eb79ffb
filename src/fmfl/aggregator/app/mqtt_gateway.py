"""The thin MQTT adapter around ``RoundEngine``: subscribe, feed messages in, publish what it returns.

Threads: paho's network thread only queues incoming messages; one loop (the caller's thread) takes
what has queued (up to ``MAX_GROUP`` messages) in order, runs the engine on them as one batch (which
writes the WAL and commits the batch's accepted updates with one fsync: group commit), publishes the
engine's answer, and only then acknowledges the MQTT packets (``manual_ack``). So a packet is
acknowledged to the broker, and an update Acked to its device, only after the update is durably logged
or refused: killed before that, the persistent session (``clean_session=False``) makes the broker
deliver it again. The batch forms by itself under load: what arrives while one commit runs is the next
batch; the broker's in-flight window to the gateway (Mosquitto's ``max_inflight_messages``, 20 by
default) bounds it.

Intermediate chunks of a multi-chunk update are acknowledged as they are buffered: holding them back
would stall the broker's in-flight window (Mosquitto's default is 20 messages per client) while
other chunks are still needed. If the gateway dies, the device, which keeps its update until it gets
an Ack *message*, sends it again in full.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fmfl.aggregator.core.outbound import Outgoing
from fmfl.failpoints import armed, failpoint
from fmfl.mqtt import BrokerDown, MqttOptions, connect_with_backoff, make_client
from fmfl.protocol import Topics

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 30.0
FLUSH_TIMEOUT_S = 30.0
# Restarted on a run whose last round had already closed, or reconnected during the run: answer resends this
# long before leaving (longer than the shortest --resend-after the tests use, 2 s).
FINISHED_GRACE_S = 5.0
POLL_S = 0.05
# At most this many queued messages per engine batch (one WAL commit): bounds the wait of the first Ack.
MAX_GROUP = 512


class Engine(Protocol):
    """What the adapter needs of an engine: the coordinator's ``RoundEngine`` or a ``WorkerEngine``."""

    topics: Topics

    @property
    def finished(self) -> bool: ...

    def subscriptions(self, share_group: str | None) -> list[str]: ...

    def start(self, now: float) -> list[Outgoing]: ...

    def handle_batch(self, messages: Sequence[tuple[str, bytes]], now: float) -> list[Outgoing]: ...

    def tick(self, now: float) -> list[Outgoing]: ...


@dataclass(frozen=True)
class _Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int  # which connection delivered it: a packet id means nothing on a later one


def still_pending(infos: list[Any]) -> list[Any]:
    """The publishes (paho ``MQTTMessageInfo``) not yet confirmed by the broker.

    A message published while the link was down carries paho's "not connected" code for good: paho queues it
    (QoS 1) and sends it after the reconnect, but ``is_published()`` then raises instead of answering. Such an
    entry is dropped from tracking (paho still delivers it) rather than taking the gateway down.
    """
    out = []
    for info in infos:
        try:
            if not info.is_published():
                out.append(info)
        except (RuntimeError, ValueError):
            continue
    return out


class MqttGateway:
    """Runs an engine over one MQTT connection until it finishes or ``stop`` is set."""

    def __init__(
        self,
        engine: Engine,
        opts: MqttOptions,
        *,
        client_id: str | None = None,
        share_group: str | None = None,
    ) -> None:
        self.engine = engine
        self.opts = opts
        self.topics: Topics = engine.topics
        self.client_id = client_id or f"fmfl-aggregator-{engine.topics.federation}"
        self.share_group = share_group
        self._inbox: queue.Queue[_Inbound] = queue.Queue()
        self._connected = threading.Event()
        self._generation = 0
        self._announced = 0  # the connection generation whose retained state (engine.start) went out
        self._pending: list[Any] = []  # paho MQTTMessageInfo of publishes not yet confirmed
        self._prune_at = 256  # prune _pending when it grows past this
        self._last_tick = 0.0
        self.client: Any = None

    # --- paho callbacks (network thread) -----------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        self._generation += 1
        client.subscribe([(f, 1) for f in self.engine.subscriptions(self.share_group)])
        self._connected.set()
        log.info("connected to %s:%d as %s", self.opts.host, self.opts.port, self.client_id)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._connected.clear()
        if reason.is_failure:
            log.warning("disconnected from the broker (%s); paho reconnects", reason)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self._inbox.put(_Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self._generation))

    # --- the loop (caller's thread) ----------------------------------------------------------------

    def connect(self) -> None:
        will = getattr(self.engine, "will", lambda: None)()  # a lower tier is a device to its parent
        self.client = make_client(self.client_id, self.opts, will=will, manual_ack=True, clean_session=False)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        connect_with_backoff(self.client, self.opts)
        self.client.loop_start()
        if not self._connected.wait(CONNECT_TIMEOUT_S):
            self.client.loop_stop()
            raise BrokerDown(f"no CONNACK from {self.opts.host}:{self.opts.port} in {CONNECT_TIMEOUT_S:.0f} s")

    def run(self, stop: threading.Event) -> None:
        """Serve until the engine has finished its rounds or ``stop`` is set; then flush and disconnect."""
        if self.client is None:
            self.connect()
        try:
            finished_at_start = self.engine.finished
            self._announced = self._generation
            self._publish(self.engine.start(time.time()))
            while not stop.is_set() and not self.engine.finished:
                self._step()
            if finished_at_start or self._generation > 1:
                # Killed while closing the last round (after saving the version, before publishing what
                # the close returned): the Acks of the updates that closed it never went out. Their
                # devices resend them, and the broker redelivers the unacknowledged packet; answer
                # those (as duplicates) for a short while rather than leave the devices waiting.
                # The same after a run that lost its broker connection: a broker restarted from its
                # autosave can drop the last round's Acks (tests/faults saw 1 device in 3 left waiting).
                deadline = time.monotonic() + FINISHED_GRACE_S
                while not stop.is_set() and time.monotonic() < deadline:
                    self._step()
        finally:
            self.shutdown()

    def _step(self) -> None:
        if self._generation != self._announced:
            # Reconnected: publish the global model and the open task again. A broker that was killed
            # (not stopped) restarts from its last autosave, or empty, without them; devices ignore a copy
            # they already hold (found by tests/faults: the round stalled until its deadline).
            self._announced = self._generation
            self._publish(self.engine.start(time.time()))
        try:
            batch = [self._inbox.get(timeout=POLL_S)]
        except queue.Empty:
            self._publish(self.engine.tick(time.time()))
            return
        while len(batch) < MAX_GROUP:
            try:
                batch.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        # Returns after the batch's updates are durable (one commit): its Acks and PUBACKs may go out.
        self._publish(self.engine.handle_batch([(i.topic, i.payload) for i in batch], time.time()))
        for item in batch:
            if item.generation == self._generation:
                self.client.ack(item.mid, item.qos)
        # The clock also advances under a steady stream (a flood of garbage must not hold a deadline).
        if self._inbox.empty() or time.monotonic() - self._last_tick > POLL_S:
            self._publish(self.engine.tick(time.time()))
            self._last_tick = time.monotonic()

    def _publish(self, out: list[Outgoing]) -> None:
        for o in out:
            self._pending.append(self.client.publish(o.topic, o.payload, qos=o.qos, retain=o.retain))
        if armed("aggregator.after_task_publish") and any(o.topic == self.topics.task for o in out):
            self._pending[-1].wait_for_publish(5)  # the task has reached the broker: then die
            failpoint("aggregator.after_task_publish")
        if len(self._pending) > self._prune_at:
            self._pending = still_pending(self._pending)
            # Amortised: with thousands of Acks queued behind paho's in-flight window, pruning at a fixed 256
            # rescanned the whole backlog on every publish (quadratic in a 10,000-device round).
            self._prune_at = max(256, 2 * len(self._pending))

    def shutdown(self) -> None:
        """Wait (bounded) for our publishes to reach the broker, then disconnect cleanly."""
        if self.client is None:
            return
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        for info in self._pending:
            # Dropped while flushing (tests/faults saw Mosquitto cut the gateway off right after a restart
            # from its autosave, between two Acks of the last round): wait for paho's reconnect, which
            # resends the queued QoS 1 messages, instead of leaving a device without its last Ack.
            if not self._connected.wait(max(0.0, deadline - time.monotonic())):
                break
            try:
                info.wait_for_publish(timeout=max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                break  # queue overflow: the retained state is what it is
        self._pending.clear()
        self.client.disconnect()
        self.client.loop_stop()
        self.client = None
