"""Authorization on the provisioned broker: each identity reaches only its own topics (real Mosquitto).

Every negative check is ordered before a positive one from the same publisher: MQTT keeps one publisher's
QoS 1 messages in order, so when the allowed message arrives first, the denied one was dropped, not late.
"""

from __future__ import annotations

import queue

import pytest
from support.trust import Federation, Probe

QUIET_S = 0.3


def _connected(federation: Federation, name: str, probes: list[Probe]) -> Probe:
    probe = Probe(federation.options(name))
    probes.append(probe)
    reason = probe.connect()
    assert not reason.is_failure, reason
    return probe


def _nothing_more(probe: Probe) -> None:
    with pytest.raises(queue.Empty):
        probe.receive(timeout=QUIET_S)


@pytest.mark.parametrize("kind", ["hello", "status", "update"])
def test_device_publishing_on_another_devices_topic_never_reaches_the_gateway(
    federation: Federation, probes: list[Probe], kind: str
) -> None:
    # Prepare
    topic = getattr(federation.topics, kind)
    gateway = _connected(federation, "aggregator", probes)
    assert gateway.subscribe(f"{federation.topics.root}/{kind}/+") == 1
    dev2 = _connected(federation, "dev-2", probes)
    # Execute
    dev2.publish(topic("dev-1"), b"forged by dev-2")
    dev2.publish(topic("dev-2"), b"dev-2's own")
    # Assert
    assert gateway.receive() == (topic("dev-2"), b"dev-2's own")
    _nothing_more(gateway)


def test_device_cannot_subscribe_to_another_devices_ack(federation: Federation, probes: list[Probe]) -> None:
    t = federation.topics
    dev1 = _connected(federation, "dev-1", probes)
    # Mosquitto 2.0 grants the SUBACK and enforces "read" on every delivery instead.
    dev1.subscribe(t.ack("dev-2"))
    assert dev1.subscribe(t.ack("dev-1")) == 1
    gateway = _connected(federation, "aggregator", probes)
    gateway.publish(t.ack("dev-2"), b"for dev-2")
    gateway.publish(t.ack("dev-1"), b"for dev-1")
    assert dev1.receive() == (t.ack("dev-1"), b"for dev-1")
    _nothing_more(dev1)


@pytest.mark.parametrize("kind", ["update", "hello", "status", "ack"])
def test_device_cannot_read_the_whole_federation_with_a_wildcard(
    federation: Federation, probes: list[Probe], kind: str
) -> None:
    t = federation.topics
    dev1 = _connected(federation, "dev-1", probes)
    dev1.subscribe(f"{t.root}/{kind}/+")
    dev1.subscribe(f"{t.root}/#")
    dev1.subscribe("#")
    assert dev1.subscribe(t.task) == 1
    dev2 = _connected(federation, "dev-2", probes)
    if kind != "ack":
        dev2.publish(f"{t.root}/{kind}/dev-2", b"dev-2's")
    gateway = _connected(federation, "aggregator", probes)
    gateway.publish(t.ack("dev-2"), b"ack for dev-2")
    gateway.publish(t.task, b"the task")
    assert dev1.receive() == (t.task, b"the task")
    _nothing_more(dev1)


def test_device_cannot_forge_the_task_or_the_global_model(federation: Federation, probes: list[Probe]) -> None:
    t = federation.topics
    dev2 = _connected(federation, "dev-2", probes)
    assert dev2.subscribe(t.task) == 1
    assert dev2.subscribe(t.global_model) == 1
    dev1 = _connected(federation, "dev-1", probes)
    dev1.publish(t.task, b"forged task")
    dev1.publish(t.global_model_chunk(0), b"forged model")
    dev1.publish(t.ack("dev-2"), b"forged ack")
    gateway = _connected(federation, "aggregator", probes)
    gateway.publish(t.global_model_chunk(0), b"real model")
    assert dev2.receive() == (t.global_model_chunk(0), b"real model")
    _nothing_more(dev2)


def test_gateway_reaches_every_device_topic_it_needs(federation: Federation, probes: list[Probe]) -> None:
    t = federation.topics
    gateway = _connected(federation, "aggregator", probes)
    for topic_filter in (t.all_hellos, t.all_status, t.all_updates):
        assert gateway.subscribe(topic_filter) == 1
    dev1 = _connected(federation, "dev-1", probes)
    for topic_filter in (t.task, t.global_model, t.ack("dev-1")):
        assert dev1.subscribe(topic_filter) == 1
    for topic in (t.hello("dev-1"), t.status("dev-1"), t.update("dev-1")):
        dev1.publish(topic, b"up")
        assert gateway.receive() == (topic, b"up")
    for topic in (t.task, t.global_model_chunk(3), t.ack("dev-1")):
        gateway.publish(topic, b"down")
        assert dev1.receive() == (topic, b"down")
