"""One MQTT connection driven by one loop: paho's network thread only enqueues, the owner's thread does the rest.

paho calls ``on_message`` on its network thread; a handler that decodes, trains or writes a log there
stalls keep-alives, and one that touches state races the owner's loop. So the pump's callbacks only queue
what arrived (with the connection it came on: a packet id means nothing on a later one), and the owner's
single loop drains the queue, hands the messages to its sans-IO handler (a gateway's engine, a device
session), publishes what comes back (``Outgoing``) and, with ``manual_ack``, only then acknowledges the
packets. A reconnect shows as a new ``generation``: the owner announces itself again from its loop.

The unconfirmed publishes are tracked so ``close`` can wait for them (bounded) before disconnecting.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fmfl.mqtt.connection import MqttOptions, connect_with_backoff, make_client
from fmfl.protocol.outgoing import Outgoing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inbound:
    """One message as paho delivered it."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int  # which connection delivered it


def still_pending(infos: list[Any]) -> list[Any]:
    """The publishes (paho ``MQTTMessageInfo``) not yet confirmed by the broker.

    A message published while the link was down carries paho's "not connected" code for good: paho queues it
    (QoS 1) and sends it after the reconnect, but ``is_published()`` then raises instead of answering. Such an
    entry is dropped from tracking (paho still delivers it) rather than taking the owner down.
    """
    out = []
    for info in infos:
        try:
            if not info.is_published():
                out.append(info)
        except (RuntimeError, ValueError):
            continue
    return out


class MqttPump:
    """paho thread -> queue -> the owner's loop, for one client id."""

    def __init__(
        self,
        client_id: str,
        opts: MqttOptions,
        *,
        subscriptions: Callable[[], list[str]],
        will: tuple[str, bytes] | None = None,
        manual_ack: bool = False,
        clean_session: bool = False,
    ) -> None:
        self.opts = opts
        self.client_id = client_id
        self._subscriptions = subscriptions
        self.inbox: queue.Queue[Inbound] = queue.Queue()
        self.connected = threading.Event()
        self.generation = 0  # connections made so far (paho reconnects by itself)
        self.pending: list[Any] = []  # paho MQTTMessageInfo of publishes not yet confirmed
        self._prune_at = 256  # prune ``pending`` when it grows past this
        self._closing = False
        self.client: Any = make_client(client_id, opts, will=will, manual_ack=manual_ack, clean_session=clean_session)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # --- paho callbacks (network thread) -----------------------------------------------------------
    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the connection: %s", reason)
            return
        self.generation += 1
        # Subscribed here, on every (re)connect, before the owner's loop can announce anything: no answer to
        # an announcement can arrive unsubscribed.
        topics = self._subscriptions()
        if topics:  # paho refuses an empty list (a publish-only client)
            client.subscribe([(topic, 1) for topic in topics])
        self.connected.set()
        log.info("connected to %s:%d as %s", self.opts.host, self.opts.port, self.client_id)

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        self.connected.clear()
        if not self._closing and getattr(reason, "is_failure", True):
            log.warning("disconnected from the broker (%s); paho reconnects with backoff", reason)

    def _on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        self.inbox.put(Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self.generation))

    # --- the owner's loop --------------------------------------------------------------------------
    def start(self, *, attempts: int = 8, connack_timeout: float | None = None) -> bool:
        """Connect (with backoff) and start paho's thread; with ``connack_timeout``, wait that long for the
        first connection to be subscribed (False if it was not)."""
        connect_with_backoff(self.client, self.opts, attempts=attempts)
        self.client.loop_start()
        return connack_timeout is None or self.connected.wait(connack_timeout)

    def next_batch(self, timeout: float, max_items: int = 1) -> list[Inbound]:
        """The oldest queued messages (at most ``max_items``), waiting up to ``timeout`` for the first."""
        try:
            batch = [self.inbox.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(batch) < max_items:
            try:
                batch.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def ack(self, batch: Iterable[Inbound]) -> None:
        """Acknowledge (``manual_ack``) the packets of this connection; an older one's ids mean nothing now."""
        for item in batch:
            if item.generation == self.generation:
                self.client.ack(item.mid, item.qos)

    def publish(self, out: Iterable[Outgoing]) -> None:
        for o in out:
            self.pending.append(self.client.publish(o.topic, o.payload, qos=o.qos, retain=o.retain))
        if len(self.pending) > self._prune_at:
            self.pending = still_pending(self.pending)
            # Amortised: with thousands of Acks queued behind paho's in-flight window, pruning at a fixed 256
            # rescanned the whole backlog on every publish (quadratic in a 10,000-device round).
            self._prune_at = max(256, 2 * len(self.pending))

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)

    def unsubscribe(self, topic: str) -> None:
        self.client.unsubscribe(topic)

    def close(self, flush_timeout: float, *, wait_for_reconnect: bool = False) -> None:
        """Wait (bounded) for our publishes to reach the broker, then disconnect cleanly.

        ``wait_for_reconnect``: a publish dropped with the link waits for paho's reconnect (which resends the
        queued QoS 1 messages) within the same bound, rather than being given up at once.
        """
        deadline = time.monotonic() + flush_timeout
        for info in self.pending:
            if not self.connected.is_set() and not (
                wait_for_reconnect and self.connected.wait(max(0.0, deadline - time.monotonic()))
            ):
                break
            try:
                info.wait_for_publish(timeout=max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                break  # queue overflow, or published while disconnected: it is what it is
        self.pending.clear()
        self._closing = True
        self.client.disconnect()
        self.client.loop_stop()
