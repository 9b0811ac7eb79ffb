"""The thin MQTT adapter around ``RoundEngine``: subscribe, feed messages in, publish what it returns.

Threads (``fmfl.mqtt.pump.MqttPump``, the device runner's pump too): paho's network thread only queues
incoming messages; one loop (the caller's thread) takes what has queued (up to ``MAX_GROUP`` messages) in
order, runs the engine on them as one batch (which writes the WAL and commits the batch's accepted
updates with one fsync: group commit), publishes the engine's answer, and only then acknowledges the MQTT
packets (``manual_ack``). So a packet is acknowledged to the broker, and an update Acked to its device,
only after the update is durably logged or refused: killed before that, the persistent session
(``clean_session=False``) makes the broker deliver it again. The batch forms by itself under load: what
arrives while one commit runs is the next batch; the broker's in-flight window to the gateway
(Mosquitto's ``max_inflight_messages``, 20 by default) bounds it.

Intermediate chunks of a multi-chunk update are acknowledged as they are buffered: holding them back
would stall the broker's in-flight window (Mosquitto's default is 20 messages per client) while
other chunks are still needed. If the gateway dies, the device, which keeps its update until it gets
an Ack *message*, sends it again in full.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from fmfl.aggregator.core.outbound import Outgoing
from fmfl.failpoints import armed, failpoint
from fmfl.mqtt import BrokerDown, MqttOptions
from fmfl.mqtt.pump import MqttPump
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
        self._announced = 0  # the connection generation whose retained state (engine.start) went out
        self._last_tick = 0.0
        self.pump: MqttPump | None = None

    # --- the loop (caller's thread) ----------------------------------------------------------------

    def connect(self) -> None:
        will = getattr(self.engine, "will", lambda: None)()  # a lower tier is a device to its parent
        self.pump = MqttPump(
            self.client_id, self.opts, subscriptions=lambda: self.engine.subscriptions(self.share_group),
            will=will, manual_ack=True, clean_session=False,
        )  # fmt: skip
        if not self.pump.start(connack_timeout=CONNECT_TIMEOUT_S):
            self.pump.client.loop_stop()
            raise BrokerDown(f"no CONNACK from {self.opts.host}:{self.opts.port} in {CONNECT_TIMEOUT_S:.0f} s")

    def run(self, stop: threading.Event) -> None:
        """Serve until the engine has finished its rounds or ``stop`` is set; then flush and disconnect."""
        if self.pump is None:
            self.connect()
        assert self.pump is not None
        try:
            finished_at_start = self.engine.finished
            self._announced = self.pump.generation
            self._publish(self.engine.start(time.time()))
            while not stop.is_set() and not self.engine.finished:
                self._step()
            if finished_at_start or self.pump.generation > 1:
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
        pump = self.pump
        assert pump is not None
        if pump.generation != self._announced:
            # Reconnected: publish the global model and the open task again. A broker that was killed
            # (not stopped) restarts from its last autosave, or empty, without them; devices ignore a copy
            # they already hold (found by tests/faults: the round stalled until its deadline).
            self._announced = pump.generation
            self._publish(self.engine.start(time.time()))
        batch = pump.next_batch(POLL_S, MAX_GROUP)
        if not batch:
            self._publish(self.engine.tick(time.time()))
            return
        # Returns after the batch's updates are durable (one commit): its Acks and PUBACKs may go out.
        self._publish(self.engine.handle_batch([(i.topic, i.payload) for i in batch], time.time()))
        pump.ack(batch)
        # The clock also advances under a steady stream (a flood of garbage must not hold a deadline).
        if pump.inbox.empty() or time.monotonic() - self._last_tick > POLL_S:
            self._publish(self.engine.tick(time.time()))
            self._last_tick = time.monotonic()

    def _publish(self, out: list[Outgoing]) -> None:
        assert self.pump is not None
        self.pump.publish(out)
        if armed("aggregator.after_task_publish") and any(o.topic == self.topics.task for o in out):
            self.pump.pending[-1].wait_for_publish(5)  # the task has reached the broker: then die
            failpoint("aggregator.after_task_publish")

    def shutdown(self) -> None:
        """Wait (bounded) for our publishes to reach the broker, then disconnect cleanly."""
        if self.pump is None:
            return
        # Dropped while flushing (tests/faults saw Mosquitto cut the gateway off right after a restart from
        # its autosave, between two Acks of the last round): wait for paho's reconnect, which resends the
        # queued QoS 1 messages, instead of leaving a device without its last Ack.
        self.pump.close(FLUSH_TIMEOUT_S, wait_for_reconnect=True)
        self.pump = None
