"""The provisioned broker's WebSockets listener (web devices): TLS, password login, same ACL; and the web link
fragment each device gets. Real Mosquitto on loopback, real paho client over wss."""

from __future__ import annotations

import base64
import shutil
import ssl
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_private_key
from support.trust import FEDERATION, GATEWAY, WAIT_S, Federation, broker_root

from fmfl.mqtt.mosquitto import Mosquitto, free_port
from fmfl.provision import ListenerSpec, ProvisionSpec, provision
from fmfl.provision.broker_conf import BrokerFiles, conf_text


@pytest.fixture
def web_federation() -> Iterator[tuple[Federation, int]]:
    root, port, ws_port = broker_root(), free_port(), free_port()
    registry = provision(ProvisionSpec(
        out=root / "fed", federation=FEDERATION, device_ids=("dev-1", "dev-2"), gateway_id=GATEWAY,
        listener=ListenerSpec(port=port, bind_address="127.0.0.1", websockets_port=ws_port),
    ))
    fed = Federation(root, registry, port)
    fed.broker = Mosquitto(root / "run", port=port, config_file=fed.layout.broker.conf, tls=True,
                           ws_port=ws_port).start()
    try:
        yield fed, ws_port
    finally:
        fed.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def _connect_wss(fed: Federation, ws_port: int, user: str, password: str) -> mqtt.ReasonCode | str:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user,  # type: ignore[attr-defined]
                         protocol=mqtt.MQTTv311, transport="websockets")
    client.username_pw_set(user, password)
    client.tls_set(ca_certs=str(fed.layout.device("dev-1").cafile), cert_reqs=ssl.CERT_REQUIRED)
    answers: list[mqtt.ReasonCode] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: answers.append(reason)
    client.connect("localhost", ws_port)
    try:
        for _ in range(int(WAIT_S / 0.05)):
            rc = client.loop(0.05)
            if answers:
                return answers[0]
            if rc != mqtt.MQTT_ERR_SUCCESS:
                return f"lost: {mqtt.error_string(rc)}"
        raise AssertionError("no CONNACK over wss within 5 s")
    finally:
        client.disconnect()


def test_web_device_logs_in_over_wss_with_its_password(web_federation: tuple[Federation, int]) -> None:
    fed, ws_port = web_federation
    reason = _connect_wss(fed, ws_port, "dev-1", fed.password("dev-1"))
    assert not isinstance(reason, str)
    assert not reason.is_failure


def test_wrong_password_over_wss_is_refused(web_federation: tuple[Federation, int]) -> None:
    fed, ws_port = web_federation
    reason = _connect_wss(fed, ws_port, "dev-1", fed.password("dev-2"))
    assert not isinstance(reason, str)
    assert reason.is_failure
    assert str(reason) == "Not authorized"


def test_web_fragment_carries_the_registered_identity(web_federation: tuple[Federation, int]) -> None:
    fed, _ = web_federation
    fragment = fed.layout.device("dev-2").web_fragment
    assert fragment.stat().st_mode & 0o077 == 0  # a secret: readable by its owner only
    text = fragment.read_text().strip()
    assert text.startswith("#")
    fields = dict(urllib.parse.parse_qsl(text[1:]))
    assert fields["client"] == "dev-2"
    assert fields["password"] == fed.password("dev-2")
    key = load_der_private_key(base64.b64decode(fields["key"]), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    raw = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    assert raw == next(d.public_key for d in fed.registry.devices if d.device_id == "dev-2")


def test_conf_without_websockets_has_one_listener(tmp_path: Path) -> None:
    text = conf_text(BrokerFiles(tmp_path), ListenerSpec(port=8883))
    assert text.count("listener ") == 1
    assert "protocol websockets" not in text


@pytest.mark.parametrize(("port", "ws", "message"), [(8883, 8883, "its own port"), (8883, 70000, "1..65535")])
def test_bad_websockets_port_is_refused(port: int, ws: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ListenerSpec(port=port, websockets_port=ws)
