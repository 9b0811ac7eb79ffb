"""The MQTT adapter's list of unconfirmed publishes: pruned in amortised O(1) per publish.

With 10,000 Acks queued behind paho's in-flight window (no broker PUBACK yet), pruning whenever the list
held more than 256 entries rescanned the whole backlog on every publish: quadratic in the round's size.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
import pytest

from fmfl.aggregator.app.mqtt_gateway import MqttGateway
from fmfl.aggregator.core.outbound import Outgoing
from fmfl.mqtt import MqttOptions
from fmfl.protocol import Topics


class _Engine:
    topics = Topics("pending")


def test_ten_thousand_unconfirmed_acks_cost_linear_bookkeeping(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: a real paho client that never connects; every publish reads as not yet confirmed (what a
    # backlog behind the in-flight window looks like), and the checks are counted.
    checks = 0

    def counted(self: Any) -> bool:
        nonlocal checks
        checks += 1
        return False

    monkeypatch.setattr(mqtt.MQTTMessageInfo, "is_published", counted)
    gateway = MqttGateway(_Engine(), MqttOptions(host="127.0.0.1", port=1))  # type: ignore[arg-type]
    gateway.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pending-test")
    gateway.client.max_queued_messages_set(0)
    # Execute: one Ack per call, as the gateway publishes them.
    n = 10_000
    for i in range(n):
        gateway._publish([Outgoing(_Engine.topics.ack(f"d{i}"), b"x")])
    # Assert: every publish is still held (none confirmed), and the scans stayed linear (quadratic: ~50M).
    assert len(gateway._pending) == n
    assert checks < 4 * n, checks


def test_publishes_made_while_disconnected_do_not_take_the_gateway_down() -> None:
    """paho marks a publish made while the link is down "not connected" for good (it still queues and sends
    it after the reconnect), and ``is_published()`` then raises: the prune must not."""
    gateway = MqttGateway(_Engine(), MqttOptions(host="127.0.0.1", port=1))  # type: ignore[arg-type]
    gateway.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="offline-test")
    gateway.client.max_queued_messages_set(0)
    first = gateway.client.publish("t", b"x", qos=1)
    with pytest.raises(RuntimeError, match="not currently connected"):
        first.is_published()  # what the prune used to call unguarded
    for i in range(300):  # past the prune threshold
        gateway._publish([Outgoing(_Engine.topics.ack(f"d{i}"), b"x")])
    assert len(gateway._pending) < 300  # pruned: entries paho cannot report on are no longer tracked
