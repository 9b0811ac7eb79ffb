"""The kit's side of the wire: one MQTT connection that plays the gateway for one device under test.

Everything the device sends is reassembled and decoded with ``fmfl.protocol`` (the code the gateway
runs) and kept in arrival order; what the kit publishes goes through the gateway's outbound helpers,
plus the kit's own twists: chunks published in reverse order, tasks not retained, an older run's messages.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fmfl.aggregator.core.outbound import Outgoing
from fmfl.mqtt import MqttOptions, connect_with_backoff, make_client
from fmfl.protocol import (
    ClientHello,
    ClientStatus,
    ClientUpdate,
    Limits,
    ProtocolError,
    Reassembler,
    Topics,
)

PUBLISH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Received:
    """One whole message from the device: when it arrived (``time.monotonic()``), on which topic kind
    (``hello``, ``status``, ``update``), decoded, or the reason it did not decode."""

    at: float
    kind: str
    message: ClientHello | ClientStatus | ClientUpdate | None
    error: str = ""
    retained: bool = False


class KitLink:
    """A clean MQTT session subscribed to the device's hello, status and update topics."""

    def __init__(self, opts: MqttOptions, topics: Topics, client_id: str, bundle_id: str, limits: Limits) -> None:
        self.opts = opts
        self.topics = topics
        self.client_id = client_id
        self.bundle_id = bundle_id
        self.limits = limits
        self.received: list[Received] = []
        self._inbox: queue.Queue[tuple[float, str, bytes, bool]] = queue.Queue()
        self._reassembler = Reassembler(limits.max_message_bytes, max_pending_messages=8)
        self._subscribed = threading.Event()
        self.client = make_client(f"fmfl-conformance-{uuid.uuid4().hex[:12]}", opts, clean_session=True)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_args: self._subscribed.set()

    def _on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        self._inbox.put((time.monotonic(), msg.topic, bytes(msg.payload), bool(msg.retain)))

    def start(self) -> None:
        """Connect, delete the device's retained hello and status (so the next hello is a fresh join),
        then subscribe to what the device sends."""
        connect_with_backoff(self.client, self.opts)
        self.client.loop_start()
        t, cid = self.topics, self.client_id
        self.publish([Outgoing(t.hello(cid), b"", retain=True), Outgoing(t.status(cid), b"", retain=True)])
        self.client.subscribe([(t.hello(cid), 1), (t.status(cid), 1), (t.update(cid), 1)])
        if not self._subscribed.wait(PUBLISH_TIMEOUT_S):
            raise TimeoutError("the broker did not confirm the kit's subscriptions")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, packets: Iterable[Outgoing]) -> None:
        """Publish in the order given and wait until the broker has each one (QoS 1)."""
        infos = [self.client.publish(p.topic, p.payload, qos=p.qos, retain=p.retain) for p in packets]
        for info in infos:
            info.wait_for_publish(PUBLISH_TIMEOUT_S)

    def pump(self, until: float) -> list[Received]:
        """Decode what arrives until ``time.monotonic()`` reaches ``until``; returns the new messages."""
        new: list[Received] = []
        while True:
            left = until - time.monotonic()
            try:
                at, topic, payload, retained = self._inbox.get(timeout=max(0.0, min(left, 0.05)))
            except queue.Empty:
                if left <= 0:
                    return new
                continue
            got = self._decode(at, topic, payload, retained)
            if got is not None:
                self.received.append(got)
                new.append(got)

    def _decode(self, at: float, topic: str, payload: bytes, retained: bool) -> Received | None:
        if not payload:
            return None  # a deleted retained message (the kit's own clearing)
        kind = topic.rsplit("/", 2)[-2]
        try:
            data = self._reassembler.add(payload, source=topic)
            if data is None:
                return None
            message: ClientHello | ClientStatus | ClientUpdate
            if kind == "hello":
                message = ClientHello.from_bytes(data, self.limits)
            elif kind == "status":
                message = ClientStatus.from_bytes(data, self.limits)
            else:
                message = ClientUpdate.decode(data, self.limits, federation=self.topics.federation,
                                              client_id=self.client_id, bundle_id=self.bundle_id)
        except ProtocolError as exc:
            return Received(at, kind, None, f"{exc.reason}: {exc}", retained)
        return Received(at, kind, message, "", retained)

    def read_retained(self, topics: list[str], wait: float) -> dict[str, bytes]:
        """What the broker holds retained on ``topics``, seen by a second, fresh session (up to ``wait`` s)."""
        found: dict[str, bytes] = {}
        lock = threading.Lock()

        def on_message(_client: Any, _userdata: Any, msg: Any) -> None:
            if msg.retain and msg.payload:
                with lock:
                    found[msg.topic] = bytes(msg.payload)

        probe = make_client(f"fmfl-conformance-probe-{uuid.uuid4().hex[:12]}", self.opts, clean_session=True)
        probe.on_message = on_message
        connect_with_backoff(probe, self.opts)
        probe.loop_start()
        try:
            probe.subscribe([(topic, 1) for topic in topics])
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                with lock:
                    if len(found) == len(topics):
                        break
                time.sleep(0.05)
        finally:
            probe.disconnect()
            probe.loop_stop()
        with lock:
            return dict(found)
