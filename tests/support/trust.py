"""A provisioned federation on a real Mosquitto, and a small MQTT probe to talk to it.

Broker files live under a ``tempfile.mkdtemp()`` folder opened to 0755: Mosquitto started as root drops to
the ``mosquitto`` user, which cannot enter pytest's 0700 ``tmp_path`` parents.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from fmfl.mqtt import MqttOptions, parse_broker_url
from fmfl.mqtt.mosquitto import Mosquitto, free_port
from fmfl.protocol.topics import Topics
from fmfl.provision import Layout, ListenerSpec, ProvisionSpec, Registry, provision

FEDERATION = "trust"
GATEWAY = "aggregator"
WAIT_S = 5.0


def broker_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="fmfl-trust-"))
    root.chmod(0o755)
    return root


@dataclass
class Federation:
    """``fmfl provision`` output plus the broker running its mosquitto.conf."""

    root: Path
    registry: Registry
    port: int
    broker: Mosquitto | None = None
    topics: Topics = field(default_factory=lambda: Topics(FEDERATION))

    @property
    def layout(self) -> Layout:
        return Layout(self.root / "fed")

    def identity(self, name: str) -> Any:
        return self.layout.gateway(name) if name == self.registry.gateway_id else self.layout.device(name)

    def password(self, name: str) -> str:
        return str(self.identity(name).password.read_text().strip())

    def options(
        self, name: str | None, *, password: str | None = None, cert: bool = False, cafile: Path | None = None
    ) -> MqttOptions:
        """Options for ``name`` (None: anonymous) as `fmfl client`/`fmfl aggregator` would build them."""
        ident = self.identity(name or self.registry.gateway_id)
        return parse_broker_url(
            f"mqtts://127.0.0.1:{self.port}",
            username=name if not cert else None,
            password=(password if password is not None else self.password(name)) if name and not cert else None,
            cafile=cafile or ident.cafile,
            certfile=ident.certfile if cert else None,
            keyfile=ident.keyfile if cert else None,
        )

    def start(self) -> Federation:
        self.broker = Mosquitto(
            self.root / "run", port=self.port, config_file=self.layout.broker.conf, tls=True
        ).start()
        return self

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def log(self) -> str:
        return (self.root / "run" / "mosquitto.log").read_text(errors="replace")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def make_federation(
    devices: tuple[str, ...] = ("dev-1", "dev-2"), *, client_certs: bool = False, use_mosquitto_passwd: bool = True
) -> Federation:
    root, port = broker_root(), free_port()
    registry = provision(
        ProvisionSpec(
            out=root / "fed",
            federation=FEDERATION,
            device_ids=devices,
            gateway_id=GATEWAY,
            listener=ListenerSpec(port=port, bind_address="127.0.0.1", client_certs=client_certs),
            use_mosquitto_passwd=use_mosquitto_passwd,
        )
    )
    return Federation(root, registry, port)


class Probe:
    """One paho 2.x client on the provisioned broker; what it receives lands in ``inbox``."""

    def __init__(self, opts: MqttOptions, client_id: str = "probe") -> None:
        self.opts = opts
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,  # type: ignore[attr-defined]
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if opts.username is not None:
            self.client.username_pw_set(opts.username, opts.password)
        self.client.tls_set(
            ca_certs=str(opts.cafile) if opts.cafile else None,
            certfile=str(opts.certfile) if opts.certfile else None,
            keyfile=str(opts.keyfile) if opts.keyfile else None,
        )
        self.inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue[Any] = queue.Queue()
        self.client.on_connect = lambda _c, _u, _f, reason, _p: self.connack.put(reason)
        self.client.on_message = lambda _c, _u, msg: self.inbox.put((msg.topic, bytes(msg.payload)))

    def connect(self) -> Any:
        """The CONNACK reason (``.is_failure``), or the string ``lost: ...`` when the link closed before it."""
        self.client.connect(self.opts.host, self.opts.port)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            rc = self.client.loop(0.05)
            if not self.connack.empty():
                reason = self.connack.get()
                if not reason.is_failure:
                    self.client.loop_start()
                return reason
            if rc != mqtt.MQTT_ERR_SUCCESS:
                return f"lost: {mqtt.error_string(rc)}"
        raise AssertionError("no CONNACK within 5 s")

    def subscribe(self, topic: str) -> int:
        """The granted QoS (128: refused)."""
        granted: queue.Queue[list[Any]] = queue.Queue()
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: granted.put(codes)
        self.client.subscribe(topic, qos=1)
        return int(granted.get(timeout=WAIT_S)[0].value)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(WAIT_S)

    def receive(self, timeout: float = WAIT_S) -> tuple[str, bytes]:
        return self.inbox.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
