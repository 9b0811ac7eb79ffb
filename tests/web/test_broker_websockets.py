"""The demo broker's WebSockets listener (the web devices' way in): where it listens, and that it wants a password.

Mosquitto 2.0.11 opens a WebSockets listener on every interface whatever its bind address (found in
shared/spikes/edge-platforms and checked below), so a demo that adds web devices must not leave that listener
anonymous; the loopback MQTT listener of the Python devices stays anonymous.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from fmfl.mqtt.mosquitto import Mosquitto, mosquitto_binary
from fmfl.provision.passwords import hashed_lines


def _connack(port: int, transport: str, user: str | None = None, password: str | None = None) -> str:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{time.monotonic_ns()}",  # type: ignore[attr-defined]
                         transport=transport)  # type: ignore[arg-type]
    if user is not None:
        client.username_pw_set(user, password)
    answers: list[str] = []
    client.on_connect = lambda *args: answers.append(str(args[3]))
    client.connect("127.0.0.1", port)
    try:
        for _ in range(100):
            client.loop(0.05)
            if answers:
                return answers[0]
        raise AssertionError("no CONNACK within 5 s")
    finally:
        client.disconnect()


@pytest.fixture
def ws_broker():  # type: ignore[no-untyped-def]
    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run scripts/install.sh")
    # Mosquitto started as root reads the password file as its own user: not under pytest's 0700 tmp_path.
    root = Path(tempfile.mkdtemp(prefix="fmfl-ws-"))
    root.chmod(0o755)
    passwd = root / "passwd"
    passwd.write_text("".join(f"{line}\n" for line in hashed_lines({"w00": "s3cret"}, use_mosquitto_passwd=False)))
    passwd.chmod(0o644)
    try:
        with Mosquitto(root / "broker", websockets=True, ws_password_file=passwd) as broker:
            yield broker
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_websockets_listener_wants_a_password_and_loopback_mqtt_does_not(ws_broker: Mosquitto) -> None:
    assert ws_broker.ws_port is not None
    assert _connack(ws_broker.ws_port, "websockets") == "Not authorized"
    assert _connack(ws_broker.ws_port, "websockets", "w00", "wrong") == "Not authorized"
    assert _connack(ws_broker.ws_port, "websockets", "w00", "s3cret") == "Success"
    assert _connack(ws_broker.port, "tcp") == "Success"


def test_where_the_listeners_bind(ws_broker: Mosquitto) -> None:
    """Records what this Mosquitto does (docs/web.md): the plain listener honours 127.0.0.1; the WebSockets
    listener is checked to be either loopback-only or password-protected (the test above)."""
    sockets = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout.split("\n")
    local = {line.split()[3].rsplit(":", 1)[1]: line.split()[3].rsplit(":", 1)[0] for line in sockets if line.strip()}
    assert local[str(ws_broker.port)] == "127.0.0.1"
    assert local[str(ws_broker.ws_port)] in ("127.0.0.1", "*", "0.0.0.0", "[::]")
