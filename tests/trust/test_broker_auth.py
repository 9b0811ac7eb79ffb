"""Authentication on the provisioned broker: who may connect at all (real Mosquitto, TLS, loopback)."""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from support.trust import Federation, Probe

from fmfl.provision import pki


def test_anonymous_connection_is_refused(federation: Federation) -> None:
    # Prepare
    probe = Probe(federation.options(None))
    # Execute
    reason = probe.connect()
    # Assert
    assert reason.is_failure
    assert str(reason) == "Not authorized"


def test_wrong_password_is_refused(federation: Federation) -> None:
    reason = Probe(federation.options("dev-1", password="not-the-password")).connect()
    assert reason.is_failure
    assert str(reason) == "Not authorized"


def test_a_device_cannot_log_in_with_another_devices_password(federation: Federation) -> None:
    reason = Probe(federation.options("dev-1", password=federation.password("dev-2"))).connect()
    assert reason.is_failure
    assert str(reason) == "Not authorized"


def test_unknown_user_is_refused(federation: Federation) -> None:
    reason = Probe(replace(federation.options("dev-1"), username="dev-99")).connect()
    assert reason.is_failure
    assert str(reason) == "Not authorized"


def test_device_connects_over_tls_with_its_password_and_ca(federation: Federation, probes: list[Probe]) -> None:
    probe = Probe(federation.options("dev-1"))
    probes.append(probe)
    reason = probe.connect()
    assert not reason.is_failure
    assert "as dev-1 (" in federation.log()
    assert "u'dev-1'" in federation.log()


def test_plain_mqtt_is_not_served(federation: Federation) -> None:
    """The only listener is TLS: a plaintext CONNECT (credentials in the clear) never gets a CONNACK."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="plain",  # type: ignore[attr-defined]
                         protocol=mqtt.MQTTv311)
    client.username_pw_set("dev-1", federation.password("dev-1"))
    answers: list[object] = []
    client.on_connect = lambda *args: answers.append(args[3])
    client.connect("127.0.0.1", federation.port)
    rcs = [client.loop(0.2) for _ in range(10)]
    assert answers == []
    assert any(rc != mqtt.MQTT_ERR_SUCCESS for rc in rcs)


def test_device_refuses_a_broker_certificate_from_another_ca(federation: Federation, tmp_path: Path) -> None:
    """A device pinned to the federation's CA will not talk to an impostor broker (here: any other CA)."""
    other = tmp_path / "other-ca.crt"
    other.write_bytes(pki.make_ca("impostor").cert_pem)
    probe = Probe(federation.options("dev-1", cafile=other))
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        probe.connect()


def test_a_device_cannot_take_over_the_gateways_session(federation: Federation, probes: list[Probe]) -> None:
    """use_username_as_clientid: a device reusing the gateway's client id gets its own session, not the gateway's."""
    gateway = Probe(federation.options("aggregator"), client_id="fmfl-aggregator-trust")
    probes.append(gateway)
    assert not gateway.connect().is_failure
    assert gateway.subscribe(federation.topics.all_hellos) == 1
    intruder = Probe(federation.options("dev-2"), client_id="fmfl-aggregator-trust")
    probes.append(intruder)
    assert not intruder.connect().is_failure
    intruder.publish(federation.topics.hello("dev-2"), b"hello")
    # The gateway was not kicked off: it is still connected and receives the hello.
    assert gateway.receive() == (federation.topics.hello("dev-2"), b"hello")
    assert "as dev-2 (" in federation.log()
