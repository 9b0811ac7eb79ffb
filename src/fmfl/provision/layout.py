"""Where ``fmfl provision`` puts things inside its output folder::

    DIR/devices.json                 the registry (ids, Ed25519 public keys, cert serials, status)
    DIR/ca/ca.key, ca.crt            the development CA (the key never leaves this machine)
    DIR/broker/                      everything the broker reads: mosquitto.conf, passwd, acl, ca.crt,
                                     server.crt, server.key, crl.pem
    DIR/gateway/ID/                  the gateway's password, client.key/.crt, ca.crt
    DIR/devices/ID/                  one device's password, client.key/.crt, ca.crt, signing.key(.pub)

Copy ``DIR/devices/ID`` onto device ID, ``DIR/gateway/ID`` onto the gateway, ``DIR/broker`` onto the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fmfl.provision.broker_conf import BrokerFiles

REGISTRY_FILE = "devices.json"


@dataclass(frozen=True)
class IdentityFiles:
    """The credentials of one device or of the gateway."""

    root: Path

    @property
    def password(self) -> Path:
        return self.root / "password"

    @property
    def keyfile(self) -> Path:
        return self.root / "client.key"

    @property
    def certfile(self) -> Path:
        return self.root / "client.crt"

    @property
    def cafile(self) -> Path:
        return self.root / "ca.crt"

    @property
    def signing_key(self) -> Path:
        return self.root / "signing.key"

    @property
    def signing_public_key(self) -> Path:
        return self.root / "signing.key.pub"

    @property
    def web_fragment(self) -> Path:
        """The web device's identity as a URL fragment (``#client=...&password=...&key=...``): appended to the
        page's address it never reaches a server or its logs."""
        return self.root / "web-fragment"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def registry(self) -> Path:
        return self.root / REGISTRY_FILE

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def ca_key(self) -> Path:
        return self.ca_dir / "ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / "ca.crt"

    @property
    def broker(self) -> BrokerFiles:
        return BrokerFiles(self.root / "broker")

    @property
    def gateway_dir(self) -> Path:
        return self.root / "gateway"

    @property
    def devices_dir(self) -> Path:
        return self.root / "devices"

    def gateway(self, gateway_id: str) -> IdentityFiles:
        return IdentityFiles(self.gateway_dir / gateway_id)

    def device(self, device_id: str) -> IdentityFiles:
        return IdentityFiles(self.devices_dir / device_id)

    @property
    def top_level(self) -> tuple[Path, ...]:
        """Everything provisioning owns in ``root`` (what ``--force`` replaces)."""
        return (self.registry, self.ca_dir, self.broker.root, self.gateway_dir, self.devices_dir)
