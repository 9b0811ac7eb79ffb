"""The MQTT pump (``fmfl.mqtt.pump``) that the gateway and the device both run: messages reach the owner's
loop in order, tagged with their connection, and are acknowledged only when the owner says so; its list of
unconfirmed publishes is pruned in amortised O(1) per publish.

With 10,000 Acks queued behind paho's in-flight window (no broker PUBACK yet), pruning whenever the list
held more than 256 entries rescanned the whole backlog on every publish: quadratic in the round's size.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
import pytest

from fmfl.mqtt import MqttOptions
from fmfl.mqtt.pump import MqttPump
from fmfl.protocol import Topics
from fmfl.protocol.outgoing import Outgoing

TOPICS = Topics("pending")


def offline_pump(client_id: str) -> MqttPump:
    """A pump whose real paho client never connects (port 1), its queue unbounded."""
    pump = MqttPump(client_id, MqttOptions(host="127.0.0.1", port=1), subscriptions=list)
    pump.client.max_queued_messages_set(0)
    return pump


def test_ten_thousand_unconfirmed_acks_cost_linear_bookkeeping(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: every publish reads as not yet confirmed (what a backlog behind the in-flight window looks
    # like), and the checks are counted.
    checks = 0

    def counted(self: Any) -> bool:
        nonlocal checks
        checks += 1
        return False

    monkeypatch.setattr(mqtt.MQTTMessageInfo, "is_published", counted)
    pump = offline_pump("pending-test")
    # Execute: one Ack per call, as the gateway publishes them.
    n = 10_000
    for i in range(n):
        pump.publish([Outgoing(TOPICS.ack(f"d{i}"), b"x")])
    # Assert: every publish is still held (none confirmed), and the scans stayed linear (quadratic: ~50M).
    assert len(pump.pending) == n
    assert checks < 4 * n, checks


def test_publishes_made_while_disconnected_do_not_take_the_owner_down() -> None:
    """paho marks a publish made while the link is down "not connected" for good (it still queues and sends
    it after the reconnect), and ``is_published()`` then raises: the prune must not."""
    pump = offline_pump("offline-test")
    first = pump.client.publish("t", b"x", qos=1)
    with pytest.raises(RuntimeError, match="not currently connected"):
        first.is_published()  # what the prune used to call unguarded
    for i in range(300):  # past the prune threshold
        pump.publish([Outgoing(TOPICS.ack(f"d{i}"), b"x")])
    assert len(pump.pending) < 300  # pruned: entries paho cannot report on are no longer tracked


def test_messages_reach_the_loop_in_order_and_are_acked_only_when_the_owner_says(mosquitto: Any) -> None:
    # Prepare: a manual-ack pump subscribed (on connect) to its own topic; a second client publishes to it.
    pump = MqttPump("pump-test", MqttOptions("127.0.0.1", mosquitto.port), subscriptions=lambda: ["pump/#"],
                    manual_ack=True)  # fmt: skip
    assert pump.start(connack_timeout=10)
    sender = MqttPump("pump-sender", MqttOptions("127.0.0.1", mosquitto.port), subscriptions=list)
    assert sender.start(connack_timeout=10)
    try:
        assert pump.next_batch(0.2) == []  # nothing yet: the wait ends empty
        # Execute
        sender.publish([Outgoing(f"pump/{i}", bytes([i])) for i in range(5)])
        batch: list[Any] = []
        for _ in range(50):
            batch += pump.next_batch(0.2, max_items=16)
            if len(batch) == 5:
                break
        # Assert: in order, from the first connection; acking them is the owner's call and does not raise.
        assert [(b.topic, b.payload, b.generation) for b in batch] == [(f"pump/{i}", bytes([i]), 1) for i in range(5)]
        pump.ack(batch)
        assert pump.generation == 1
    finally:
        sender.close(2.0)
        pump.close(2.0)
    assert not pump.connected.is_set()
